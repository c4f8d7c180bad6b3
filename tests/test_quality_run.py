"""The quality pass end to end: ``avsets quality`` over a VGGSound corpus whose media is a folder, a
``.tar.gz`` mirror or a ``.zip`` mirror; resume after a kill; reruns that measure only changed clips; exit codes.

Media are encoded here with PyAV (H.264 + AAC) and soundfile (FLAC); one mp4 has no audio stream, one FLAC
is digital silence and one ``.mp4`` is garbage, so the table must hold their flags and an error row.
"""

from __future__ import annotations

import importlib.resources
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from avsets.cli.app import main
from avsets.core.errors import AvsetsError
from avsets.media.synth import write_audio, write_video
from avsets.metadata.quality import QUALITY_FLAGS, Thresholds, read_quality_table, table_metadata
from avsets.ops.quality.run import parts_dir, run_quality

ROWS = [  # ytid, start, split, media kind
    ("qualAAAAAA0", 1, "train", "mp4"),
    ("qualBBBBBB1", 11, "train", "mp4"),
    ("qualCCCCCC2", 21, "train", "mp4-no-audio"),
    ("qualDDDDDD3", 31, "train", "flac"),
    ("qualEEEEEE4", 41, "test", "garbage"),
    ("qualFFFFFF5", 51, "test", "flac-silent"),
    ("qualGGGGGG6", 61, "test", None),  # no media: not in the table
]
EXPECTED_FLAGS = {"qualCCCCCC2": {"no_audio"}, "qualFFFFFF5": {"silent"}}


def clip_id(ytid: str, start: int) -> str:
    return f"{ytid}_{start * 1000}_{(start + 10) * 1000}"


def _make_corpus(root: Path) -> tuple[Path, Path]:
    meta = root / "meta"
    meta.mkdir(parents=True)
    shutil.copy(str(importlib.resources.files("avsets.vggsound") / "sample" / "stat.csv"), meta / "stat.csv")
    (meta / "vggsound.csv").write_text("".join(f"{y},{s},dog barking,{sp}\n" for y, s, sp, _ in ROWS))
    media = root / "media"
    (media / "nested").mkdir(parents=True)
    for ytid, start, _, kind in ROWS:
        name = media / "nested" / f"{ytid}_{start:06d}"
        if kind == "mp4":
            write_video(f"{name}.mp4", seconds=10.0, fps=10, size=(64, 48))
        elif kind == "mp4-no-audio":
            write_video(f"{name}.mp4", seconds=10.0, fps=10, size=(64, 48), audio=False)
        elif kind == "flac":
            write_audio(f"{name}.flac", seconds=10.0, sr=8000)
        elif kind == "flac-silent":
            sf.write(f"{name}.flac", np.zeros(80000, np.int16), 8000)
        elif kind == "garbage":
            Path(f"{name}.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 500)
    return meta, media


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path]:
    return _make_corpus(tmp_path_factory.mktemp("qcorpus"))


def _measures(table) -> dict[str, dict]:
    """Rows by id without the fingerprint and the error text (which name the source), for comparing sources."""
    return {r["id"]: {k: (bool(v) if k == "error" else v) for k, v in r.items() if k != "fingerprint"}
            for r in table.to_pylist()}


def _check_table(table) -> None:
    ids = {clip_id(y, s): (y, kind) for y, s, _, kind in ROWS if kind}
    assert sorted(table.column("id").to_pylist()) == sorted(ids)
    for row in table.to_pylist():
        ytid, kind = ids[row["id"]]
        if kind == "garbage":
            assert row["error"] and all(row[f] is None for f in QUALITY_FLAGS)
            continue
        assert row["error"] is None, row
        assert {f for f in QUALITY_FLAGS if row[f]} == EXPECTED_FLAGS.get(ytid, set()), row
        assert abs(row["duration_s"] - 10.0) < 0.2 and row["fingerprint"]
        assert row["has_video"] is kind.startswith("mp4")


def test_cli_folder_writes_the_table(corpus, tmp_path, capsys):
    meta, media = corpus
    out = tmp_path / "q.parquet"
    code = main(["quality", "vggsound", "--data-dir", str(meta), "--media-dir", str(media), "--out", str(out),
                 "--silence-db", "-55", "--quiet"])
    captured = capsys.readouterr()
    assert code == 1, captured  # one clip could not be decoded: its row says so, the run goes on
    assert "measured 6" in captured.out and "errors 1" in captured.out
    table = read_quality_table(out)
    _check_table(table)
    meta_doc = table_metadata(out)
    assert meta_doc["thresholds"] == Thresholds(silence_db=-55.0).to_dict()
    assert meta_doc["pyav"] and meta_doc["ffmpeg"]["libavcodec"] and meta_doc["avsets"]
    assert not os.path.exists(parts_dir(str(out)))
    assert set(table.column("split").to_pylist()) == {"train", "test"}


def test_rerun_measures_only_changed_clips(tmp_path):
    meta, media = _make_corpus(tmp_path / "c")
    out = str(tmp_path / "q.parquet")
    first = run_quality("vggsound", data_dir=str(meta), media_dir=str(media), out=out, quiet=True)
    assert (first.measured, first.reused, first.errors) == (6, 0, 1)
    again = run_quality("vggsound", data_dir=str(meta), media_dir=str(media), out=out, quiet=True)
    assert (again.measured, again.reused) == (0, 6)
    # one clip's media changes (now silent): only it is measured again, and its flag follows
    target = media / "nested" / "qualDDDDDD3_000031.flac"
    sf.write(str(target), np.zeros(80000, np.int16), 8000)
    seen: list[str] = []
    changed = run_quality("vggsound", data_dir=str(meta), media_dir=str(media), out=out, quiet=True,
                          on_row=lambda r: seen.append(r["id"]))
    assert (changed.measured, changed.reused) == (1, 5)
    rows = {r["id"]: r for r in read_quality_table(out).to_pylist()}
    assert rows[clip_id("qualDDDDDD3", 31)]["silent"] is True
    # other thresholds: every clip again (flags depend on them)
    other = run_quality("vggsound", data_dir=str(meta), media_dir=str(media), out=out, quiet=True,
                        thresholds=Thresholds(still_threshold=0.5))
    assert (other.measured, other.reused) == (6, 0)
    # a run over one split keeps the other split's rows
    test_only = run_quality("vggsound", data_dir=str(meta), media_dir=str(media), out=out, quiet=True,
                            split="test", thresholds=Thresholds(still_threshold=0.5))
    assert test_only.reused == 2 and read_quality_table(out).num_rows == 6


_KILL_SCRIPT = """
import sys, time
from avsets.ops.quality.run import run_quality

def seen(row):
    with open(sys.argv[4], "a") as f:
        f.write(row["id"] + "\\n")
    time.sleep(1.0)

run_quality("vggsound", data_dir=sys.argv[1], media_dir=sys.argv[2], out=sys.argv[3], quiet=True,
            part_rows=int(sys.argv[5]), on_row=seen)
"""


@pytest.mark.slow  # a subprocess per case, killed mid-run, then resumed: 4-5 s each
@pytest.mark.parametrize("sig, part_rows", [(signal.SIGKILL, 1), (signal.SIGINT, 1000)], ids=["SIGKILL", "Ctrl-C"])
def test_killed_run_resumes_from_its_parts(tmp_path, sig, part_rows):
    """SIGKILL mid-run leaves the part files already written (one a clip here), Ctrl-C writes what finished;
    never a half-written table; the next run reuses them and measures only the rest."""
    meta, media = _make_corpus(tmp_path / "c")
    out = str(tmp_path / "q.parquet")
    seen = tmp_path / "seen.txt"
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(meta), str(media), out, str(seen),
                             str(part_rows)])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if seen.exists() and len(seen.read_text().splitlines()) >= 3:
                break
            time.sleep(0.1)
        proc.send_signal(sig)
    finally:
        proc.wait(60)
    assert not os.path.exists(out)
    parts = [p for p in os.listdir(parts_dir(out)) if p.endswith(".parquet")]
    kept = sum(pq.read_table(os.path.join(parts_dir(out), p)).num_rows for p in parts)  # every part is whole
    assert 2 <= kept < 6, kept
    report = run_quality("vggsound", data_dir=str(meta), media_dir=str(media), out=out, quiet=True)
    assert report.reused == kept and report.measured == 6 - kept
    _check_table(read_quality_table(out))
    assert not os.path.exists(parts_dir(out))


def _tar_gz(media: Path, dst: Path) -> Path:
    with tarfile.open(dst, "w:gz") as tf:
        for f in sorted(media.rglob("*")):
            if f.is_file():
                tf.add(str(f), arcname=f"vggsound_00/{f.relative_to(media)}")
    return dst


def _zip(media: Path, dst: Path) -> Path:
    with zipfile.ZipFile(dst, "w") as zf:
        for f in sorted(media.rglob("*")):
            if f.is_file():
                zf.write(f, arcname=f"clips/{f.relative_to(media)}")
    return dst


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_cli_on_archive_mirrors_matches_the_folder(corpus, tmp_path, kind, capsys):
    meta, media = corpus
    mirror = _tar_gz(media, tmp_path / "vggsound_00.tar.gz") if kind == "tar.gz" else _zip(media, tmp_path / "c.zip")
    folder_out, mirror_out = tmp_path / "folder.parquet", tmp_path / "mirror.parquet"
    assert main(["quality", "vggsound", "--data-dir", str(meta), "--media-dir", str(media), "--out",
                 str(folder_out), "--quiet"]) == 1
    assert main(["quality", "vggsound", "--data-dir", str(meta), "--media-dir", str(mirror), "--out",
                 str(mirror_out), "--quiet", *(["--num-proc", "2"] if kind == "zip" else [])]) == 1
    capsys.readouterr()
    folder, archived = read_quality_table(folder_out), read_quality_table(mirror_out)
    _check_table(archived)
    assert _measures(folder) == _measures(archived)
    # streamed members are keyed as if read at random (avsets.media.sources.content_key): a zip member by its CRC-32
    # (the central directory's), a tar member by the BLAKE2b of its bytes
    prefix = "c:" if kind == "zip" else "b2:"
    assert all(fp.startswith(prefix) for fp in archived.column("fingerprint").to_pylist() if fp)
    # the archive did not change: a rerun reuses every clip
    assert main(["quality", "vggsound", "--data-dir", str(meta), "--media-dir", str(mirror), "--out",
                 str(mirror_out), "--quiet", "--json"]) == 1
    assert '"reused": 6' in capsys.readouterr().out


@pytest.mark.parametrize("argv, says", [
    (["--media-dir", "{tmp}/nothing-here"], "media"),
    (["--split", "validation"], "no split validation"),
    (["--out", "{tmp}"], "is a folder"),
    (["--num-proc", "0"], "--num-proc"),
    (["--engine", "dask"], "invalid choice"),
    (["--still-fraction", "1.5"], "still_fraction=1.5"),
])
def test_cli_setup_errors_exit_2_without_traceback(corpus, tmp_path, capsys, argv, says):
    meta, media = corpus
    base = {"--media-dir": str(media), "--out": str(tmp_path / "q.parquet")}
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    for flag, value in base.items():
        if flag not in args:
            args += [flag, value]
    try:
        code = main(["quality", "vggsound", "--data-dir", str(meta), "--quiet", *args])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert says in err and "Traceback" not in err


def test_not_a_quality_table_is_refused(tmp_path):
    bogus = tmp_path / "x.parquet"
    pq.write_table(pa.table({"id": ["a"]}), bogus)
    with pytest.raises(AvsetsError, match="not a quality table"):
        read_quality_table(bogus)


@pytest.mark.slow
def test_ray_engine_gives_the_same_table(corpus, tmp_path):
    pytest.importorskip("ray")
    meta, media = corpus
    local = run_quality("vggsound", data_dir=str(meta), media_dir=str(media), out=str(tmp_path / "l.parquet"),
                        quiet=True)
    remote = run_quality("vggsound", data_dir=str(meta), media_dir=str(media), out=str(tmp_path / "r.parquet"),
                         quiet=True, engine="ray", num_proc=2)
    assert (local.measured, local.errors) == (remote.measured, remote.errors)
    assert _measures(read_quality_table(tmp_path / "l.parquet")) == _measures(read_quality_table(tmp_path / "r.parquet"))
    import ray

    assert not ray.is_initialized()  # the pass shut down the Ray it started (its raylet would keep running)


@pytest.mark.slow  # two CLI start-ups in subprocesses
def test_a_terminal_gets_a_bar_and_a_pipe_none(corpus, tmp_path):
    """The bar (with counts measured/error) only on a terminal; a pipe gets the summary line alone."""
    from fetch_cli import run_cli
    from ux_support import run_in_a_terminal

    meta, media = corpus
    argv = ["quality", "vggsound", "--data-dir", str(meta), "--media-dir", str(media)]
    code, text = run_in_a_terminal([*argv, "--out", str(tmp_path / "t.parquet")])
    assert code == 1, text
    assert "quality:" in text and "clip" in text and "measured 6" in text and "error 1" in text
    assert "clip/s" in text or "s/clip" in text  # tqdm's rate: the bar, not only the summary line
    piped = run_cli(*argv, "--out", str(tmp_path / "p.parquet"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    assert piped.returncode == 1, piped.stderr
    assert "clip/s" not in piped.stderr and "\r" not in piped.stderr
    assert "measured 6" in piped.stdout and "Traceback" not in piped.stderr


@pytest.fixture(scope="module")
def audioset(tmp_path_factory):
    from source_fixtures import audioset_mirrors

    return audioset_mirrors(tmp_path_factory.mktemp("audioset"))


@pytest.mark.parametrize("kind", ["parquet", "webdataset", "parquet over HTTP"])
def test_ascc_over_parquet_and_webdataset_mirrors(audioset, tmp_path, kind):
    """AudioSet mirrors (FLAC bytes in Parquet cells / WebDataset members; one whole 60-s recording whose
    segment starts at 30 s), local and on a loopback HTTP server: every row measured on its own segment."""
    from range_server import serve_folder

    out = str(tmp_path / "q.parquet")
    if kind == "parquet over HTTP":
        with serve_folder(audioset.parquet.parent) as srv:
            report = run_quality("ascc", data_dir=str(audioset.meta), media_dir=srv.url(audioset.parquet.name),
                                 out=out, quiet=True, cache_dir=str(tmp_path / "cache"))
            assert srv.total()[0] > 0  # the bytes came over HTTP
    else:
        src = audioset.parquet if kind == "parquet" else audioset.webdataset
        report = run_quality("ascc", data_dir=str(audioset.meta), media_dir=str(src), out=out, quiet=True,
                             cache_dir=str(tmp_path / "cache"))
    assert (report.measured, report.errors) == (5, 0)
    rows = {r["youtube_id"]: r for r in read_quality_table(out).to_pylist()}
    assert set(rows) == set(audioset.sources)
    for row in rows.values():
        assert abs(row["duration_s"] - 10.0) < 0.01, row  # the 60-s recording is cut at its offset
        assert row["has_audio"] and not row["has_video"] and row["sample_rate"] == 8000
        assert {f for f in QUALITY_FLAGS if row[f]} == set() and row["fingerprint"].startswith("b2:")
    again = run_quality("ascc", data_dir=str(audioset.meta),
                        media_dir=str(audioset.parquet if kind != "webdataset" else audioset.webdataset),
                        out=out, quiet=True, cache_dir=str(tmp_path / "cache"))
    assert again.reused == 5  # same bytes, same fingerprints (also when they came over HTTP before)


def test_the_table_contract_the_readers_import():
    """``load_dataset(quality=)``, export and report import these names: they must describe the schema."""
    from avsets.metadata.quality.table import KEY_COLUMNS, MEASURE_COLUMNS, SCHEMA

    assert SCHEMA.names == [*KEY_COLUMNS, *MEASURE_COLUMNS, *QUALITY_FLAGS, "error"]
    assert all(SCHEMA.field(f).type == pa.bool_() for f in QUALITY_FLAGS)
    assert SCHEMA.field("id").type == pa.string() and QUALITY_FLAGS[0] == "silent"


def _tar(media: Path, dst: Path) -> Path:
    with tarfile.open(dst, "w") as tf:
        for f in sorted(media.rglob("*")):
            if f.is_file():
                tf.add(str(f), arcname=f"vggsound_00/{f.relative_to(media)}")
    return dst


def _keys_of_both_tables(meta: Path, media: Path, tmp: Path) -> tuple[dict[str, set], dict[str, set]]:
    """Per clip id, the content keys in the quality table and in the fingerprint table of the same media."""
    from avsets.cli.leakage import load_units
    from avsets.ops.leakage.store import fingerprint_units
    from avsets.ops.leakage.units import parse_spec

    run_quality("vggsound", data_dir=str(meta), media_dir=str(media), out=str(tmp / "q.parquet"), quiet=True)
    quality = {r["id"]: set(r["fingerprint"].split("@")[0].split("|"))
               for r in read_quality_table(tmp / "q.parquet").select(["id", "fingerprint"]).to_pylist()}
    units = load_units([parse_spec("vggsound")], [str(meta)], None, [str(media)], with_media=True)
    run = fingerprint_units(units, tmp / "fp.parquet", workers=1, progress=False)
    fp = {r["id"]: {k[2:] for k in r["media_key"].split("|")[:2]} - {"-"}
          for r in run.table.select(["id", "media_key"]).to_pylist()}
    return quality, fp


@pytest.mark.parametrize("kind", ["folder", "zip", "tar", "tar.gz"])
def test_quality_and_fingerprint_tables_key_media_alike(corpus, tmp_path, kind):
    """The two derived tables key a clip by one content key (``avsets.media.sources.content_key``) although the quality
    pass streams archives in archive order (bytes) and the fingerprint pass reads them at random (locators); a
    changed archive or file gives new keys in both."""
    meta, media = corpus
    src = {"folder": lambda d: shutil.copytree(media, d / "media"), "zip": lambda d: _zip(media, d / "m.zip"),
           "tar": lambda d: _tar(media, d / "m.tar"), "tar.gz": lambda d: _tar_gz(media, d / "m.tar.gz")}[kind]
    mirror = Path(src(tmp_path))
    (tmp_path / "a").mkdir()
    quality, fp = _keys_of_both_tables(meta, mirror, tmp_path / "a")
    assert set(quality) == set(fp) and len(quality) == 6
    for clip in quality:
        assert quality[clip] == fp[clip] and len(quality[clip]) == 1, (clip, quality[clip], fp[clip])
    # one clip changed (16 bytes appended; the mirror rebuilt): both tables see it
    victim = next(media.rglob("qualAAAAAA0_*"))
    changed = tmp_path / "changed"
    shutil.copytree(media, changed)
    (changed / victim.relative_to(media)).write_bytes(victim.read_bytes() + bytes(16))
    if kind == "folder":
        shutil.copyfile(changed / victim.relative_to(media), mirror / victim.relative_to(media))
    else:
        mirror.unlink()
        src_changed = {"zip": _zip, "tar": _tar, "tar.gz": _tar_gz}[kind]
        src_changed(changed, mirror)
    (tmp_path / "b").mkdir()
    quality2, fp2 = _keys_of_both_tables(meta, mirror, tmp_path / "b")
    victim_id = clip_id("qualAAAAAA0", 1)
    assert quality2[victim_id] == fp2[victim_id] != quality[victim_id]
    for clip in quality2:
        assert quality2[clip] == fp2[clip], clip
