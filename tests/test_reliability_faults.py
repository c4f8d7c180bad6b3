"""Faults (issue 8): kill -9 in the middle of ``download_and_prepare``, two processes preparing one config in
one ``cache_dir`` at once, and a full disk while preparing and while exporting.

Real subprocesses, real SIGKILL, and (when the test runs as root) a real size-limited tmpfs; without root the
full disk is simulated by a write that fails with ``ENOSPC``.  After every fault a rerun must give exactly
what a clean run gives, and nothing half-written may be trusted.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest

HERE = Path(__file__).resolve().parent

PREPARE = textwrap.dedent("""
    import hashlib, json, os, signal, sys, time
    import datasets
    import avsets
    from avsets.build import builder as b
    data_dir, cache_dir, kill_at = sys.argv[1:4]

    PARENT = os.getpid()
    num_proc = 2 if kill_at.endswith("num_proc") else None

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    orig = b.AVBuilder._generate_tables
    def gen(self, shards, split, **kwargs):  # the builder's own keywords (row_specs, plan, ...) pass through
        if kill_at == "between_splits" and split == "test":
            die()
        for item in orig(self, shards, split, **kwargs):
            yield item
            if kill_at == "mid_split" and split == "train":
                die()  # the first table is in the writer, the split is not finished
            if kill_at == "kill_parent_num_proc" and os.getpid() != PARENT:
                os.kill(PARENT, signal.SIGKILL)  # from a worker: the main process dies, workers are orphaned
                time.sleep(1.0)  # ... and would go on writing while the rerun starts
    b.AVBuilder._generate_tables = gen
    if kill_at == "before_info":
        datasets.builder.DatasetBuilder._save_info = lambda self: die()
    if kill_at == "in_finalize":
        orig_fin = datasets.arrow_writer.ArrowWriter.finalize
        def fin(self, *a, **k):
            out = orig_fin(self, *a, **k)
            die()
            return out
        datasets.arrow_writer.ArrowWriter.finalize = fin
    ds = avsets.load_dataset("vggsound", data_dir=data_dir, cache_dir=cache_dir, rows_per_shard=100,
                             num_proc=num_proc)
    rows = {s: d.to_list() for s, d in ds.items()}
    print("CACHE", os.path.dirname(ds["train"].cache_files[0]["filename"]))
    print(json.dumps({s: [len(r), hashlib.sha256(json.dumps(r, sort_keys=True).encode()).hexdigest()]
                      for s, r in rows.items()}))
""")


def _prepare(data_dir: str, cache_dir: Path, kill_at: str = "none", timeout: float = 300,
             **popen) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    return subprocess.run([sys.executable, "-c", PREPARE, data_dir, str(cache_dir), kill_at], capture_output=True,
                          text=True, env=env, timeout=timeout, **popen)


@pytest.fixture(scope="module")
def clean(vgg_sample_dir, tmp_path_factory) -> dict:
    p = _prepare(vgg_sample_dir, tmp_path_factory.mktemp("clean") / "cache")
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout.strip().splitlines()[-1])
    assert result["train"][0] == 868 and result["test"][0] == 102
    return result


def _orphans(marker: str) -> list[int]:
    """Pids of processes whose command line holds ``marker`` (the unique cache path of one test)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def _kill_orphans(marker: str) -> None:
    """SIGKILL the pool workers a killed run left behind (only ours: found by the unique cache path), and
    wait until they are gone: a signal is delivered, not obeyed, at once, and a worker still finishing a
    write into ``.incomplete`` while the rerun starts left that folder behind the rerun (1 run in 6 on a
    loaded machine)."""
    import time

    pids = _orphans(marker)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie has done all its writing: it counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return False


def _killed_with_workers(data_dir: str, cache: Path, kill_at: str, tmp: Path) -> tuple[int, str]:
    """Run a ``num_proc=2`` prepare whose main process is SIGKILLed by a worker; return its exit code and
    stderr once no worker of it is left (found here: orphaned workers lived on, writing into .incomplete
    and then blocking forever; now they stop).  datasets' idle Manager process may outlive it: killed."""
    import time

    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    marker = str(cache)
    try:
        with open(tmp / "out.txt", "w") as out, open(tmp / "err.txt", "w") as err:
            proc = subprocess.Popen([sys.executable, "-c", PREPARE, data_dir, marker, kill_at], stdout=out,
                                    stderr=err, env=env)
            returncode = proc.wait(timeout=120)
        deadline = time.monotonic() + 20
        while len(_orphans(marker)) > 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        left = _orphans(marker)
    finally:
        _kill_orphans(marker)
    stderr = (tmp / "err.txt").read_text()
    assert len(left) <= 1, f"{len(left)} processes of the killed run live on"
    assert stderr.count("worker") >= 1 and "stops" in stderr
    return returncode, stderr


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", ["mid_split", "between_splits", "in_finalize", "before_info",
                                     "kill_parent_num_proc"])
def test_kill9_during_prepare_then_rerun_equals_a_clean_run(vgg_sample_dir, tmp_path, clean, kill_at):
    cache = tmp_path / "cache"
    if kill_at.endswith("num_proc"):
        returncode, stderr = _killed_with_workers(vgg_sample_dir, cache, kill_at, tmp_path)
    else:
        p = _prepare(vgg_sample_dir, cache, kill_at)
        returncode, stderr = p.returncode, p.stderr
    assert returncode == -signal.SIGKILL, stderr[-2000:]
    # whatever the killed run left is not a finished cache: no dataset_info.json outside *.incomplete
    infos = [f for f in cache.rglob("dataset_info.json") if ".incomplete" not in str(f)]
    assert infos == []
    p = _prepare(vgg_sample_dir, cache)
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout.strip().splitlines()[-1]) == clean
    assert not [f for f in cache.rglob("*") if f.name.endswith(".incomplete")]
    # and a third run reuses the now-complete cache (no regeneration) with the same answer
    stamps = {f: f.stat().st_mtime_ns for f in cache.rglob("*.arrow")}
    p = _prepare(vgg_sample_dir, cache)
    assert json.loads(p.stdout.strip().splitlines()[-1]) == clean
    assert stamps and {f: f.stat().st_mtime_ns for f in cache.rglob("*.arrow")} == stamps


@pytest.mark.slow
def test_two_processes_prepare_one_config_in_one_cache_dir_at_once(vgg_sample_dir, tmp_path, clean):
    cache = tmp_path / "cache"
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", PREPARE, vgg_sample_dir, str(cache), "none"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
        assert json.loads(out.strip().splitlines()[-1]) == clean
    finished = [f for f in cache.rglob("dataset_info.json") if ".incomplete" not in str(f)]
    assert len(finished) == 1  # one cache, not two half ones
    assert not [f for f in cache.rglob("*") if f.name.endswith(".incomplete")]


# ------------------------------------------------------------------------------------------ full disk
class Tmpfs:
    """A size-limited tmpfs (root only); ``grow()`` remounts it bigger, keeping its files."""

    def __init__(self, path: Path, size: str) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode(errors='replace').strip()})")

    def grow(self, size: str = "64m") -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True, capture_output=True)

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


@pytest.fixture
def tmpfs(tmp_path):
    mounts: list[Tmpfs] = []

    def make(name: str, size: str) -> Tmpfs:
        m = Tmpfs(tmp_path / name, size)
        mounts.append(m)
        return m

    yield make
    for m in mounts:
        m.close()


def _media_rows(tmp_path: Path):
    sys.path.insert(0, str(HERE))
    from test_publish_support import as_dict, corpus_rows, make_dataset

    rows = corpus_rows(tmp_path / "media", 16, kind="trimmed", seconds=2.0)
    return as_dict(train=make_dataset(rows))


def _exported_rows(out: Path) -> list[tuple]:
    files = sorted((out / "data" / "default").glob("train-*.parquet"))
    rows = []
    for f in files:
        t = pq.read_table(f)
        rows += list(zip(t.column("id").to_pylist(), [a["bytes"] for a in t.column("audio").to_pylist()],
                         strict=True))
    return rows


def _check_trusted_parts(out: Path) -> int:
    """Every shard a progress file records exists, is a readable Parquet file and holds the recorded rows."""
    state = out / ".avsets" / "default"
    recorded = 0
    for chunk in state.glob("*/chunk-*.json"):
        for shard in json.loads(chunk.read_text())["shards"]:
            recorded += 1
            part = state / "parts" / shard["name"]
            final_dir = out / "data" / "default"
            assert part.exists() or final_dir.exists(), shard
            if part.exists():
                assert pq.read_metadata(part).num_rows == shard["num_rows"]
    for f in (out / "data" / "default").glob("*.parquet") if (out / "data" / "default").exists() else []:
        pq.read_metadata(f)  # a final shard is always whole
    return recorded


def _export_until_full_then_resume(tmp_path: Path, out: Path, fill, grow) -> None:
    from avsets.ops.publish.export import export_dataset

    dsd = _media_rows(tmp_path)
    ref = tmp_path / "ref"
    export_dataset(dsd, "vggsound", "default", str(ref), max_shard_size="100KB")
    with pytest.raises(OSError) as info:
        with fill():
            export_dataset(dsd, "vggsound", "default", str(out), max_shard_size="100KB")
    assert info.value.errno == errno.ENOSPC or "No space" in str(info.value)
    assert not (out / "README.md").exists()  # the card is written last: a reader never sees a half export
    assert _check_trusted_parts(out) >= 1  # the disk filled after some shards were finished
    grow()
    export_dataset(dsd, "vggsound", "default", str(out), max_shard_size="100KB")
    _check_trusted_parts(out)
    assert _exported_rows(out) == _exported_rows(ref)
    assert not list((out / ".avsets").rglob("*.tmp"))


def test_full_disk_during_export_tmpfs(tmp_path, tmpfs):
    """A real full disk: a 320 KB tmpfs takes a few shards, then ENOSPC; grown, the rerun resumes."""
    import contextlib

    disk = tmpfs("disk", "320k")
    _export_until_full_then_resume(tmp_path, disk.path / "out", contextlib.nullcontext, disk.grow)


def test_full_disk_during_export_simulated(tmp_path, monkeypatch):
    """Without root: the third Parquet write fails with ENOSPC, mid-shard."""
    import contextlib

    import pyarrow.parquet as pqmod

    calls = {"n": 0}
    orig = pqmod.ParquetWriter.write_table

    def failing(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return orig(self, *a, **k)

    @contextlib.contextmanager
    def fill():
        monkeypatch.setattr(pqmod.ParquetWriter, "write_table", failing)
        try:
            yield
        finally:
            monkeypatch.setattr(pqmod.ParquetWriter, "write_table", orig)

    from avsets.ops.publish import shards

    monkeypatch.setattr(shards, "ROW_GROUP_ROWS", 2)
    _export_until_full_then_resume(tmp_path, tmp_path / "out", fill, lambda: None)


@pytest.mark.slow
def test_full_disk_during_prepare_then_rerun(vgg_sample_dir, tmp_path, tmpfs, clean):
    """The cache on a full disk: the prepare fails (an error, not a half cache), and once there is room the
    rerun equals a clean run."""
    disk = tmpfs("cache", "96k")
    p = _prepare(vgg_sample_dir, disk.path / "cache")
    assert p.returncode != 0
    assert "No space left on device" in p.stderr or "ENOSPC" in p.stderr or "Errno 28" in p.stderr, p.stderr[-3000:]
    assert [f for f in (disk.path / "cache").rglob("dataset_info.json") if ".incomplete" not in str(f)] == []
    disk.grow()
    p = _prepare(vgg_sample_dir, disk.path / "cache")
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout.strip().splitlines()[-1]) == clean


@pytest.mark.slow
def test_interrupted_archive_extraction_is_redone(tmp_path):
    """kill -9 in the middle of extracting AudioSetZSL's pinned archive: the ``.complete`` marker is missing, so
    the rerun extracts again and every file matches a clean extraction."""
    script = textwrap.dedent("""
        import os, signal, sys, zipfile
        from avsets.audiosetzsl.metadata import bundled_archive, extract_archive
        n = {"members": 0}
        orig = zipfile.ZipFile._extract_member
        def member(self, *a, **k):
            n["members"] += 1
            if n["members"] == 40:
                os.kill(os.getpid(), signal.SIGKILL)
            return orig(self, *a, **k)
        if sys.argv[2] == "kill":
            zipfile.ZipFile._extract_member = member
        print(extract_archive(bundled_archive(), sys.argv[1]))
    """)
    dest, ref = tmp_path / "dest", tmp_path / "ref"
    p = subprocess.run([sys.executable, "-c", script, str(dest), "kill"], capture_output=True, text=True, timeout=120)
    assert p.returncode == -signal.SIGKILL
    assert not (dest / ".complete").exists()
    for d in (dest, ref):
        p = subprocess.run([sys.executable, "-c", script, str(d), "ok"], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr

    def tree(root: Path) -> dict:
        return {str(f.relative_to(root)): f.read_bytes() for f in root.rglob("*") if f.is_file()}

    assert tree(dest) == tree(ref)


RACE = textwrap.dedent("""
    import os, shutil, sys, time, zipfile
    from avsets.audiosetzsl.metadata import bundled_archive, extract_archive
    dest, mode = sys.argv[1], sys.argv[2]
    if mode == "slow":  # truncate each file, then wait before filling it: a slow disk, made deterministic
        orig = shutil.copyfileobj
        def slow(src, dst, *a, **k):
            time.sleep(0.02)
            return orig(src, dst, *a, **k)
        shutil.copyfileobj = slow
        print("started", flush=True)
    root = extract_archive(bundled_archive(), dest)
    if mode == "reader":
        time.sleep(0.5)  # read while the slow extractor is still at work
        sizes = {}
        for folder, _, files in os.walk(root):
            for f in files:
                sizes[os.path.relpath(os.path.join(folder, f), root)] = os.path.getsize(os.path.join(folder, f))
        import json
        print(json.dumps(sizes))
""")


@pytest.mark.slow
def test_two_processes_extracting_the_pinned_archive_never_see_half_files(tmp_path):
    """Two loads of AudioSetZSL without data_dir (say the ``default`` and ``zsl`` configs, whose datasets locks
    differ) extract the same pinned archive into the same downloads folder.  A reader must never see a file
    that the other process has truncated and not yet refilled."""
    import zipfile

    from avsets.audiosetzsl.metadata import bundled_archive

    with zipfile.ZipFile(bundled_archive()) as zf:
        expected = {i.filename.split("/", 1)[1]: i.file_size for i in zf.infolist()
                    if not i.is_dir() and "/" in i.filename and i.filename.split("/", 1)[1]}
    dest = tmp_path / "AudioSetZSL-x"
    slow = subprocess.Popen([sys.executable, "-c", RACE, str(dest), "slow"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert slow.stdout.readline().strip() == "started"
        reader = subprocess.run([sys.executable, "-c", RACE, str(dest), "reader"], capture_output=True, text=True,
                                timeout=120)
        assert reader.returncode == 0, reader.stderr
        sizes = json.loads(reader.stdout.strip().splitlines()[-1])
    finally:
        slow.kill()
        slow.wait()
    truncated = {k: (v, expected[k]) for k, v in sizes.items() if k in expected and v != expected[k]}
    assert truncated == {}
    assert set(expected) <= set(sizes)


EXPORT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from test_publish_support import as_dict, corpus_rows, make_dataset
    from avsets.ops.publish import shards
    from avsets.ops.publish.export import export_dataset
    shards.ROW_GROUP_ROWS = 1
    orig = shards.ShardWriter.add
    def slow(self, *a, **k):  # a slow disk, so the two runs overlap for sure
        time.sleep(0.03)
        return orig(self, *a, **k)
    shards.ShardWriter.add = slow
    rows = corpus_rows(Path(sys.argv[1]), 16, kind="trimmed", write=False)
    r = export_dataset(as_dict(train=make_dataset(rows)), "vggsound", "default", sys.argv[2], max_shard_size="100KB")
    print("OK", r.splits["train"].num_rows)
""")


@pytest.mark.slow
def test_two_exports_into_one_folder_at_once(tmp_path):
    """Found here: two exports of one config into one folder wrote the same ``.tmp`` shard; one died with
    FileNotFoundError when the other renamed it (and interleaved writes could corrupt a shard).  Now the
    second waits for the first, then finds the work done."""
    sys.path.insert(0, str(HERE))
    from test_publish_support import corpus_rows

    from avsets.ops.publish.export import export_dataset

    corpus_rows(tmp_path / "media", 16, kind="trimmed")
    script = EXPORT.format(tests=str(HERE))
    out = tmp_path / "out"
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "media"), str(out)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (stdout, stderr) in zip(procs, results, strict=True):
        assert p.returncode == 0, stderr[-2000:]
        assert stdout.strip().endswith("OK 16")
    ref = tmp_path / "ref"
    sys.path.insert(0, str(HERE))
    from test_publish_support import as_dict, make_dataset

    export_dataset(as_dict(train=make_dataset(corpus_rows(tmp_path / "media", 16, kind="trimmed", write=False))),
                   "vggsound", "default", str(ref), max_shard_size="100KB")
    assert _exported_rows(out) == _exported_rows(ref)
    _check_trusted_parts(out)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_damaged_fetch_ledger_is_a_setup_error_not_a_traceback(tmp_path, capsys, damage):
    """Found here: a truncated or overwritten ``avsets-ledger.sqlite`` (a full disk, a bad copy) made
    ``avsets fetch`` die with sqlite3.DatabaseError; now exit code 2 and a message that says what to do."""
    from avsets.cli.fetch import main
    from avsets.media.synth import write_video

    (tmp_path / "src").mkdir()
    write_video(tmp_path / "src" / "-rf_-rf_-rf.mp4", seconds=3.0, fps=5, size=(32, 24), sr=8000)
    segs = tmp_path / "segs.csv"
    segs.write_text("youtube_id,start,end\n-rf_-rf_-rf,0,2\n")
    out = tmp_path / "out"
    args = ["fetch", "--segments", str(segs), "--out", str(out), "--audio", "--source-url-template",
            str(tmp_path / "src") + "/{youtube_id}.mp4"]
    assert main(args) == 0
    ledger = out / "avsets-ledger.sqlite"
    data = ledger.read_bytes()
    for extra in ("-wal", "-shm"):
        (out / f"avsets-ledger.sqlite{extra}").unlink(missing_ok=True)
    ledger.write_bytes(os.urandom(3000) if damage == "garbage" else data[: len(data) // 2])
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "avsets-ledger.sqlite" in err and "move it aside" in err and "Traceback" not in err
    assert (out / "-rf_-rf_-rf_0_2000.flac").exists()  # the clips stay


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "empty", "deleted", "info_truncated", "info_not_a_dict"])
def test_damaged_cache_file_is_rebuilt_not_used(vgg_sample_dir, tmp_path, clean, damage):
    """Found here: a cached Arrow file cut short after it was written (a full disk during a copy, a killed
    rsync) made every later load fail with "Expected to be able to read ... bytes", and a damaged
    dataset_info.json every load, streaming included, with a JSONDecodeError; now the cache is prepared
    again, with a warning, and equals a clean run."""
    cache = tmp_path / "cache"
    first = _prepare(vgg_sample_dir, cache)
    assert first.returncode == 0
    train = next(f for f in cache.rglob("*-train*.arrow"))
    info = next(f for f in cache.rglob("dataset_info.json"))
    if damage == "deleted":
        train.unlink()
    elif damage == "info_truncated":
        info.write_text(info.read_text()[:100])
    elif damage == "info_not_a_dict":
        info.write_text("[1, 2, 3]")
    else:
        data = train.read_bytes()
        train.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
    p = _prepare(vgg_sample_dir, cache)
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout.strip().splitlines()[-1]) == clean

    def cache_dir(proc):
        return next(ln for ln in proc.stdout.splitlines() if ln.startswith("CACHE "))

    if cache_dir(p) == cache_dir(first):  # (another engineer editing the core meanwhile changes the cache key)
        assert "is damaged" in p.stderr and "preparing it again" in p.stderr
