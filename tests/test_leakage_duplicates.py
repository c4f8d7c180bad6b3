"""Re-uploads planted from real media (tests/data/real/leakage, see PROVENANCE.md) are found by
``avsets duplicates``; distinct real clips are not paired.  Precision and recall are printed and asserted."""

from __future__ import annotations

import csv
import itertools
import os
import shutil

import pyarrow.parquet as pq
import pytest
from helpers import writable_sample
from leakage_media import real_clip, transcode

from avsets.cli.app import main
from avsets.ops.leakage.store import read_fingerprints

ORIGINALS = {  # train split: youtube id -> real clip
    "bbbAAAAAA00": "bbb_00.mp4", "bbbBBBBBB12": "bbb_12.mp4", "bbbCCCCCC24": "bbb_24.mp4",
    "chaplin0000": "chaplin_00.mp4", "smpte000000": "smpte_00.mp4", "vwfa0000000": "vwfa_00.mp4",
}
#: test split: youtube id -> (source youtube id, how it was re-uploaded, transcode options, extension)
PLANTS = {
    "vp9opus0001": ("bbbBBBBBB12", dict(vcodec="vp9", acodec="opus"), "webm"),
    "resized0002": ("chaplin0000", dict(size=(128, 72)), "mp4"),
    "late05s0003": ("bbbCCCCCC24", dict(start=0.5), "mp4"),
    "quiet3db004": ("bbbAAAAAA00", dict(gain_db=-3.0), "mp4"),
    "audioonly05": ("chaplin0000", dict(vcodec=None, acodec="opus"), "ogg"),
    "videoonly06": ("vwfa0000000", dict(acodec=None), "mp4"),
}
DISTINCT_TEST = {"otherclip07": "opus_vp9_late_audio.webm"}  # a real clip that is in no other row
LABEL = "playing bass guitar"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A VGGSound-shaped corpus: originals in train, re-uploads under new ids in test."""
    root = tmp_path_factory.mktemp("leak")
    meta = writable_sample("vggsound", root / "meta")
    media = root / "media"
    media.mkdir()
    lines = []
    for yt, name in ORIGINALS.items():
        shutil.copyfile(real_clip(name), media / f"{yt}_000000.mp4")
        lines.append(f"{yt},0,{LABEL},train")
    for yt, (src, opts, ext) in PLANTS.items():
        opts = {"seconds": 5.0, **opts}
        transcode(real_clip(ORIGINALS[src]), str(media / f"{yt}_000000.{ext}"), **opts)
        lines.append(f"{yt},0,{LABEL},test")
    for yt, name in DISTINCT_TEST.items():
        shutil.copyfile(os.path.join(os.path.dirname(real_clip(name)), os.pardir, name), media / f"{yt}_000000.webm")
        lines.append(f"{yt},0,{LABEL},test")
    (meta / "vggsound.csv").write_text("\r\n".join(lines) + "\r\n")
    return str(meta), str(media), root


def _groups() -> dict[str, str]:
    """youtube id -> the original it was made from (itself for originals)."""
    out = {yt: yt for yt in ORIGINALS}
    out.update({yt: src for yt, (src, _, _) in PLANTS.items()})
    out.update({yt: yt for yt in DISTINCT_TEST})
    return out


def _modalities(yt: str) -> set[str]:
    if yt in PLANTS:
        opts = PLANTS[yt][1]
        return {m for m, key in (("audio", "acodec"), ("video", "vcodec")) if opts.get(key, "x") is not None}
    return {"audio", "video"}


def _expected_pairs() -> dict[frozenset, str]:
    """Every pair of clips made from the same original, with the kind its shared modalities give."""
    groups = _groups()
    out = {}
    for a, b in itertools.combinations(groups, 2):
        if groups[a] == groups[b]:
            shared = _modalities(a) & _modalities(b)
            out[frozenset((a, b))] = "both" if shared == {"audio", "video"} else shared.pop()
    return out


def test_planted_reuploads_found_distinct_not_paired(corpus, capsys):
    meta, media, root = corpus
    out, fp = root / "dups.csv", root / "fp.parquet"
    code = main(["duplicates", "vggsound", "--data-dir", meta, "--media-dir", media, "--out", str(out),
                 "--fingerprints", str(fp), "--quiet"])
    assert code == 0, capsys.readouterr()
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["corpus_a", "split_a", "id_a", "corpus_b", "split_b", "id_b", "kind", "score"]
    found = {frozenset((r["id_a"].rsplit("_", 2)[0], r["id_b"].rsplit("_", 2)[0])): r for r in rows}
    expected = _expected_pairs()
    hits = set(found) & set(expected)
    precision = len(hits) / len(found) if found else 1.0
    recall = len(hits) / len(expected)
    print(f"\nleakage fixture set: {len(expected)} planted pairs, {len(found)} found, precision {precision:.2f}, "
          f"recall {recall:.2f}; scores {sorted(float(r['score']) for r in rows)}")
    assert recall == 1.0, sorted(tuple(sorted(p)) for p in set(expected) - set(found))
    assert precision == 1.0, sorted(tuple(sorted(p)) for p in set(found) - set(expected))
    for pair, kind in expected.items():
        assert found[pair]["kind"] == kind, (sorted(pair), found[pair])
        assert 0.5 < float(found[pair]["score"]) <= 1.0
    # a train original and its re-upload in test: reported across the splits
    r = found[frozenset(("bbbBBBBBB12", "vp9opus0001"))]
    assert (r["corpus_a"], r["split_a"], r["corpus_b"], r["split_b"]) == ("vggsound", "train", "vggsound", "test")


def test_fingerprints_are_cached_by_id_and_media(corpus, capsys):
    meta, media, root = corpus
    fp = root / "fp2.parquet"
    args = ["fingerprint", "vggsound", "--data-dir", meta, "--media-dir", media, "--out", str(fp), "--quiet"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "13 computed, 0 reused, 0 failed" in first
    table = read_fingerprints(fp)
    assert table.num_rows == 13 and b"haitsma-kalker" in pq.read_schema(fp).metadata[b"avsets.fingerprints"]
    assert main(args) == 0
    assert "0 computed, 13 reused" in capsys.readouterr().out
    # a changed file is recomputed, the others are not
    victim = next(p for p in (root / "media").iterdir() if p.name.startswith("smpte"))
    shutil.copyfile(real_clip("bbb_00.mp4"), victim)
    assert main(args) == 0
    assert "1 computed, 12 reused" in capsys.readouterr().out
    shutil.copyfile(real_clip("smpte_00.mp4"), victim)


def test_a_corrupt_clip_fails_with_exit_1(corpus, tmp_path, capsys):
    meta, media, _ = corpus
    bad_media = tmp_path / "media"
    shutil.copytree(media, bad_media)
    (bad_media / "chaplin0000_000000.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    code = main(["fingerprint", "vggsound", "--data-dir", meta, "--media-dir", str(bad_media),
                 "--out", str(tmp_path / "fp.parquet"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 1 and "1 failed" in out and "chaplin0000" in out


def test_duplicates_from_an_existing_table_and_usage_errors(corpus, tmp_path, capsys):
    meta, media, root = corpus
    fp = root / "fp3.parquet"
    assert main(["fingerprint", "vggsound/test", "--data-dir", meta, "--media-dir", media, "--out", str(fp),
                 "--quiet"]) == 0
    out = tmp_path / "d.csv"
    assert main(["duplicates", "--fingerprints", str(fp), "--out", str(out)]) == 0
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    # within the test split alone: the audio-only copy of the film and its resized copy share their sound
    assert [(r["id_a"][:11], r["id_b"][:11], r["kind"]) for r in rows] == [("resized0002", "audioonly05", "audio")]
    capsys.readouterr()
    assert main(["duplicates", "--out", str(tmp_path / "x.csv"), "--fingerprints", str(tmp_path / "none.parquet")]) == 2
    assert "name the corpus splits" in capsys.readouterr().err
    assert main(["fingerprint", "vggsound", "--data-dir", meta, "--out", str(tmp_path / "f.parquet")]) == 2
    assert "no --media-dir for vggsound" in capsys.readouterr().err


def test_an_interrupted_fingerprint_run_resumes(corpus, tmp_path, monkeypatch):
    """Flushed parts survive an interruption; the rerun computes only the clips not flushed."""
    from avsets.cli.leakage import load_units
    from avsets.ops.leakage import store
    from avsets.ops.leakage.units import parse_spec

    meta, media, _ = corpus
    units = load_units([parse_spec("vggsound")], [meta], None, [media], with_media=True)
    monkeypatch.setattr(store, "FLUSH_EVERY", 4)
    calls = []

    def dying(row):
        if len(calls) == 9:
            raise KeyboardInterrupt
        calls.append(row["id"])
        return store.fingerprint_row(row)

    out = tmp_path / "fp.parquet"
    with pytest.raises(KeyboardInterrupt):
        store.fingerprint_units(units, out, workers=1, progress=False, compute=dying)
    # two full parts of 4, and the 1 clip computed after them flushed on the way out
    assert not out.exists() and len(list((tmp_path / "fp.parquet.parts").glob("*.parquet"))) == 3
    run = store.fingerprint_units(units, out, workers=1, progress=False)
    assert (run.reused, run.computed, run.failed) == (9, 4, 0)
    assert not (tmp_path / "fp.parquet.parts").exists() and store.read_fingerprints(out).num_rows == 13
