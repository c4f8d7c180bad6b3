"""Every other landed corpus exports and loads back with stock `datasets` (VGGSound and AVSET-10M have their
own, deeper round-trip tests): AudioSetZSL (YouTube segments), ASCC (no segment: whole files) and AVMIT
(Moments-in-Time relative paths as ids, video files), each on its bundled real metadata + synthetic media."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
from datasets import Audio
from helpers import mini_audiosetzsl

import avsets
from avsets.core.segments import clip_key
from avsets.media.decoding import decode_audio
from avsets.media.synth import write_audio, write_video
from avsets.ops.publish.export import export

MEDIA_COLUMNS = ("audio", "video", "media_offset")


def _audiosetzsl_root(tmp_path) -> str:
    """First 2 rows of each class file of the real repository files (bundled archive)."""
    from avsets.audiosetzsl.metadata import bundled_archive, extract_archive

    full = extract_archive(bundled_archive(), str(tmp_path / "zsl_full"))
    return str(mini_audiosetzsl(full, tmp_path / "AudioSetZSL", rows=2))


def _data_dir(corpus: str, tmp_path) -> str:
    if corpus == "audiosetzsl":
        return _audiosetzsl_root(tmp_path)
    import importlib.resources

    return str(importlib.resources.files(f"avsets.{corpus}") / "sample")


def _write_media(row: dict, media) -> None:
    """Media for one row in a naming the resolver knows: trimmed clip, whole file, or MIT relative path."""
    if row.get("start") is not None and row.get("youtube_id"):
        write_audio(media / f"{clip_key(row['youtube_id'], row['start'], row['end'])}.flac",
                    seconds=row["end"] - row["start"], start=row["start"])
    elif row.get("youtube_id"):
        write_audio(media / f"{row['youtube_id']}.flac", seconds=3.0)
    else:
        path = media / (row.get("video_location") or "training") / row["id"]  # MIT_training / MIT_validation
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, seconds=1.0, size=(32, 24))


@pytest.mark.slow
@pytest.mark.parametrize("corpus,config", [("audiosetzsl", "default"), ("ascc", "default"), ("avmit", "avmit16")])
def test_corpus_exports_and_loads_back(corpus, config, tmp_path):
    data_dir, cache, media = _data_dir(corpus, tmp_path), str(tmp_path / "cache"), tmp_path / "media"
    media.mkdir()
    meta = avsets.load_dataset(corpus, config, data_dir=data_dir, cache_dir=cache)
    for split in meta.values():
        for i in range(min(2, split.num_rows)):
            _write_media(split[i], media)

    out = tmp_path / "hub"
    res = export(corpus, config, data_dir=data_dir, media_dir=str(media), out=str(out), cache_dir=cache)
    src = avsets.load_dataset(corpus, config, data_dir=data_dir, media_dir=str(media), cache_dir=cache)
    assert {s: r.metadata_rows for s, r in res.splits.items()} == {s: d.num_rows for s, d in meta.items()}
    assert {s: r.num_rows for s, r in res.splits.items()} == {s: d.num_rows for s, d in src.items()}

    stock = datasets.load_dataset(str(out), config, cache_dir=str(tmp_path / "stock"))
    for split, want in src.items():
        if want.num_rows == 0:
            assert split not in stock
            continue
        got = stock[split].cast_column("audio", Audio(decode=False))
        columns = [c for c in got.column_names if c not in MEDIA_COLUMNS]
        assert columns == [c for c in want.column_names if c not in MEDIA_COLUMNS]
        for c in columns:
            assert got.features[c] == want.features[c], c
            assert got[c] == want[c], c
        for w, g in zip(want, got, strict=True):
            arr, sr = decode_audio(path=g["audio"]["path"], data=g["audio"]["bytes"])
            assert sr == w["audio"]["sampling_rate"]
            np.testing.assert_allclose(arr, w["audio"]["array"], atol=2.0**-22)
