"""Hostile metadata and hostile folders (issue 8).

Names with ``..``, absolute paths, NUL bytes, very long names and bytes that are not UTF-8; symlinks out of the
media root; ids shaped like command-line options; archive members that would land outside their folder; no
``shell=True`` anywhere in the package; a Hub token never in output, logs, exceptions or the dataset card.
"""

from __future__ import annotations

import ast
import logging
import os
import shutil
import stat
import zipfile
from pathlib import Path

import pytest
from helpers import writable_sample

import avsets
from avsets.core.errors import MetadataError, UnsafePathError
from avsets.media.synth import write_audio

REPO = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = ["shared", "vggsound", "audiosetzsl", "avset10m", "avmit", "ascc"]
LABEL = "dog barking"


def _vgg(root: Path, rows: list[tuple[str, int]], category: str = "animals") -> str:
    meta = root / "meta"
    meta.mkdir(parents=True, exist_ok=True)
    (meta / "vggsound.csv").write_text("".join(f"{y},{s},{LABEL},train\n" for y, s in rows))
    (meta / "stat.csv").write_text(f"{LABEL},1,{category}\n")
    return str(meta)


def _ids(ds) -> dict[str, dict]:
    return {r["id"]: r for r in ds}


# ------------------------------------------------------------------------------------------ paths from metadata
@pytest.mark.parametrize("bad", ["../../outside/secret.mp4", "/etc/passwd", "inflating/../../../x.mp4",
                                 "inflating\\..\\..\\x.mp4", "inflating/a\x00b.mp4", "inflating/" + "a" * 5000 + ".mp4",
                                 "C:\\Windows\\x.mp4"])
def test_avmit_hostile_file_names_are_dropped_counted_and_never_opened(tmp_path, bad, caplog):
    meta = writable_sample("avmit", tmp_path / "meta")
    listing = meta / "test_set.csv"
    lines = listing.read_text().splitlines(keepends=True)
    first = lines[1].split(",")
    hostile = [bad, *first[1:]]
    lines.insert(2, ",".join(f'"{v}"' if "," in v else v for v in hostile))
    listing.write_text("".join(lines))
    # bait outside the media root, where a joined ``..`` would land
    (tmp_path / "outside").mkdir()
    write_audio(tmp_path / "outside" / "secret.flac", seconds=1.0, sr=8000)
    media = tmp_path / "media"
    (media / "training" / "inflating").mkdir(parents=True)
    with caplog.at_level(logging.WARNING, logger="avsets"):
        ds = avsets.load_dataset("avmit", "test", split="test", data_dir=str(meta), cache_dir=str(tmp_path / "c"),
                                 media_dir=str(media), on_missing="keep")
    assert len(ds) == len(lines) - 2  # header and the hostile row
    assert "unsafe" in caplog.text and "test_set.csv" in caplog.text
    for row in ds:
        assert avsets.core.paths.is_safe_relpath(row["id"])
        assert row["video"] is None or row["video"]["path"].startswith(str(media))


@pytest.mark.parametrize("pattern", ["../{youtube_id}_{start_s}.flac", "/tmp/{youtube_id}.flac", "{youtube_id}/../../x.flac",
                                     "a\x00{youtube_id}.flac", "{youtube_id.__class__}.flac"])
def test_hostile_media_patterns_are_refused_before_any_row(tmp_path, pattern):
    meta = _vgg(tmp_path, [("--9O4XZOge4", 30)])
    (tmp_path / "media").mkdir()
    with pytest.raises(UnsafePathError):
        avsets.load_dataset("vggsound", data_dir=meta, media_dir=str(tmp_path / "media"), media_pattern=pattern,
                            cache_dir=str(tmp_path / "c"))


def test_pattern_values_from_metadata_cannot_climb_out(tmp_path):
    """``{category}`` comes from stat.csv: a value of ``../../bait`` renders a path that is refused, so the bait
    planted there is never found; an honest row still resolves."""
    meta = _vgg(tmp_path, [("--9O4XZOge4", 30)], category="../bait")
    media = tmp_path / "media"
    (media / "sub").mkdir(parents=True)
    (tmp_path / "bait").mkdir()
    write_audio(tmp_path / "bait" / "--9O4XZOge4_30.flac", seconds=10.0, sr=8000)
    ds = avsets.load_dataset("vggsound", split="train", data_dir=meta, media_dir=str(media), on_missing="keep",
                             media_pattern="{category}/{youtube_id}_{start_s}.flac", cache_dir=str(tmp_path / "c"),
                             decode=False)
    assert ds[0]["audio"] is None


# ------------------------------------------------------------------------------------------ hostile media folders
def test_symlinks_out_of_the_media_root_are_ignored(tmp_path, caplog):
    outside = tmp_path / "outside"
    outside.mkdir()
    write_audio(outside / "--9O4XZOge4_000030.flac", seconds=10.0, sr=8000)
    write_audio(outside / "1FCq89ykIII_000030.flac", seconds=10.0, sr=8000)
    media = tmp_path / "media"
    (media / "real").mkdir(parents=True)
    write_audio(media / "real" / "source.flac", seconds=10.0, sr=8000)
    os.symlink(outside / "--9O4XZOge4_000030.flac", media / "--9O4XZOge4_000030.flac")  # file link out
    os.symlink(outside, media / "linked_dir")  # directory link out
    os.symlink(media / "real" / "source.flac", media / "-0O3e95y4gE_000030.flac")  # link inside: fine
    os.symlink(media, media / "real" / "loop")  # a loop back to the root
    meta = _vgg(tmp_path, [("--9O4XZOge4", 30), ("1FCq89ykIII", 30), ("-0O3e95y4gE", 30)])
    with caplog.at_level(logging.WARNING):
        ds = avsets.load_dataset("vggsound", split="train", data_dir=meta, media_dir=str(media), on_missing="keep",
                                 cache_dir=str(tmp_path / "c"))
    rows = _ids(ds)
    assert rows["--9O4XZOge4_30000_40000"]["audio"] is None
    assert rows["1FCq89ykIII_30000_40000"]["audio"] is None
    assert rows["-0O3e95y4gE_30000_40000"]["audio"]["array"].shape == (80000,)
    assert "symlink leaves the media root" in caplog.text


def test_media_names_that_are_not_utf8_are_skipped_not_fatal(tmp_path, caplog):
    """Found here: one folder whose name held a non-UTF-8 byte crashed the whole load (map-style with
    DatasetGenerationError, streaming with UnicodeEncodeError) as soon as a file in it matched a row."""
    media = tmp_path / "media"
    media.mkdir()
    bad_dir = os.fsencode(media) + b"/bad\xff"
    os.mkdir(bad_dir)
    write_audio(media / "good.flac", seconds=10.0, sr=8000)
    shutil.copy(os.fsencode(media / "good.flac"), bad_dir + b"/--9O4XZOge4_000030.flac")
    shutil.copy(os.fsencode(media / "good.flac"), os.fsencode(media) + b"/1FCq89ykIII_000030\xfe.flac")
    os.replace(media / "good.flac", media / "-0O3e95y4gE_000030.flac")
    meta = _vgg(tmp_path, [("--9O4XZOge4", 30), ("-0O3e95y4gE", 30)])
    for streaming in (False, True):
        with caplog.at_level(logging.WARNING):
            ds = avsets.load_dataset("vggsound", split="train", data_dir=meta, media_dir=str(media),
                                     streaming=streaming, cache_dir=str(tmp_path / "c"))
            assert list(_ids(ds)) == ["-0O3e95y4gE_30000_40000"]
        assert "not valid UTF-8" in caplog.text


def test_very_long_and_odd_but_legal_names_resolve(tmp_path):
    media = tmp_path / "media"
    deep = media.joinpath(*["d" * 200] * 3)
    deep.mkdir(parents=True)
    write_audio(deep / "--9O4XZOge4_000030.flac", seconds=10.0, sr=8000)
    odd = media / "spaces, commas; 'quotes' & $(rm -rf) `x`"
    odd.mkdir()
    write_audio(odd / "1FCq89ykIII_000030.flac", seconds=10.0, sr=8000)
    meta = _vgg(tmp_path, [("--9O4XZOge4", 30), ("1FCq89ykIII", 30)])
    rows = _ids(avsets.load_dataset("vggsound", split="train", data_dir=meta, media_dir=str(media),
                                    cache_dir=str(tmp_path / "c")))
    assert all(r["audio"]["array"].shape == (80000,) for r in rows.values()) and len(rows) == 2


# ------------------------------------------------------------------------------------------ ids shaped like options
OPTION_IDS = ["--exec_abcd", "-rf_-rf_-rf", "-i_dev_null", "--help-----"]


def test_option_shaped_ids_load_decode_and_fetch_as_plain_names(tmp_path, monkeypatch):
    """Ids that start with ``-`` reach ffmpeg only as absolute paths / ``file:`` inputs, never as options;
    nothing lands outside ``out`` (run from an empty working folder to see stray files)."""
    from avsets.core.segments import Segment
    from avsets.media.synth import write_video
    from avsets.ops.fetch import fetch

    src, media, cwd = tmp_path / "src", tmp_path / "media", tmp_path / "cwd"
    for d in (src, media, cwd):
        d.mkdir()
    for ytid in OPTION_IDS:
        write_video(src / f"{ytid}.mp4", seconds=10.5, fps=5, size=(32, 24), sr=8000)
    monkeypatch.chdir(cwd)
    report = fetch([Segment(y, 0, 10) for y in OPTION_IDS], out=str(media), audio=True,
                   source_url_template=str(src) + "/{youtube_id}.mp4", workers=1)
    assert report.counts == {"ok": len(OPTION_IDS)}
    assert os.listdir(cwd) == []
    assert sorted(f for f in os.listdir(media) if f.endswith(".flac")) == sorted(f"{y}_0_10000.flac" for y in OPTION_IDS)
    meta = _vgg(tmp_path, [(y, 0) for y in OPTION_IDS])
    rows = _ids(avsets.load_dataset("vggsound", split="train", data_dir=meta, media_dir=str(media),
                                    cache_dir=str(tmp_path / "c"), on_missing="error"))
    assert len(rows) == len(OPTION_IDS)
    assert all(r["audio"]["array"].shape[0] > 0 for r in rows.values())


# ------------------------------------------------------------------------------------------ archives
def _zip(path: Path, members: dict[str, bytes], symlinks: dict[str, str] = ()) -> str:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in dict(symlinks).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return str(path)


@pytest.mark.parametrize("evil", ["../evil.txt", "/tmp/avsets-evil-abs.txt", "AudioSetZSL-x/../../evil.txt",
                                  "AudioSetZSL-x/youtube-id/../../../evil.txt"])
def test_audiosetzsl_archive_members_cannot_escape(tmp_path, evil):
    """The pinned GitHub archive (downloaded or bundled) is the one archive avsets opens: a member naming a
    path outside the extraction folder is refused before anything is written."""
    from avsets.audiosetzsl.metadata import extract_archive

    archive = _zip(tmp_path / "a.zip", {"AudioSetZSL-x/youtube-id/trn/dog.txt": b"", evil: b"pwned"})
    dest = tmp_path / "dest" / "inner"
    with pytest.raises(MetadataError, match="unsafe member"):
        extract_archive(archive, str(dest))
    assert not (tmp_path / "dest" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert not os.path.exists("/tmp/avsets-evil-abs.txt")
    assert not dest.exists() or not any(dest.rglob("*.txt"))
    assert not (dest / ".complete").exists()  # a rerun will not trust a half extraction


def test_audiosetzsl_archive_symlink_members_stay_plain_files(tmp_path):
    from avsets.audiosetzsl.metadata import extract_archive

    archive = _zip(tmp_path / "a.zip", {"AudioSetZSL-x/youtube-id/trn/dog.txt": b""},
                   symlinks={"AudioSetZSL-x/youtube-id/link": "/etc"})
    root = extract_archive(archive, str(tmp_path / "dest"))
    link = Path(root) / "youtube-id" / "link"
    assert link.exists() and not link.is_symlink()


def test_only_known_archive_code_paths_exist():
    """Every place the package opens an archive is known and guarded (a new one must get a test here)."""
    hits = []
    for d in PACKAGE_DIRS:
        for path in (REPO / d).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            for needle in ("extractall", "tarfile", "shutil.unpack_archive", ".extract(", "py7zr", "rarfile"):
                if needle in text:
                    hits.append((str(path.relative_to(REPO)), needle))
    assert sorted(hits) == sorted([
        ("audiosetzsl/metadata.py", "extractall"),
        ("shared/media/sources/members_tar.py", "tarfile"),  # archive-order streaming: tests/test_sources_stream.py
        ("shared/media/sources/tarsrc.py", "tarfile"),  # random access: test_tar_member_index_never_extracts below
    ])


def test_tar_member_index_never_extracts(tmp_path):
    """A tar media source is only indexed and read by locator: hostile names are skipped and counted, links
    are not members, and nothing is ever written next to (or outside) the archive."""
    import io
    import tarfile

    from avsets.media.sources import Source, index_source, read_media_bytes

    payload = b"fLaC" + b"\0" * 100
    arc = tmp_path / "hostile" / "shard.tar"
    arc.parent.mkdir()
    with tarfile.open(arc, "w", format=tarfile.GNU_FORMAT) as t:
        for name in ("../escape/--0PQM4-hqg_000030.flac", "/abs/--0PQM4-hqg_000030.flac",
                     "ok/--0PQM4-hqg_000030.flac"):
            ti = tarfile.TarInfo(name)
            ti.size = len(payload)
            t.addfile(ti, io.BytesIO(payload))
        for kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
            ti = tarfile.TarInfo(f"link{kind.decode()}/--56QUhyDQM_000185.flac")
            ti.type, ti.linkname = kind, "/etc/passwd"
            t.addfile(ti)
    before = sorted(p for p in tmp_path.rglob("*") if "source-index" not in str(p))
    os.environ["AVSETS_SOURCE_CACHE"] = str(tmp_path / "source-index")
    try:
        si = index_source(Source(str(arc), "tar"))
    finally:
        del os.environ["AVSETS_SOURCE_CACHE"]
    assert [m.relpath for m in si.members] == ["ok/--0PQM4-hqg_000030.flac"] and si.stats.unsafe == 2
    assert read_media_bytes(si.members[0].locator) == payload
    assert sorted(p for p in tmp_path.rglob("*") if "source-index" not in str(p)) == before


# ------------------------------------------------------------------------------------------ no shell
def test_no_shell_anywhere_in_the_package():
    """No ``shell=True`` (or any non-False ``shell=``), ``os.system``, ``os.popen`` or shell helpers."""
    offenders = []
    for d in PACKAGE_DIRS:
        for path in (REPO / d).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                for kw in node.keywords:
                    if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                        offenders.append(f"{path}:{node.lineno} shell=")
                func = ast.unparse(node.func)
                if func in ("os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput",
                            "asyncio.create_subprocess_shell", "os.spawnl", "os.spawnlp", "os.execl", "os.execlp"):
                    offenders.append(f"{path}:{node.lineno} {func}")
    assert offenders == []
    assert "shell=True" not in "".join(p.read_text(encoding="utf-8") for d in PACKAGE_DIRS
                                       for p in (REPO / d).rglob("*.py"))


# ------------------------------------------------------------------------------------------ the Hub token
TOKEN = "hf_ReLiAbIlItY0123456789SecretToken"


def _walk_exc(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


PUSH = """
import logging, sys, traceback
# as `avsets -v` logs (root at INFO), plus our own and huggingface_hub's DEBUG; httpcore's wire-level DEBUG
# prints raw response headers, which a hostile server can fill with anything: out of our hands
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
for name in ("avsets", "huggingface_hub"):
    logging.getLogger(name).setLevel(logging.DEBUG)
from avsets.ops.publish.push import PushError, push_folder
try:
    push_folder(sys.argv[1], "org/leaky")
except PushError as exc:
    seen, e = set(), exc
    while e is not None and id(e) not in seen:  # the whole chain, suppressed context included
        seen.add(id(e))
        print("CHAIN", type(e).__name__, str(e), repr(e.args))
        e = e.__cause__ or e.__context__
    traceback.print_exception(exc)
else:
    print("PUSHED")
"""


def _push(hub, folder: Path, tmp: Path):
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_TOKEN=TOKEN, HF_HOME=str(tmp / "hf_home"),
               HF_HUB_DISABLE_TELEMETRY="1", NO_COLOR="1", HF_DEBUG="1")
    return subprocess.run([sys.executable, "-c", PUSH, str(folder)], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.mark.slow
def test_hub_token_never_leaks_through_a_hostile_server(tmp_path):
    """The server echoes the Authorization header into every error body and fails every commit: the token is
    in no exception of the chain (cause or suppressed context), no DEBUG log, no output, and not in the card."""
    from hub_server import HubServer
    from test_publish_support import as_dict, corpus_rows, make_dataset

    from avsets.ops.publish.export import export_dataset

    out = tmp_path / "export"
    export_dataset(as_dict(train=make_dataset(corpus_rows(tmp_path / "media", 3, kind="trimmed"))), "vggsound",
                   "default", str(out), max_shard_size="1MB")
    with HubServer() as hub:
        hub.state.echo_auth_in_errors = True
        hub.state.fail_commits = 100
        failed = _push(hub, out, tmp_path)
        hub.state.echo_auth_in_errors = False
        hub.state.fail_commits = 0
        pushed = _push(hub, out, tmp_path)
        card = hub.files("org/leaky")["README.md"].decode("utf-8")
    assert "CHAIN PushError" in failed.stdout, failed.stdout + failed.stderr
    assert "PUSHED" in pushed.stdout, pushed.stdout + pushed.stderr
    for p in (failed, pushed):
        assert TOKEN not in p.stdout and TOKEN not in p.stderr
    assert TOKEN not in card and TOKEN not in (out / "README.md").read_text(encoding="utf-8")
    assert all(TOKEN.encode() not in p.read_bytes() for p in out.rglob("*") if p.is_file())


def test_hub_token_not_in_a_failed_avset10m_listing(monkeypatch):
    """The gated-Hub listing error re-raised as ManualDownloadRequired says what to do without the token
    (found here: the error text, which a hostile or proxying server can fill with the auth header, went into
    the message and the chained cause)."""
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    from avsets.avset10m import metadata as avmeta

    class Boom(Exception):
        pass

    class FakeFS:
        def __init__(self, *a, **k):
            pass

        def glob(self, *a, **k):
            raise Boom(f"401 Unauthorized for token {TOKEN}")

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfFileSystem", FakeFS)
    with pytest.raises(avsets.ManualDownloadRequired) as info:
        avmeta.hub_files("700k")
    assert "hf auth login" in str(info.value)
    leaked = [type(e).__name__ for e in _walk_exc(info.value) if TOKEN in str(e)]
    assert leaked == [], leaked


def test_tokens_never_written_by_export_card(tmp_path, monkeypatch):
    """A token in the environment (as CI sets it) does not reach the export folder."""
    from test_publish_support import as_dict, corpus_rows, make_dataset

    from avsets.ops.publish.export import export_dataset

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    out = tmp_path / "export"
    export_dataset(as_dict(train=make_dataset(corpus_rows(tmp_path / "media", 2, kind="trimmed"))), "vggsound",
                   "default", str(out), max_shard_size="1MB")
    assert all(TOKEN.encode() not in p.read_bytes() for p in out.rglob("*") if p.is_file())


def test_fetch_segment_list_with_absurd_times_names_the_lines(tmp_path, capsys, caplog):
    """Found here: ``inf`` in a ``--segments`` CSV crashed ``avsets fetch`` with OverflowError (clip key in ms)."""
    from avsets.cli.fetch import main

    segs = tmp_path / "segs.csv"
    segs.write_text("youtube_id,start,end\n--9O4XZOge4,0,inf\n1FCq89ykIII,nan,5\n-0O3e95y4gE,1e400,1e401\n"
                    "a_b-c_d-e_f,5,4\n-rf_-rf_-rf,0,2\n")
    code = main(["fetch", "--segments", str(segs), "--out", str(tmp_path / "out"), "--audio",
                 "--source-url-template", str(tmp_path / "src") + "/{youtube_id}.mp4"])
    err = capsys.readouterr().err + caplog.text
    assert code == 1  # the one valid row has no source file: unavailable
    for line in (2, 3, 4, 5):
        assert f"line {line}" in err
    assert "-rf_-rf_-rf_0_2000\tunavailable" in err


# ------------------------------------------------------------------------------------------ fuzzed media names
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_NAME_PART = st.one_of(
    st.sampled_from(["--9O4XZOge4", "Y--9O4XZOge4", "1FCq89ykIII", "_", "-", ".", "..", "000030", "30000", "40000",
                     "9" * 40, "1e400", "nan", "inf", "-1", "30.000", "40.000", "1" + "0" * 60 + ".000", " ", "é", "日本"]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1, max_size=12))
_EXT = st.sampled_from(["flac", "FLAC", "wav", "mp4", "mkv", "webm", "m4a", "part", "", "flac.part", "txt"])
MEDIA_NAME = st.builds(lambda parts, sep, ext: sep.join(parts)[:200] + (f".{ext}" if ext else ""),
                       st.lists(_NAME_PART, min_size=1, max_size=4), st.sampled_from(["_", "", "-", "."]), _EXT)


@settings(max_examples=int(os.environ.get("AVSETS_FUZZ_EXAMPLES", "0")) or 25, deadline=None, database=None,
          derandomize=not os.environ.get("AVSETS_FUZZ_EXAMPLES"),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(names=st.lists(MEDIA_NAME, min_size=1, max_size=6, unique=True), depth=st.sampled_from(["", "sub/", "a/b/"]))
def test_fuzzed_media_file_names_never_break_a_load(tmp_path_factory, names, depth):
    """Any file name in a media folder (numbers past int64, NaN, dots, unicode, near-matches of every naming)
    is indexed or ignored; the load goes on and only real matches resolve."""
    root = tmp_path_factory.mktemp("names")
    media = root / "media"
    (media / depth).mkdir(parents=True, exist_ok=True)
    for name in names:
        try:
            (media / depth / name).write_bytes(b"\x00" * 16)
        except OSError:  # the file system refuses it (too long in bytes, '.' or '..'): not our input
            continue
    meta = _vgg(root, [("--9O4XZOge4", 30), ("1FCq89ykIII", 0)])
    ds = avsets.load_dataset("vggsound", split="train", data_dir=meta, media_dir=str(media), streaming=True,
                             decode=False, on_missing="keep")
    for row in ds:
        for col in ("audio", "video"):
            if row[col] is not None:
                path = row[col]["path"]
                assert path.startswith(str(media)) and os.path.isfile(path)
                stem = os.path.basename(path)
                assert stem.startswith((row["youtube_id"], "Y" + row["youtube_id"]))


def test_hostile_label_names_cannot_break_the_exported_card(tmp_path):
    """Label names come from metadata files for AVMIT's ``videos``/``ratings``: YAML syntax, a front-matter
    fence and newlines in them stay data; stock ``datasets`` reads the names back exactly."""
    import datasets
    from datasets import ClassLabel
    from test_publish_support import as_dict, corpus_rows, make_dataset

    from avsets.ops.publish.export import export_dataset

    hostile = ["a: b\n---\nlicense: evil", "- [x]\n# not a comment", "'{{ quoted }}' & *anchor"]
    rows = corpus_rows(tmp_path / "media", 3, kind="trimmed")
    ds = make_dataset(rows).cast_column("label", ClassLabel(names=hostile))
    out = tmp_path / "out"
    export_dataset(as_dict(train=ds), "vggsound", "default", str(out), max_shard_size="1MB")
    card = (out / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\n") and card.count("\n---\n") == 1  # one front-matter block, still closed
    assert "\nlicense: evil" not in card
    back = datasets.load_dataset(str(out), "default", split="train", cache_dir=str(tmp_path / "c"))
    assert back.features["label"].names == hostile
    assert sorted(back["label"]) == sorted(r["label"] for r in rows)
