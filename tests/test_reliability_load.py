"""Load (issue 8): 1,000 clips, 30% missing and 5% corrupt, streamed through decode; every count exact.

Media is small and fast: 1-s FLAC at 8 kHz.  Corrupt clips are non-empty (so the cheap prepare-time check
lets them through) and fail at decode time: an HTML error page saved as ``.flac`` and a FLAC whose header was
overwritten.
"""

from __future__ import annotations

import logging
import re
import warnings

import numpy as np
import pytest
import soundfile as sf
from datasets.distributed import split_dataset_by_node

import avsets
from avsets import MediaWarning
from avsets.build.transform import DECODE_STATS
from avsets.core.errors import MediaError
from avsets.media.decoding import decode_audio

N, SR, LABEL = 1000, 8000, "dog barking"


def _kind(i: int) -> str:
    if i % 10 < 3:
        return "missing"  # 300
    if i % 20 == 3:
        return "corrupt"  # 50
    return "good"  # 650


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("load")
    media, meta = root / "media", root / "meta"
    media.mkdir()
    meta.mkdir()
    rng = np.random.default_rng(0)
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR)).astype(np.float32)
    rows, ids = [], {"good": set(), "missing": set(), "corrupt": set()}
    for i in range(N):
        ytid = f"L{i:010d}"
        rows.append(f"{ytid},0,{LABEL},train\n")
        kind = _kind(i)
        ids[kind].add(f"{ytid}_0_10000")
        path = media / f"{ytid}_000000.flac"
        if kind == "good":
            sf.write(str(path), tone * (0.5 + rng.random()), SR, subtype="PCM_16")
        elif kind == "corrupt" and i % 40 == 3:
            path.write_text("<!DOCTYPE html><html><body>Video unavailable</body></html>\n" * 4)
        elif kind == "corrupt":
            sf.write(str(path), tone, SR, subtype="PCM_16")
            data = bytearray(path.read_bytes())
            data[:64] = b"\x00" * 64
            path.write_bytes(bytes(data))
    (meta / "vggsound.csv").write_text("".join(rows))
    (meta / "stat.csv").write_text(f"{LABEL},{N},animals\n")
    for cid in ids["corrupt"]:  # precondition: the decoder really refuses every corrupt clip
        with pytest.raises(MediaError):
            decode_audio(str(media / f"{cid.split('_')[0]}_000000.flac"), duration=10.0)
    assert [len(ids[k]) for k in ("good", "missing", "corrupt")] == [650, 300, 50]
    return str(meta), str(media), ids


def _no_media_counts(records) -> tuple[int, int]:
    """Sum the builder's "N of M rows have no media" log lines."""
    missing = total = 0
    for r in records:
        m = re.search(r"(\d+) of (\d+) rows have no media", r.getMessage())
        if m:
            missing += int(m.group(1))
            total += int(m.group(2))
    return missing, total


@pytest.mark.slow
def test_streaming_1000_clips_counts_exact(corpus, caplog):
    meta, media, ids = corpus
    DECODE_STATS.reset()
    ds = avsets.load_dataset("vggsound", split="train", data_dir=meta, media_dir=media, streaming=True,
                             on_missing="skip", rows_per_shard=100)
    assert ds.num_shards == 10
    seen = []
    with caplog.at_level(logging.WARNING, logger="avsets"), warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for row in ds:
            assert row["audio"]["array"].shape == (SR,) and row["audio"]["sampling_rate"] == SR
            seen.append(row["id"])
    assert len(seen) == len(set(seen)) == 650 and set(seen) == ids["good"]
    named = {m.group(1) for w in record if issubclass(w.category, MediaWarning)
             for m in [re.search(r"clip (\S+)", str(w.message))] if m}
    assert named == ids["corrupt"]
    assert DECODE_STATS.counts["audio_ok"] == 650
    assert DECODE_STATS.counts["audio_failed"] == 50
    assert DECODE_STATS.counts["dropped"] == 50 + 300  # corrupt clips + rows without media (issue 19)
    assert _no_media_counts(caplog.records) == (300, 1000)


def test_two_nodes_split_the_counts_exactly(corpus, caplog):
    """``split_dataset_by_node``: two ranks together see every good clip once, and the counts still add up."""
    meta, media, ids = corpus
    DECODE_STATS.reset()
    ds = avsets.load_dataset("vggsound", split="train", data_dir=meta, media_dir=media, streaming=True,
                             on_missing="skip", rows_per_shard=100)
    seen = []
    with caplog.at_level(logging.WARNING, logger="avsets"), warnings.catch_warnings():
        warnings.simplefilter("ignore", MediaWarning)
        for rank in range(2):
            seen += [r["id"] for r in split_dataset_by_node(ds, rank=rank, world_size=2)]
    assert sorted(seen) == sorted(ids["good"])
    assert (DECODE_STATS.counts["audio_ok"], DECODE_STATS.counts["dropped"]) == (650, 50 + 300)
    assert _no_media_counts(caplog.records) == (300, 1000)


def test_map_style_and_verify_counts_exact(corpus, tmp_path):
    meta, media, ids = corpus
    ds = avsets.load_dataset("vggsound", split="train", data_dir=meta, media_dir=media, on_missing="skip",
                             cache_dir=str(tmp_path))
    assert len(ds) == 700  # missing rows dropped at prepare time; corrupt ones cannot vanish on access
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        none = {r["id"] for r in ds if r["audio"] is None}
    assert none == ids["corrupt"]
    assert sum(issubclass(w.category, MediaWarning) for w in record) == 50
    from avsets.ops.verify import verify

    report = verify("vggsound", data_dir=meta, media_dir=media, progress=False, workers=2)
    train = next(c for c in report if c.split == "train")
    assert (train.rows, train.found, train.missing, train.corrupt) == (1000, 700, 300, 50)
    assert set(train.missing_ids) == ids["missing"]
    assert {cid for cid, _, _ in train.corrupt_ids} == ids["corrupt"]
