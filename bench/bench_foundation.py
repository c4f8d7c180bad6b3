"""Foundation targets (issue 2): resolution, metadata preparation, streaming FLAC decoding; and (issue 18)
the JSON metadata reader against the standard library for the dict layouts it reads.

Run: ``python bench/bench_foundation.py [--smoke|--full]``.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import soundfile as sf

sys.path.insert(0, os.path.dirname(__file__))
from _common import Result, bench_main, best_of, random_ids
from _perf import paired  # noqa: E402

import avsets  # noqa: E402
from avsets.core.segments import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS, clip_key  # noqa: E402
from avsets.media.media_index import MediaIndex  # noqa: E402
from avsets.media.resolve import ResolveOptions, attach_media, ensure_ids  # noqa: E402
from avsets.metadata.jsonmeta import normalize_key, read_records  # noqa: E402
from avsets.vggsound.metadata import label_list  # noqa: E402

EXTS = sorted(AUDIO_EXTENSIONS | VIDEO_EXTENSIONS)


def write_vggsound_like(path: str, n: int, ids: list[str]) -> None:
    """A header-less CRLF CSV shaped like vggsound.csv, labels with commas quoted."""
    names = label_list("default")
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\r\n")
        for i in range(n):
            w.writerow([ids[i], (i * 7) % 600, names[i % len(names)], "test" if i % 13 == 0 else "train"])


def write_aux(meta: str) -> None:
    from avsets.ops.demo import sample_data_dir

    sample = sample_data_dir()
    for name in ("stat.csv", "Common.txt", "AStest.csv"):
        shutil.copy(os.path.join(sample, name), os.path.join(meta, name))


def bench_resolution(n: int, work: str) -> Result:
    """Index ``n`` files and resolve ``n`` segments vs a per-row existence check over candidate names."""
    ids = random_ids(n, seed=1)
    root = os.path.join(work, "media")
    os.makedirs(root)
    starts = [(i * 7) % 600 for i in range(n)]
    for i, (ytid, s) in enumerate(zip(ids, starts, strict=True)):
        if i % 3 == 0:
            name = f"{ytid}_{s:06d}.flac"
        elif i % 3 == 1:
            name = f"{clip_key(ytid, s, s + 10)}.wav"
        else:
            name = f"{ytid}.mp4"
        with open(os.path.join(root, name), "wb") as f:
            f.write(b"x")  # empty files count as corrupt
    table = ensure_ids(pa.table({"youtube_id": ids, "start": [float(s) for s in starts],
                                 "end": [float(s + 10) for s in starts]}))

    def ours() -> None:
        index = MediaIndex.scan(root)
        out, stats = attach_media(table, index, ResolveOptions(on_missing="keep"))
        assert stats.missing == 0, stats.missing

    def baseline() -> None:
        found = 0
        for ytid, s in zip(ids, starts, strict=True):
            stems = [f"{ytid}_{s:06d}", clip_key(ytid, s, s + 10), f"{ytid}_{s:.3f}_{s + 10:.3f}",
                     f"Y{ytid}_{s:.3f}_{s + 10:.3f}", ytid]
            done = False
            for stem in stems:
                for ext in EXTS:
                    if os.path.exists(os.path.join(root, f"{stem}.{ext}")):
                        found += 1
                        done = True
                        break
                if done:
                    break
        assert found == n

    t_ours = best_of(ours, 3)
    t_base = best_of(baseline, 1)
    ratio = t_base / t_ours
    return Result(f"resolution: index+resolve {n:,} files/segments", t_ours, t_base, "s", ratio,
                  ">=10x, <5s", ratio >= 10 and t_ours < 5, "ratio = baseline/ours (speed-up)")


def bench_metadata(n: int, work: str) -> Result:
    """Prepare `default` from an n-row vggsound.csv (metadata + resolution) vs pyarrow read_csv + Arrow write."""
    meta = os.path.join(work, "meta")
    os.makedirs(meta)
    ids = random_ids(n, seed=2)
    write_vggsound_like(os.path.join(meta, "vggsound.csv"), n, ids)
    write_aux(meta)
    media = os.path.join(work, "media_meta")
    os.makedirs(media)
    for ytid in ids[:: max(1, n // 1000)]:
        with open(os.path.join(media, f"{ytid}.mp4"), "wb") as f:
            f.write(b"x")
    counter = iter(range(1000))

    def ours() -> None:
        cache = os.path.join(work, f"cache{next(counter)}")
        builder = avsets.load_dataset_builder("vggsound", data_dir=meta, media_dir=media, cache_dir=cache,
                                              on_missing="keep")
        builder.download_and_prepare()
        assert sum(s.num_examples for s in builder.info.splits.values()) == n

    def baseline() -> None:
        table = pacsv.read_csv(os.path.join(meta, "vggsound.csv"),
                               read_options=pacsv.ReadOptions(column_names=["id", "start", "label", "split"]))
        with pa.OSFile(os.path.join(work, "baseline.arrow"), "wb") as sink:
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)

    times = paired({"ours": ours, "baseline": baseline}, repeat=7)  # 3 swung 0.77-0.86 between runs  # alternating, fastest wall kept
    t_ours, t_base = times["ours"].wall, times["baseline"].wall
    ratio = t_ours / t_base
    return Result(f"metadata: prepare vggsound default, {n:,} rows", t_ours, t_base, "s", ratio, "<=10x",
                  ratio <= 10, "ratio = ours/baseline (slowdown)")


def bench_audio(n: int, work: str) -> Result:
    """Streaming load_dataset decoding 10-s FLAC clips vs a bare soundfile loop over the same files."""
    meta = os.path.join(work, "meta_audio")
    media = os.path.join(work, "flac")
    os.makedirs(meta)
    os.makedirs(media)
    ids = random_ids(n, seed=3)
    write_vggsound_like(os.path.join(meta, "vggsound.csv"), n, ids)
    write_aux(meta)
    rng = np.random.default_rng(0)
    paths = []
    for i, ytid in enumerate(ids):
        s = (i * 7) % 600
        p = os.path.join(media, f"{ytid}_{s:06d}.flac")
        sf.write(p, (0.1 * rng.standard_normal(160000)).astype(np.float32), 16000, subtype="PCM_16")
        paths.append(p)
    cache = os.path.join(work, "cache_audio")
    kw = dict(data_dir=meta, media_dir=media, cache_dir=cache, streaming=True, modalities=("audio",))

    def ours() -> None:
        count = 0
        for split in ("train", "test"):
            for row in avsets.load_dataset("vggsound", split=split, **kw):
                count += row["audio"]["array"].shape[0] == 160000
        assert count == n, count

    def baseline() -> None:
        count = 0
        for p in paths:
            data, sr = sf.read(p, dtype="float32")
            count += data.shape[0] == 160000
        assert count == n

    # alternating runs, fastest process CPU time kept: both sides are single-process, and CPU time is what
    # the shared cores' neighbours disturb least (see _perf.paired)
    times = paired({"ours": ours, "baseline": baseline}, repeat=7)  # 3 swung 0.77-0.86 between runs
    t_ours, t_base = times["ours"].cpu, times["baseline"].cpu
    ratio = t_base / t_ours  # ours as a fraction of the baseline's clips/s
    return Result(f"audio: streaming decode of {n} 10-s FLAC clips", n / t_ours, n / t_base, "clips/s", ratio,
                  ">=0.80", ratio >= 0.8, "ratio = ours/baseline clips/s", ours_median=n / t_ours.median,
                  baseline_median=n / t_base.median)


def bench_json_layouts(n: int) -> list[Result]:
    """``jsonmeta.read_records`` of AVSET-shaped files in the two dict layouts vs the reference: ``json.loads``
    and ``pa.Table.from_pylist`` of the same bytes.  Round 2's NumPy lexer lost this comparison 2-6x; the
    rows stay so that a hand-written reader can only come back with a measured gain."""
    ids = random_ids(n, seed=5)
    recs = {y: {"Youtube ID": y, "Start Time": f"{(i * 7) % 300}.000", "End Time": f"{(i * 7) % 300 + 10}.000",
                "AVC": repr((i % 97) / 97), "Flag (Sound Separation)": i % 2, "Label": "/m/09x0r,/m/04rlf"}
            for i, y in enumerate(ids)}
    keyed = json.dumps(recs, indent=1).encode()
    columns = json.dumps({k: {str(i): r[k] for i, r in enumerate(recs.values())}
                          for k in next(iter(recs.values()))}).encode()
    fields = {normalize_key(k) for k in next(iter(recs.values()))}

    def ref_keyed() -> None:
        data = json.loads(keyed)
        pa.Table.from_pylist(list(data.values())).append_column("__key__", pa.array(list(data)))

    def ref_columns() -> None:
        pa.table({k: list(v.values()) for k, v in json.loads(columns).items()})

    out = []
    for name, raw, ref in (("keyed by id", keyed, ref_keyed), ("columns-dict", columns, ref_columns)):
        t = paired({"ours": lambda raw=raw: read_records(raw, file="bench.json", field_names=fields),
                    "ref": ref}, repeat=7)
        ratio = t["ours"].cpu / t["ref"].cpu
        out.append(Result(f"metadata: JSON {name}, {n:,} rows, read_records", t["ours"].cpu.scaled(1000),
                          t["ref"].cpu.scaled(1000), "ms cpu", ratio, "<= 1.5x", ratio <= 1.5,
                          "baseline: json.loads + pyarrow from Python objects"))
    return out


SIZES = {"smoke": (2000, 5000, 20), "default": (200_000, 199_176, 300), "full": (200_000, 199_176, 1000)}


def run(size: str = "default") -> list[Result]:
    n_res, n_meta, n_audio = SIZES[size]
    work = tempfile.mkdtemp(prefix="avsets-bench-")
    try:
        return [bench_resolution(n_res, work), bench_metadata(n_meta, work), bench_audio(n_audio, work),
                *bench_json_layouts(2_000 if size == "smoke" else 25_000)]
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    bench_main(run, "foundation (issue 2)")
