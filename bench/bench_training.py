"""Training loop (issue 7): streaming ``load_dataset`` with decoding, fed to a torch ``DataLoader``.

* clips/s with 2 workers against 0 workers (the main process decodes), one epoch each, alternating, the
  best of a few epochs kept; worker start-up is part of the epoch, as in training. Target >= 1.6x.
* ``state_dict()`` resume mid-epoch: a fresh ``load_dataset`` stream that loads the state taken after ``k``
  clips yields exactly the remaining clips, in order, none twice (a correctness check; also in
  ``tests/test_training_resume.py``).

torch is not a dependency of avsets: this runs in a child process of an interpreter that has it (this one,
or ``bench/.venv-torch`` made by ``bench/setup_torch_env.sh``) and is skipped with the reason otherwise.
Media: 10-s trimmed H.264 + AAC clips (hard links of one clip made by ``bench_video``), decoded to mono audio
and ``num_frames=8`` RGB frames. Run: ``python bench/bench_training.py [--smoke|--full]``.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Result, bench_main, random_ids, skipped  # noqa: E402
from _perf import cached, torch_python  # noqa: E402

# clips, clip size (w, h), epochs per setting, clips consumed before the state_dict() is taken
SIZES = {"smoke": (16, (160, 90), 1, 5), "default": (192, (640, 360), 3, 77), "full": (512, (640, 360), 3, 201)}
SHARDS = 8
BATCH = 4


def make_corpus(work: str, n: int, res: tuple[int, int]) -> tuple[str, str]:
    """A vggsound-shaped metadata folder with ``n`` train rows and ``n`` trimmed clips (hard links)."""
    from bench_foundation import write_aux

    from avsets.media.synth import write_video
    from avsets.vggsound.metadata import label_list

    w, h = res
    clip = cached(f"clip10-{w}x{h}.mp4", lambda p: write_video(p, seconds=10.0, fps=25, size=res))
    meta, media = os.path.join(work, "meta"), os.path.join(work, "media")
    os.makedirs(meta)
    os.makedirs(media)
    names = label_list("default")
    ids = random_ids(n, seed=11)
    with open(os.path.join(meta, "vggsound.csv"), "w") as f:
        for i, ytid in enumerate(ids):
            f.write(f'{ytid},{(i * 7) % 600},"{names[i % len(names)]}",train\r\n')
            dst = os.path.join(media, f"{ytid}_{(i * 7) % 600:06d}.mp4")
            try:
                os.link(clip, dst)
            except OSError:
                shutil.copy(clip, dst)
    write_aux(meta)
    return meta, media


def _child(size: str) -> dict:
    """Runs under an interpreter with torch: measure, print one JSON line."""
    import torch
    from torch.utils.data import DataLoader

    import avsets

    n, res, epochs, k = SIZES[size]
    work = tempfile.mkdtemp(prefix="avsets-bench-train-")
    try:
        meta, media = make_corpus(work, n, res)
        kw = dict(data_dir=meta, media_dir=media, cache_dir=os.path.join(work, "cache"), streaming=True,
                  num_frames=8, rows_per_shard=max(1, n // SHARDS))

        def stream(decode: bool = True):
            return avsets.load_dataset("vggsound", split="train", decode=decode, **kw)

        def epoch(workers: int) -> float:
            ds = stream()
            t0 = time.perf_counter()
            seen = 0
            for batch in DataLoader(ds, batch_size=BATCH, num_workers=workers):
                assert batch["video"]["frames"].shape[1:] == (8, res[1], res[0], 3)
                assert isinstance(batch["audio"]["array"], torch.Tensor)
                seen += len(batch["id"])
            assert seen == n, seen
            return n / (time.perf_counter() - t0)

        epoch(0)  # warm the page cache and imports
        rates: dict[int, list[float]] = {0: [], 2: []}
        for _ in range(epochs):
            for w in (0, 2):
                rates[w].append(epoch(w))
        best = {w: max(r) for w, r in rates.items()}
        median = {w: statistics.median(r) for w, r in rates.items()}

        # resume: k clips through a DataLoader in the main process, state_dict(), a fresh stream resumes
        ds = stream()
        every = [r["id"] for r in stream(decode=False)]
        first = []
        for row in DataLoader(ds, batch_size=None, num_workers=0):
            first.append(row["id"])
            if len(first) == k:
                break
        state = ds.state_dict()
        resumed = stream()
        resumed.load_state_dict(json.loads(json.dumps(state)))  # a checkpoint survives serialization
        rest = [r["id"] for r in DataLoader(resumed, batch_size=None, num_workers=0)]
        exact = first + rest == every
        return {"w0": best[0], "w2": best[2], "w0_median": median[0], "w2_median": median[2], "n": n, "k": k, "rest": len(rest), "expected_rest": n - k,
                "exact": exact, "torch": torch.__version__}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(size: str = "default") -> list[Result]:
    n = SIZES[size][0]
    name = f"training: DataLoader 2 vs 0 workers, {n} AV clips, streaming"
    rname = "training: state_dict() resume mid-epoch, remaining clips"
    py, why = torch_python()
    if py is None:
        return [skipped(name, why, ">= 1.60"), skipped(rname, why, "exact")]
    env = dict(os.environ, HF_DATASETS_DISABLE_PROGRESS_BARS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    proc = subprocess.run([py, os.path.abspath(__file__), "--child", size], capture_output=True, text=True,
                          env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"training benchmark child failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    ratio = out["w2"] / out["w0"]
    return [
        Result(name, out["w2"], out["w0"], "clips/s", ratio, ">= 1.60", ratio >= 1.6,
               f"baseline: 0 workers; torch {out['torch']}, wall clock", ours_median=out["w2_median"],
               baseline_median=out["w0_median"]),
        Result(rname, out["rest"], out["expected_rest"], "clips", out["rest"] / out["expected_rest"], "exact",
               bool(out["exact"]), f"state after {out['k']} of {out['n']}; fresh stream resumes"),
    ]


if __name__ == "__main__":
    bench_main(run, "training loop (issue 7)", child=_child, child_choices=sorted(SIZES))
