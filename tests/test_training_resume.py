"""A torch training loop over a streaming load: ``state_dict()`` resume mid-epoch yields exactly the rest.

Runs only where torch is importable (avsets never requires it; ``bench/setup_torch_env.sh`` makes a venv that
has it); skipped otherwise. Also checks that decoding inside DataLoader workers yields every clip once.
"""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (avsets does not need it)")
from torch.utils.data import DataLoader  # noqa: E402

import avsets  # noqa: E402
from avsets.media.synth import write_audio, write_video  # noqa: E402
from avsets.vggsound.metadata import label_list  # noqa: E402

N = 23  # rows: shards of 5 leave a short last shard


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, vgg_sample_dir):
    import shutil

    root = tmp_path_factory.mktemp("train")
    meta, media = root / "meta", root / "media"
    meta.mkdir()
    media.mkdir()
    names = label_list("default")
    lines = []
    for i in range(N):
        ytid = f"clip{i:07d}"
        lines.append(f'{ytid},{i},"{names[i % len(names)]}",train')
        if i % 4 == 0:
            write_video(media / f"{ytid}_{i:06d}.mp4", seconds=10.0, size=(32, 24))
        else:
            write_audio(media / f"{ytid}_{i:06d}.flac", seconds=10.0)
    (meta / "vggsound.csv").write_text("\r\n".join(lines) + "\r\n")
    for name in ("stat.csv", "Common.txt", "AStest.csv"):
        shutil.copy(f"{vgg_sample_dir}/{name}", meta / name)
    return str(meta), str(media)


def _stream(corpus, cache_dir, **kw):
    meta, media = corpus
    return avsets.load_dataset("vggsound", split="train", data_dir=meta, media_dir=media, cache_dir=cache_dir,
                               streaming=True, rows_per_shard=5, modalities=("audio",), **kw)


@pytest.mark.parametrize("k", [1, 7, 10, 22])
def test_state_dict_resume_yields_exactly_the_remaining_clips(corpus, cache_dir, k):
    every = [r["id"] for r in _stream(corpus, cache_dir, decode=False)]
    assert len(every) == N
    ds = _stream(corpus, cache_dir)
    first = []
    for row in DataLoader(ds, batch_size=None, num_workers=0):
        assert row["audio"]["array"].shape == (160000,)
        first.append(row["id"])
        if len(first) == k:
            break
    state = json.loads(json.dumps(ds.state_dict()))  # a checkpoint written to disk and read back
    resumed = _stream(corpus, cache_dir)
    resumed.load_state_dict(state)
    rest = [row["id"] for row in DataLoader(resumed, batch_size=None, num_workers=0)]
    assert first + rest == every


def _collate(rows: list[dict]) -> dict:
    """Stack the audio, keep the ids (``video`` is None in an audio-only load: default_collate rejects it)."""
    return {"id": [r["id"] for r in rows], "audio": torch.stack([torch.from_numpy(r["audio"]["array"]) for r in rows])}


def test_two_workers_yield_every_clip_once(corpus, cache_dir):
    ds = _stream(corpus, cache_dir)
    assert ds.num_shards == 5
    ids = []
    for batch in DataLoader(ds, batch_size=4, num_workers=2, collate_fn=_collate):
        assert batch["audio"].shape[1:] == (160000,)
        ids += batch["id"]
    assert sorted(ids) == sorted(r["id"] for r in _stream(corpus, cache_dir, decode=False))
