"""A long export is never silent and never floods: a tqdm bar with counts (copied, re-encoded, without media)
on a terminal, no bar with ``--quiet`` or in a pipe (there a count line every 30 s), the summary always.

Through the CLI on a pseudo-terminal of a real size (what a user's shell gives it) and through a pipe;
the periodic line of the pipe case is checked on ``ExportProgress`` itself with a zero interval (no test
waits 30 s or asserts wall time).
"""

from __future__ import annotations

import io
import re

import pytest
from ux_support import demo_media, run_cli, run_in_a_terminal

from avsets.ops.demo import sample_data_dir
from avsets.ops.publish.convert import Converted
from avsets.ops.publish.progress import ExportProgress

SUMMARY = re.compile(r"train: \d+ of 868 rows")
BAR = re.compile(r"export default:\s+\d+%\|.*\| (\d+)/970 .*copied \d+.*without media \d+")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return demo_media(tmp_path_factory.mktemp("progress"), n_train=5, n_test=2)


def _export_args(media, out, *extra: str) -> list[str]:
    return ["export", "vggsound", "default", "--data-dir", sample_data_dir(), "--media-dir", str(media),
            "--out", str(out), *extra]


@pytest.mark.slow
@pytest.mark.parametrize(("extra", "bar"), [([], True), (["--quiet"], False), (["-q", "--max-shard-size", "1MB"], False)])
def test_terminal(media, tmp_path, extra, bar):
    code, text = run_in_a_terminal(_export_args(media, tmp_path / "out", *extra))
    assert code == 0, text[-2000:]
    assert SUMMARY.search(text)
    found = BAR.findall(text)
    assert bool(found) == bar, text[-2000:]
    if bar:
        assert "970" in found[-1]  # the bar reached every row
    else:
        assert "clip/s" not in text and "Generating" not in text  # neither ours nor datasets' bars


@pytest.mark.slow
def test_pipe_gets_no_bar(media, tmp_path):
    p = run_cli(*_export_args(media, tmp_path / "out"))
    assert p.returncode == 0, p.stderr[-2000:]
    assert SUMMARY.search(p.stdout)
    assert "\r" not in p.stderr and "clip/s" not in p.stderr


@pytest.mark.slow
def test_push_with_export_shows_the_bar(media, tmp_path):
    args = ["push", "vggsound", "default", "--data-dir", sample_data_dir(), "--media-dir", str(media),
            "--repo-id", "org/x", "--dry-run", "--endpoint", "http://127.0.0.1:9"]
    code, text = run_in_a_terminal(args)
    assert code == 0, text[-2000:]
    assert BAR.search(text) and "dry run: would push to org/x" in text


def _rows(kinds: str) -> list[Converted]:
    out = []
    for i, k in enumerate(kinds):
        row = None if k == "-" else {"id": str(i)}
        out.append(Converted(i, row, nbytes=10, copied=int(k == "c"), encoded=int(k == "e")))
    return out


@pytest.mark.parametrize(("kinds", "summary"), [
    ("ccc", "copied 3"),
    ("ce-", "copied 1, re-encoded 1, without media 1"),
    ("---e", "re-encoded 1, without media 3"),
    ("", ""),
])
def test_count_lines_when_not_a_terminal(kinds, summary):
    f = io.StringIO()  # not a terminal
    p = ExportProgress(every=0.0, file=f)
    p.set_total(len(kinds))
    for c in _rows(kinds):
        p(c)
    p.close()
    lines = f.getvalue().splitlines()
    assert len(lines) == len(kinds) and "\r" not in f.getvalue()
    if kinds:
        assert lines[-1].startswith(f"... export: {len(kinds)} of {len(kinds)} clips ({summary})")
    assert p.summary() == summary
    quiet = io.StringIO()
    q = ExportProgress(every=0.0, file=quiet, quiet=True)
    q.set_total(len(kinds))
    for c in _rows(kinds):
        q(c)
    assert quiet.getvalue() == "" and q.summary() == summary
