"""Export: stock `datasets` reads back what avsets wrote (rows, labels, media), shard bounds, resume, card merge."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import av
import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from datasets import Audio, Video
from test_publish_support import (
    LABELS,
    as_dict,
    corpus_rows,
    decode_bytes,
    make_dataset,
    reference_audio,
    write_audio,
)

from avsets.media.decoding import decode_audio
from avsets.ops.publish.export import ExportEmptyError, ExportMismatchError, export_dataset
from avsets.ops.publish.shards import fixed_overhead

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, datasets.DatasetDict, list[dict], list[dict]]:
    """train: 24 trimmed 16-bit FLAC clips (every 6th missing); test: 5 whole 24-bit WAVs cut at 1 s."""
    root = tmp_path_factory.mktemp("small")
    train = corpus_rows(root / "media", 24, kind="trimmed", missing_every=6)
    test = corpus_rows(root / "media", 5, split="test", kind="whole")
    return root, as_dict(train=make_dataset(train), test=make_dataset(test, "test")), train, test


@pytest.fixture(scope="module")
def exported(small, tmp_path_factory) -> tuple[Path, object]:
    _, dsd, _, _ = small
    out = tmp_path_factory.mktemp("out") / "hub"
    res = export_dataset(dsd, "vggsound", "default", str(out), max_shard_size="150KB")
    return out, res


def _stock(out: Path, config: str, tmp: Path, **kw):
    return datasets.load_dataset(str(out), config, cache_dir=str(tmp / "cache"), **kw)


def test_layout_and_counts(exported, small):
    out, res = exported
    _, _, train, test = small
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and ".avsets" not in p.parts)
    n = len(res.splits["train"].files)
    assert n > 1
    assert files == sorted(["README.md", "manifests/default.json", *res.splits["train"].files,
                            *res.splits["test"].files])
    assert files[1] == f"data/default/test-00000-of-{len(res.splits['test'].files):05d}.parquet"
    assert res.splits["train"].num_rows == 20 and res.splits["train"].metadata_rows == 24
    assert res.splits["train"].skipped == 4 and res.splits["train"].copied == 20
    assert res.splits["test"].encoded == 5
    assert datasets.get_dataset_config_names(str(out)) == ["default"]


def test_stock_load_matches_source(exported, small, tmp_path):
    out, _ = exported
    _, dsd, train, test = small
    ds = _stock(out, "default", tmp_path)
    assert ds["train"].features["audio"] == Audio()  # decoding on for Hub users
    assert "video" not in ds["train"].features  # no --video
    assert ds["train"].features["label"].names == LABELS
    for split, rows in (("train", train), ("test", test)):
        got = ds[split].cast_column("audio", Audio(decode=False))
        want = [r for r in rows if r["audio"] is not None]
        assert got["id"] == [r["id"] for r in want]
        assert got["label"] == [r["label"] for r in want]
        assert got["start"] == [r["start"] for r in want]
        assert set(got["media_offset"]) == {0.0}
        for row, cell in zip(want, got["audio"], strict=True):
            ref, sr = reference_audio(row)
            assert sf.info(io.BytesIO(cell["bytes"])).samplerate == sr
            np.testing.assert_array_equal(decode_bytes(cell["bytes"], ref), ref)
            assert cell["path"] == f"{row['id']}.flac"


def test_trimmed_flac_is_copied_byte_for_byte(exported, small, tmp_path):
    out, _ = exported
    _, _, train, _ = small
    got = _stock(out, "default", tmp_path, split="train").cast_column("audio", Audio(decode=False))
    want = [r for r in train if r["audio"] is not None]
    for row, cell in zip(want, got["audio"], strict=True):
        assert cell["bytes"] == Path(row["audio"]["path"]).read_bytes()


def test_stock_streaming_matches(exported, small, tmp_path):
    out, _ = exported
    _, _, train, _ = small
    ids = _stock(out, "default", tmp_path, split="train", streaming=True)
    assert ids.num_shards == len(list((out / "data/default").glob("train-*.parquet")))
    rows = list(ids.decode(False))
    want = [r for r in train if r["audio"] is not None]
    assert [r["id"] for r in rows] == [r["id"] for r in want]
    for row, got in zip(want, rows, strict=True):
        ref, _ = reference_audio(row)
        np.testing.assert_array_equal(decode_bytes(got["audio"]["bytes"], ref), ref)


def test_parquet_schema_metadata_and_shard_bounds(exported):
    out, _ = exported
    for path in (out / "data/default").glob("*.parquet"):
        pf = pq.ParquetFile(path)
        meta = json.loads(pf.schema_arrow.metadata[b"huggingface"])
        assert meta["info"]["features"]["audio"] == {"_type": "Audio"}
        assert path.stat().st_size <= 150_000 * 1.10
        for i in range(pf.num_row_groups):
            assert pf.metadata.row_group(i).num_rows <= 1000


def test_card_yaml(exported):
    out, _ = exported
    card = (out / "README.md").read_text()
    data = datasets.load_dataset_builder(str(out), "default").info
    assert data.splits["train"].num_examples == 20 and data.splits["test"].num_examples == 5
    for key in ("license:", "pretty_name:", "task_categories:", "size_categories:", "tags:", "configs:",
                "dataset_info:", "path: data/default/train-*"):
        assert key in card
    assert "| default | train | 24 | 20 | 83.3% |" in card
    assert "@InProceedings{Chen20" in card  # the corpus card's citation


def test_second_config_merges_and_leaves_first_untouched(small, tmp_path):
    _, dsd, _, _ = small
    out = tmp_path / "hub"
    export_dataset(dsd, "vggsound", "default", str(out), max_shard_size="1MB")
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "data/default").iterdir()}
    export_dataset(as_dict(test=dsd["test"]), "vggsound", "astest", str(out), max_shard_size="1MB")
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "data/default").iterdir()}
    assert before == after
    assert sorted(datasets.get_dataset_config_names(str(out))) == ["astest", "default"]
    card = (out / "README.md").read_text()
    assert "| astest | test | 5 | 5 | 100.0% |" in card and "| default | train | 24 | 20 | 83.3% |" in card
    assert "| astest | test | 5 | `" in card and "| default | train | 20 | `" in card  # both manifests' hashes
    assert sorted(p.name for p in (out / "manifests").iterdir()) == ["astest.json", "default.json"]
    a = _stock(out, "astest", tmp_path)
    d = _stock(out, "default", tmp_path)
    assert list(a) == ["test"] and a["test"].num_rows == 5 and d["train"].num_rows == 20


def test_rerun_with_other_options_refuses(small, tmp_path):
    _, dsd, _, _ = small
    out = tmp_path / "hub"
    export_dataset(dsd, "vggsound", "default", str(out), max_shard_size="1MB")
    with pytest.raises(ExportMismatchError):
        export_dataset(dsd, "vggsound", "default", str(out), max_shard_size="2MB")
    res = export_dataset(dsd, "vggsound", "default", str(out), max_shard_size="2MB", overwrite=True)
    assert len(res.splits["train"].files) == 1


def test_oversize_row_gets_own_shard_and_row_groups(tmp_path):
    media = tmp_path / "media"
    rows = corpus_rows(media, 6, kind="trimmed", seconds=0.5)
    big = write_audio(media / "big_0_5000.flac", 5.0, seed=99)
    rows[3]["audio"]["path"] = str(big)
    rows[3]["end"] = 5.0
    small = Path(rows[0]["audio"]["path"]).stat().st_size
    fixed = fixed_overhead(make_dataset(rows).features.arrow_schema.with_metadata(
        {"huggingface": json.dumps({"info": {"features": make_dataset(rows).features.to_dict()}})}))
    limit = fixed + 3 * (small + 250) + small // 2
    assert big.stat().st_size > limit
    res = export_dataset(make_dataset(rows), "vggsound", "default", str(tmp_path / "out"), max_shard_size=limit)
    sizes = [pq.ParquetFile(tmp_path / "out" / f).metadata.num_rows for f in res.splits["train"].files]
    assert sizes == [3, 1, 2]


def test_row_groups_hold_at_most_1000_rows(tmp_path):
    src = write_audio(tmp_path / "x.flac", 0.01)
    rows = [{"id": f"r{i}", "youtube_id": f"r{i}", "start": 0.0, "end": 0.01, "label": 0,
             "audio": {"bytes": None, "path": str(src)}, "video": None, "media_offset": 0.0} for i in range(2300)]
    res = export_dataset(make_dataset(rows), "vggsound", "default", str(tmp_path / "out"))
    (f,) = res.splits["train"].files
    md = pq.ParquetFile(tmp_path / "out" / f).metadata
    assert [md.row_group(i).num_rows for i in range(md.num_row_groups)] == [1000, 1000, 300]


def test_video_export_mp4(tmp_path):
    rows = corpus_rows(tmp_path / "media", 3, kind="mp4", seconds=2.0)
    res = export_dataset(make_dataset(rows), "vggsound", "default", str(tmp_path / "out"), video=True)
    assert res.splits["train"].encoded == 6
    ds = _stock(tmp_path / "out", "default", tmp_path, split="train")
    assert ds.features["video"] == Video() and ds.features["audio"] == Audio()
    ds = ds.cast_column("audio", Audio(decode=False)).cast_column("video", Video(decode=False))
    for row, got in zip(rows, ds, strict=True):
        with av.open(io.BytesIO(got["video"]["bytes"])) as c:
            assert [s.codec_context.name for s in c.streams] == ["h264", "aac"]
            frames = [f for f in c.decode(video=0)]
            assert len(frames) == 50  # 2 s at 25 fps: frames 25..74 of the source
            band = frames[0].to_ndarray(format="rgb24")[:8].mean()
            assert abs(band - 125) < 6  # frame index 25 -> gray 125
        want, _ = decode_audio(path=row["audio"]["path"], offset=1.0, duration=2.0, mono=False)
        got_a, _ = sf.read(io.BytesIO(got["audio"]["bytes"]), dtype="float32", always_2d=True)
        assert got_a.shape == want.T.shape
        np.testing.assert_allclose(got_a, want.T, atol=2.0**-22)


@pytest.mark.slow
def test_num_proc_gives_same_shards(small, tmp_path):
    _, dsd, _, _ = small
    a = export_dataset(dsd, "vggsound", "default", str(tmp_path / "a"), max_shard_size="150KB")
    b = export_dataset(dsd, "vggsound", "default", str(tmp_path / "b"), max_shard_size="150KB", num_proc=2)
    assert a.splits["train"].files == b.splits["train"].files
    for f in a.splits["train"].files + a.splits["test"].files:
        assert pq.read_table(tmp_path / "a" / f).equals(pq.read_table(tmp_path / "b" / f))


KILLER = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from test_publish_support import corpus_rows, make_dataset
    from pathlib import Path
    from avsets.ops.publish import shards
    from avsets.ops.publish.export import export_dataset
    kill_after = int(sys.argv[1])
    shards.ROW_GROUP_ROWS = 1  # every row reaches the .tmp file at once
    orig_add = shards.ShardWriter.add
    def add(self, *a, **k):
        # a real SIGKILL in the middle of a shard, once `kill_after` shards are finished
        if kill_after and len(self.state.shards) >= kill_after and self._writer is not None:
            os.kill(os.getpid(), signal.SIGKILL)
        return orig_add(self, *a, **k)
    shards.ShardWriter.add = add
    rows = corpus_rows(Path({media!r}), 24, kind="trimmed", missing_every=5, write=False)
    export_dataset(make_dataset(rows), "vggsound", "default", {out!r}, max_shard_size="120KB")
""")


@pytest.mark.slow
def test_kill9_then_resume(tmp_path):
    media, out = tmp_path / "media", tmp_path / "out"
    corpus_rows(media, 24, kind="trimmed", missing_every=5)
    script = KILLER.format(tests=str(HERE), media=str(media), out=str(out))
    p = subprocess.run([sys.executable, "-c", script, "3"], capture_output=True, text=True)
    assert p.returncode == -signal.SIGKILL, p.stderr
    parts = out / ".avsets/default/parts"
    finished = sorted(parts.glob("*.parquet"))
    assert [f.name for f in finished] == [f"train-c00000-s{i:05d}.parquet" for i in range(3)]
    assert list(parts.glob("*.tmp"))  # the shard being written when killed
    stamp = [(f.stat().st_ino, f.stat().st_mtime_ns) for f in finished]
    assert not (out / "data").exists()

    p = subprocess.run([sys.executable, "-c", script, "0"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    final = sorted((out / "data/default").glob("train-*.parquet"))
    assert [(f.stat().st_ino, f.stat().st_mtime_ns) for f in final[:3]] == stamp  # never rewritten
    ref = tmp_path / "ref"
    script_ref = KILLER.format(tests=str(HERE), media=str(media), out=str(ref))
    assert subprocess.run([sys.executable, "-c", script_ref, "0"], capture_output=True).returncode == 0
    ref_files = sorted((ref / "data/default").glob("train-*.parquet"))
    assert [f.name for f in final] == [f.name for f in ref_files]
    for a, b in zip(final, ref_files, strict=True):
        assert pq.read_table(a).equals(pq.read_table(b))
    assert not list(parts.glob("*"))


@pytest.mark.slow
def test_ray_engine_matches_local(small, tmp_path):
    pytest.importorskip("ray")
    _, dsd, _, _ = small
    a = export_dataset(dsd, "vggsound", "default", str(tmp_path / "a"), max_shard_size="150KB")
    b = export_dataset(dsd, "vggsound", "default", f"file://{tmp_path / 'b'}", max_shard_size="150KB",
                       engine="ray", rows_per_task=10, num_proc=2)
    assert b.splits["train"].num_rows == a.splits["train"].num_rows
    ta = datasets.load_dataset(str(tmp_path / "a"), "default", cache_dir=str(tmp_path / "c"), split="train")
    tb = datasets.load_dataset(str(tmp_path / "b"), "default", cache_dir=str(tmp_path / "c"), split="train")
    assert ta.cast_column("audio", Audio(decode=False)).to_list() == tb.cast_column(
        "audio", Audio(decode=False)).to_list()
    assert len(b.splits["train"].files) >= 3  # one chain of shards per task
    for f in b.splits["train"].files:
        assert os.path.getsize(tmp_path / "b" / f) <= 150_000 * 1.1


def test_empty_split_left_out_of_configs_and_all_empty_refused(tmp_path):
    media = tmp_path / "media"
    train = make_dataset(corpus_rows(media, 3, kind="trimmed"))
    test = make_dataset(corpus_rows(media, 2, split="test", kind="trimmed", missing_every=1), "test")
    out = tmp_path / "out"
    res = export_dataset(as_dict(train=train, test=test), "vggsound", "default", str(out))
    assert res.splits["test"].files == [] and res.splits["test"].metadata_rows == 2
    assert "| default | test | 2 | 0 | 0.0% |" in (out / "README.md").read_text()
    assert list(_stock(out, "default", tmp_path)) == ["train"]
    with pytest.raises(ExportEmptyError, match="no row has media"):
        export_dataset(as_dict(test=test), "vggsound", "other", str(out))


def test_export_to_an_fsspec_target(small):
    import fsspec

    _, dsd, _, _ = small
    res = export_dataset(dsd, "vggsound", "default", "memory://avsets-export-test", max_shard_size="150KB")
    fs = fsspec.filesystem("memory")
    assert fs.exists("/avsets-export-test/README.md")
    n = 0
    for f in res.splits["train"].files:
        with fs.open(f"/avsets-export-test/{f}", "rb") as fh:
            n += pq.read_metadata(fh).num_rows
    assert n == res.splits["train"].num_rows == 20
    fs.rm("/avsets-export-test", recursive=True)


def test_trimmed_mp4_video_is_copied(tmp_path):
    from test_publish_support import write_mp4

    clip = write_mp4(tmp_path / "abcdefghijk_0_2000.mp4", 2.0)
    rows = [{"id": "abcdefghijk_0_2000", "youtube_id": "abcdefghijk", "start": 0.0, "end": 2.0, "label": 1,
             "audio": {"bytes": None, "path": str(clip)}, "video": {"bytes": None, "path": str(clip)},
             "media_offset": 0.0}]
    res = export_dataset(make_dataset(rows), "vggsound", "default", str(tmp_path / "out"), video=True)
    assert (res.splits["train"].copied, res.splits["train"].encoded) == (1, 1)  # video copied, AAC -> FLAC
    (f,) = res.splits["train"].files
    row = pq.read_table(tmp_path / "out" / f).to_pylist()[0]
    assert row["video"]["bytes"] == clip.read_bytes() and row["video"]["path"] == "abcdefghijk_0_2000.mp4"
    assert sf.info(io.BytesIO(row["audio"]["bytes"])).format == "FLAC"


EXTERNAL = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from test_publish_support import corpus_rows, make_dataset
    from avsets.ops.publish.export import export_dataset
    rows = corpus_rows(Path({media!r}), 60, kind="whole", seconds=1.0, write=False)  # re-encoded
    export_dataset(make_dataset(rows), "vggsound", "default", {out!r}, max_shard_size="60KB")
""")


@pytest.mark.slow
def test_kill9_from_outside_at_arbitrary_points_then_resume(tmp_path):
    """SIGKILL from the parent as soon as progress shows, several times; the last run finishes the export."""
    import time

    media, out, ref = tmp_path / "media", tmp_path / "out", tmp_path / "ref"
    corpus_rows(media, 60, kind="whole", seconds=1.0)
    script = EXTERNAL.format(tests=str(HERE), media=str(media), out=str(out))
    assert subprocess.run([sys.executable, "-c", EXTERNAL.format(tests=str(HERE), media=str(media), out=str(ref))],
                          capture_output=True).returncode == 0
    progress = out / ".avsets/default/train/chunk-00000.json"
    kills = 0
    for attempt in range(4):
        p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        seen = json.loads(progress.read_text())["shards"] if progress.exists() else []
        deadline = time.monotonic() + 60
        while p.poll() is None and time.monotonic() < deadline:  # wait for one more finished shard
            if progress.exists() and len(json.loads(progress.read_text())["shards"]) > len(seen):
                break
            time.sleep(0.005)
        if p.poll() is None and attempt < 3:
            p.send_signal(signal.SIGKILL)
            kills += 1
        assert p.wait(timeout=120) in (0, -signal.SIGKILL), p.stderr.read().decode()[-2000:]
        if p.returncode == 0:
            break
    assert p.returncode == 0 and kills >= 1
    got = sorted((out / "data/default").glob("train-*.parquet"))
    want = sorted((ref / "data/default").glob("train-*.parquet"))
    assert [f.name for f in got] == [f.name for f in want]
    for a, b in zip(got, want, strict=True):
        assert pq.read_table(a).equals(pq.read_table(b))


def test_rerun_after_media_added_is_noticed(tmp_path):
    media = tmp_path / "media"
    rows = corpus_rows(media, 4, kind="trimmed", missing_every=2)
    out = tmp_path / "out"
    assert export_dataset(make_dataset(rows), "vggsound", "default", str(out)).splits["train"].num_rows == 2
    # same input again: a no-op resume of the finished export
    assert export_dataset(make_dataset(rows), "vggsound", "default", str(out)).splits["train"].num_rows == 2
    rows[1]["audio"] = {"bytes": None, "path": str(write_audio(media / "late_0_2000.flac", 2.0))}
    with pytest.raises(ExportMismatchError):
        export_dataset(make_dataset(rows), "vggsound", "default", str(out))
    res = export_dataset(make_dataset(rows), "vggsound", "default", str(out), overwrite=True)
    assert res.splits["train"].num_rows == 3


def test_audio_format_wav_round_trips(small, tmp_path):
    _, dsd, train, _ = small
    res = export_dataset(as_dict(train=dsd["train"]), "vggsound", "default", str(tmp_path / "out"),
                         audio_format="wav")
    assert res.splits["train"].encoded == 20  # FLAC sources re-wrapped as 16-bit WAV
    got = _stock(tmp_path / "out", "default", tmp_path, split="train").cast_column("audio", Audio(decode=False))
    for row, cell in zip([r for r in train if r["audio"] is not None], got["audio"], strict=True):
        ref, _ = reference_audio(row)
        assert cell["path"].endswith(".wav") and sf.info(io.BytesIO(cell["bytes"])).subtype == "PCM_16"
        np.testing.assert_array_equal(decode_bytes(cell["bytes"], ref), ref)
