"""Credentials in URLs (issue 12, item 3): userinfo and signed query parameters never reach the ledger,
the summary, logs or errors, whichever way the URL travels (mirror, page, failure, success)."""

from __future__ import annotations

import sqlite3

import pytest
from fetch_cli import run_cli, segments_csv
from fetch_server import Behavior, start_server

from avsets.core.secrets import redact_text, redact_url

SECRETS = ("hunter2", "s3cr3tTOKEN", "AKIAEXAMPLEKEY", "sigVALUE42", "bobuser")

REDACT_CASES = {
    "https://bobuser:hunter2@m.example/v.mp4": "https://***@m.example/v.mp4",
    "https://bobuser@m.example/v.mp4": "https://***@m.example/v.mp4",
    "http://m.example/v.mp4?token=s3cr3tTOKEN&q=hd": "http://m.example/v.mp4?token=***&q=hd",
    "https://b.s3.amazonaws.com/k.mp4?X-Amz-Credential=AKIAEXAMPLEKEY&X-Amz-Signature=sigVALUE42&x=1":
        "https://b.s3.amazonaws.com/k.mp4?X-Amz-Credential=***&X-Amz-Signature=***&x=1",
    "https://acct.blob.core.windows.net/c/v.mp4?sv=2020&sig=sigVALUE42": "https://acct.blob.core.windows.net/c/v.mp4?sv=2020&sig=***",
    "https://m/v.mp4?access_token=s3cr3tTOKEN": "https://m/v.mp4?access_token=***",
    "https://m/v.mp4?API_KEY=s3cr3tTOKEN": "https://m/v.mp4?API_KEY=***",
    "https://m/v.mp4?my_session_id=s3cr3tTOKEN": "https://m/v.mp4?my_session_id=***",
    "https://m/v.mp4#access_token=s3cr3tTOKEN": "https://m/v.mp4#access_token=***",
    "s3://AKIAEXAMPLEKEY:hunter2@bucket/v.mp4": "s3://***@bucket/v.mp4",
    "/data/plain/path.mp4": "/data/plain/path.mp4",
    "https://m.example/watch?v=abcdefghijk": "https://m.example/watch?v=abcdefghijk",
}


@pytest.mark.parametrize("url", sorted(REDACT_CASES))
def test_redact_url_table(url):
    assert redact_url(url) == REDACT_CASES[url]


def test_redact_text_finds_urls_inside_messages():
    text = ("ffmpeg exit 8: [http @ 0x1] HTTP error 404 on cache:http://bobuser:hunter2@127.0.0.1:9/m.mp4?sig=sigVALUE42"
            " via proxy http://bobuser:hunter2@proxy:3128 (user:hunter2@host too)")
    clean = redact_text(text)
    assert not any(s in clean for s in SECRETS), clean
    assert "127.0.0.1:9/m.mp4" in clean and "HTTP error 404" in clean


@pytest.fixture(scope="module")
def mirror():
    srv = start_server()
    srv.behaviors["gone0000000"] = Behavior(status=404)
    srv.behaviors["private0000"] = Behavior(status=403, body="<p>This video is private.</p>")
    yield srv
    srv.stop()


def _all_text(db) -> str:
    con = sqlite3.connect(str(db))
    try:
        parts = []
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            for row in con.execute(f"SELECT * FROM {table}"):  # noqa: S608 - our own table names
                parts.extend(str(v) for v in row)
        return "\n".join(parts)
    finally:
        con.close()


@pytest.mark.slow
@pytest.mark.parametrize("route", ["media", "watch"])
def test_no_secret_reaches_ledger_output_or_logs(tmp_path, mirror, route):
    """A mirror URL with userinfo and a token: clips succeed and fail, and no secret is written anywhere."""
    base = mirror.base_url.replace("http://", "http://bobuser:hunter2@")
    template = (base + f"/{route}/{{youtube_id}}" + (".mp4" if route == "media" else "")
                + "?token=s3cr3tTOKEN&X-Amz-Signature=sigVALUE42")
    listing = segments_csv(tmp_path / "s.csv", [{"youtube_id": y, "start": 0, "end": 2}
                                                 for y in ("okclip00000", "gone0000000", "private0000")])
    out = tmp_path / "out"
    args = ["-v", "fetch", "--segments", str(listing), "--out", str(out), "--audio", "--max-attempts", "1",
            "--source-url-template", template]
    if route == "watch":
        args += ["--resolve", "ytdlp"]
    proc = run_cli(*args)
    assert proc.returncode == 1, proc.stderr
    text = proc.stdout + proc.stderr + _all_text(out / "avsets-ledger.sqlite")
    assert "okclip00000" in text and "gone0000000" in text
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, (leaked, text[-3000:])
    diff = run_cli("ledger", "diff", str(out), str(out))
    assert not [s for s in SECRETS if s in diff.stdout + diff.stderr]


@pytest.mark.slow
def test_a_bad_template_error_does_not_echo_the_secret(tmp_path):
    listing = segments_csv(tmp_path / "s.csv", [{"youtube_id": "abcdefghijk", "start": 0, "end": 2}])
    proc = run_cli("fetch", "--segments", str(listing), "--out", str(tmp_path / "o"), "--audio",
                   "--source-url-template", "https://bobuser:hunter2@m/{youtube_id.x}.mp4?token=s3cr3tTOKEN")
    assert proc.returncode == 2
    assert not [s for s in SECRETS if s in proc.stdout + proc.stderr], proc.stderr
