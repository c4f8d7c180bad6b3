"""Fetch pieces that need no server: ledger, statuses, politeness, sharding, templates, ffmpeg arguments."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading

import pytest

from avsets.core.segments import Segment
from avsets.metadata import ledger as L
from avsets.metadata.ledger import Ledger, LedgerRow, diff_ledgers, ledger_summary, read_ledger
from avsets.ops.fetch.clip import FetchOptions, cleanup_partials, part_path
from avsets.ops.fetch.ffmpeg import CutOptions, Input, build_args
from avsets.ops.fetch.origins import render, source_kind, template_fields
from avsets.ops.fetch.politeness import Backoff, RateLimiter, RefusalBreaker
from avsets.ops.fetch.runner import FetchReport, FetchSetupError, needs_fetch, parse_shard, plan, shard_of
from avsets.ops.fetch.status import classify_http, classify_message, http_status_from_ffmpeg


def _row(cid: str, status: str, **kw) -> LedgerRow:
    return LedgerRow(id=cid, status=status, **kw)


# --- ledger ---------------------------------------------------------------------------------------------

def test_ledger_schema_wal_and_columns(tmp_path):
    led = Ledger.in_folder(tmp_path)
    led.record(_row("a", "ok", bytes=10, sha256="ab", duration=10.0, files="a.flac"))
    led.close()
    conn = sqlite3.connect(tmp_path / L.LEDGER_NAME)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    cols = {r[1] for r in conn.execute("PRAGMA table_info(clips)")}
    assert {"id", "status", "reason", "attempts", "bytes", "sha256", "duration", "fetched_at", "tool_version"} <= cols
    conn.close()


def test_ledger_attempts_accumulate_and_summary(tmp_path):
    with Ledger.in_folder(tmp_path) as led:
        led.record(_row("a", "rate_limited", reason="HTTP 429"), add_attempts=3)
        led.record(_row("a", "ok"), add_attempts=1)
        led.record(_row("b", "private"))
    rows = {r.id: r for r in read_ledger(tmp_path)}
    assert rows["a"].attempts == 4 and rows["a"].status == "ok" and rows["a"].fetched_at
    assert ledger_summary(tmp_path) == {"ok": 1, "private": 1}
    assert ledger_summary(tmp_path / "nowhere") == {}


def test_claims_exclude_a_second_fetcher_until_its_owner_dies(tmp_path):
    a = Ledger.in_folder(tmp_path, owner="host:1:a")
    b = Ledger.in_folder(tmp_path, owner="host:2:b")
    assert a.claim("x") == "claimed"
    assert b.claim("x") == "busy"
    a.record(_row("x", "ok"))
    assert b.claim("x") == "done"
    # A claim by a process that no longer exists on this host is stale and is taken over.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    conn = sqlite3.connect(tmp_path / L.LEDGER_NAME)
    conn.execute("INSERT INTO claims VALUES ('y', 'dead', ?, ?, 0)", (b.host, int(dead.stdout)))
    conn.execute("UPDATE claims SET claimed_at = strftime('%s','now') WHERE id = 'y'")
    conn.commit()
    conn.close()
    assert b.claim("y") == "claimed"
    a.close()
    b.close()


def test_ledger_survives_concurrent_writers(tmp_path):
    """Many threads with their own connections: WAL + busy timeout serialize, nothing is lost."""
    led = Ledger.in_folder(tmp_path)

    def write(k: int) -> None:
        for i in range(40):
            cid = f"c{k}_{i}"
            assert led.claim(cid) == "claimed"
            led.record(_row(cid, "ok"))

    threads = [threading.Thread(target=write, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ledger_summary(tmp_path) == {"ok": 240}
    assert led.active_claims() == []
    led.close()


def test_ledger_diff(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    with Ledger.in_folder(old) as led:
        for cid, st in [("a", "ok"), ("b", "ok"), ("c", "error"), ("d", "rate_limited")]:
            led.record(_row(cid, st))
    with Ledger.in_folder(new) as led:
        for cid, st in [("a", "ok"), ("b", "private"), ("c", "ok"), ("d", "error"), ("e", "ok")]:
            led.record(_row(cid, st))
    d = diff_ledgers(old, new / L.LEDGER_NAME)
    assert d.appeared == [("c", "error"), ("e", "absent")]
    assert d.vanished == [("b", "private")]
    assert d.changed == [("d", "rate_limited", "error")]
    assert d.lines()[0].startswith("+ c")


# --- statuses -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("message, status", [
    ("ERROR: [youtube] abc: Private video. Sign in if you've been granted access to this video", "private"),
    ("ERROR: [youtube] abc: Video unavailable. This video has been removed by the uploader", "removed"),
    ("ERROR: [youtube] abc: Video unavailable. This video is no longer available because the YouTube account "
     "associated with this video has been terminated.", "removed"),
    ("ERROR: [youtube] abc: Video unavailable", "unavailable"),
    ("ERROR: [youtube] abc: Sign in to confirm your age. This video may be inappropriate for some users.",
     "age_restricted"),
    ("ERROR: [youtube] abc: The uploader has not made this video available in your country", "geo_blocked"),
    ("ERROR: [youtube] abc: Sign in to confirm you're not a bot", "rate_limited"),
    ("ERROR: [youtube] abc: Join this channel to get access to members-only content", "private"),
    ("something odd happened", None),
])
def test_classify_message(message, status):
    assert classify_message(message) == status


def test_classify_http():
    assert classify_http(404).status == "unavailable"
    assert classify_http(410).status == "unavailable"
    assert classify_http(429, retry_after=7).retry_after == 7
    assert classify_http(403, "<h1>Private video</h1>").status == "private"
    assert classify_http(403, "not available in your country").status == "geo_blocked"
    f = classify_http(403, "<p>Forbidden</p>")
    assert f.status == "error" and f.refused
    assert classify_http(503).status == "error"


def test_http_status_from_ffmpeg_stderr():
    assert http_status_from_ffmpeg("Error opening input: Server returned 404 Not Found") == 404
    assert http_status_from_ffmpeg("[http @ 0x1] HTTP error 429 Too Many Requests") == 429
    assert http_status_from_ffmpeg("Server returned 5XX Server Error reply") == 500
    assert http_status_from_ffmpeg("Invalid data found when processing input") is None


# --- politeness -----------------------------------------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


def test_rate_limiter_spaces_requests():
    clock = FakeClock()
    rl = RateLimiter(4.0, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        rl.acquire()
    assert clock.slept == pytest.approx([0.25] * 4)


def test_backoff_exponential_with_jitter_and_retry_after():
    import random

    b = Backoff(base=1.0, cap=10.0, max_retry_after=30, rng=random.Random(0))
    delays = [b.delay(n) for n in range(6)]
    for n, d in enumerate(delays):
        assert 0.5 * min(10, 2 ** n) <= d <= min(10, 2 ** n)
    assert b.delay(3, retry_after=12) == 12
    assert b.delay(3, retry_after=999) == 30


def test_refusal_breaker_pauses_after_a_streak():
    clock = FakeClock()
    br = RefusalBreaker(threshold=3, pause=20, clock=clock, sleep=clock.sleep)
    br.refused()
    br.refused()
    br.succeeded()
    br.refused()
    br.refused()
    assert br.wait() == 0
    br.refused()
    assert br.pauses == 1 and br.wait() == 20


# --- sharding and planning ------------------------------------------------------------------------------

def _segments(n: int) -> list[Segment]:
    return [Segment(f"{i:011d}", float(i % 50), float(i % 50) + 10) for i in range(n)]


@pytest.mark.parametrize("n", [1, 3, 7])
def test_shards_cover_the_list_exactly_once(n):
    keys = [s.key for s in _segments(500)]
    shards = [[k for k in keys if shard_of(k, n) == i] for i in range(n)]
    assert sorted(k for s in shards for k in s) == sorted(keys)
    assert sum(len(s) for s in shards) == len(keys)
    if n > 1:
        assert all(len(s) > 0 for s in shards)


def test_parse_shard():
    assert parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "x", "1/0", "-1/3"):
        with pytest.raises(FetchSetupError):
            parse_shard(bad)


def test_resume_rules(tmp_path):
    req_seg = Segment("abcdefghijk", 0, 10)
    from avsets.ops.fetch.clip import ClipRequest

    req = ClipRequest(req_seg)
    opts = FetchOptions(audio=True, video=False)
    (tmp_path / f"{req.key}.flac").write_bytes(b"x")
    ok = _row(req.key, "ok", files=f"{req.key}.flac")
    assert not needs_fetch(ok, req, tmp_path, opts)
    assert needs_fetch(ok, req, tmp_path, FetchOptions(audio=True, video=True))  # mp4 not there yet
    (tmp_path / f"{req.key}.flac").unlink()
    assert needs_fetch(ok, req, tmp_path, opts)  # deleted by hand: fetch again
    for st in ("unavailable", "private", "removed"):
        assert not needs_fetch(_row(req.key, st), req, tmp_path, FetchOptions(retry_failed=True))
    for st in ("rate_limited", "error", "geo_blocked"):
        assert not needs_fetch(_row(req.key, st), req, tmp_path, FetchOptions())
        assert needs_fetch(_row(req.key, st), req, tmp_path, FetchOptions(retry_failed=True))
    age = _row(req.key, "age_restricted")
    assert not needs_fetch(age, req, tmp_path, FetchOptions(retry_failed=True))
    assert needs_fetch(age, req, tmp_path, FetchOptions(retry_failed=True, cookies="c.txt"))


def test_plan_shards_dedupes_and_streams(tmp_path):
    segs = _segments(1200)
    with Ledger.in_folder(tmp_path) as led:
        total = 0
        for i in range(3):
            report = FetchReport()
            got = [r.key for r, _ in plan(iter(segs + segs[:10]), led, tmp_path, FetchOptions(shard=(i, 3)), report)]
            assert len(got) == len(set(got))
            total += len(got)
        assert total == 1200


# --- templates and ffmpeg arguments --------------------------------------------------------------------

def test_templates_and_source_kinds():
    seg = Segment("-5o4C4ZtHSU", 30, 40)
    f = template_fields(seg, {"label": "dog barking"})
    assert render("https://m/{label}/{youtube_id}_{start_ms}.mp4", f) == "https://m/dog%20barking/-5o4C4ZtHSU_30000.mp4"
    assert render("/data/{youtube_id}_{start_s}_{end_s}.mp4", f) == "/data/-5o4C4ZtHSU_30_40.mp4"
    assert render("/vgg/{youtube_id}_{start_s:06d}.mp4", f) == "/vgg/-5o4C4ZtHSU_000030.mp4"
    assert render("https://m/Y{youtube_id}_{start:.3f}_{end:.3f}.wav", f) == "https://m/Y-5o4C4ZtHSU_30.000_40.000.wav"
    assert render("/d/{start}-{end}.mp4", template_fields(Segment("-5o4C4ZtHSU", 1.5, 11.5))) == "/d/1.5-11.5.mp4"
    with pytest.raises(Exception, match="safe path"):
        render("/data/{label}.mp4", template_fields(seg, {"label": "../etc"}))
    with pytest.raises(ValueError, match="nosuch"):
        render("/data/{nosuch}.mp4", f)
    assert source_kind("https://m/x.mp4") == "direct"
    assert source_kind("https://www.youtube.com/watch?v=x") == "ytdlp"
    assert source_kind("https://m/x.mp4", "ytdlp") == "ytdlp"
    assert source_kind("/data/x.mp4") == "local"
    assert source_kind("file:///data/x.mp4") == "local"
    assert source_kind("s3://bucket/x.mp4") == "fsspec"


def test_ffmpeg_args_never_expose_an_id_as_an_option(tmp_path):
    seg = Segment("-5o4C4ZtHSU", 30, 40)
    inputs = [Input("http://127.0.0.1:1/media/-5o4C4ZtHSU.mp4")]
    for exact in (False, True):
        args = build_args(inputs, seg.start, seg.end, audio_out=part_path(tmp_path, seg.key, "flac"),
                          video_out=part_path(tmp_path, seg.key, "mp4"), opts=CutOptions(exact=exact))
        for a in args:
            if seg.youtube_id in a:
                assert a.startswith(("/", "cache:http")), a
        assert "cache:http://127.0.0.1:1/media/-5o4C4ZtHSU.mp4" in args
        assert "-request_size" in args
    args = build_args(inputs, 30, 40, audio_out=tmp_path / "a.flac", video_out=None, opts=CutOptions())
    ss = args[args.index("-ss") + 1]
    assert float(ss) == pytest.approx(29.0)  # one second early, then trimmed: sample-exact audio
    with pytest.raises(ValueError, match="absolute"):
        build_args(inputs, 30, 40, audio_out=tmp_path.relative_to(tmp_path) / "a.flac", video_out=None,
                   opts=CutOptions())


def test_cleanup_removes_only_dead_fetchers_parts(tmp_path):
    mine = part_path(tmp_path, "abcdefghijk_0_10000", "flac")
    mine.write_bytes(b"x")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = tmp_path / mine.name.replace(f"-{__import__('os').getpid()}-", f"-{int(dead.stdout)}-")
    orphan.write_bytes(b"x")
    assert cleanup_partials(tmp_path) == 1
    assert mine.exists() and not orphan.exists()
