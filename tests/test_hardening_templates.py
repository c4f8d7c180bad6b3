"""One template language (issue 12, items 1, 2 and 6): attacks on ``--source-url-template``,
``media_pattern`` and the paths a template renders, through the CLI where users reach them."""

from __future__ import annotations

from pathlib import Path

import pytest
from fetch_cli import assert_one_line_error, run_cli, segments_csv
from fetch_server import make_video

import avsets
from avsets.core.errors import UnsafePathError
from avsets.core.templates import TemplateError, parse, plain_values
from avsets.media.media_index import check_pattern, render_template, template_values
from avsets.ops.fetch import read_ledger

HOSTILE_TEMPLATES = {
    "globals walk": "https://m/{start.__format__.__globals__[os].environ}.mp4",
    "attribute": "https://m/{youtube_id.x}.mp4",
    "index": "https://m/{youtube_id[20]}.mp4",
    "class walk": "/data/{id.__class__.__mro__}.mp4",
    "positional 0": "https://m/{0}.mp4",
    "positional empty": "https://m/{}.mp4",
    "conversion": "https://m/{youtube_id!r}.mp4",
    "nested spec": "https://m/{start:{youtube_id}}.mp4",
    "huge width": "https://m/{youtube_id:>999999999}.mp4",
    "spec for another type": "https://m/{youtube_id:06d}.mp4",
    "float spec on int": "https://m/{start_s:.3q}.mp4",
    "unknown field": "https://m/{no_such_column}.mp4",
    "unbalanced": "https://m/{youtube_id.mp4",
    "stray brace": "https://m/}{youtube_id}.mp4",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_TEMPLATES))
def test_bad_source_templates_exit_2_before_any_clip(tmp_path, name, capsys, monkeypatch):
    """Each is refused up front by the CLI: exit 2, one line, no ledger, no request, no token echoed."""
    from avsets.cli.app import main

    monkeypatch.setenv("HF_TOKEN", "hf_secretTOKENvalue123")
    listing = segments_csv(tmp_path / "s.csv", [{"youtube_id": "abcdefghijk", "start": 0, "end": 3}])
    out = tmp_path / "out"
    code = main(["fetch", "--segments", str(listing), "--out", str(out), "--audio",
                 "--source-url-template", HOSTILE_TEMPLATES[name]])
    captured = capsys.readouterr()
    assert code == 2, captured
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--source-url-template" in lines[0], captured.err
    assert "hf_secretTOKENvalue123" not in captured.out + captured.err
    assert not out.exists()  # nothing written, not even the folder


@pytest.mark.slow
@pytest.mark.parametrize("module", ["avsets.cli.app", "avsets.cli.fetch"])
def test_the_globals_walk_as_a_user_runs_it(tmp_path, module):
    """The issue's attack, end to end in a subprocess: no traceback, no token, nothing written."""
    listing = segments_csv(tmp_path / "s.csv", [{"youtube_id": "abcdefghijk", "start": 0, "end": 3}])
    out = tmp_path / "out"
    proc = run_cli("fetch", "--segments", str(listing), "--out", str(out), "--audio", "--source-url-template",
                   HOSTILE_TEMPLATES["globals walk"], module=module, HF_TOKEN="hf_secretTOKENvalue123")
    assert "--source-url-template" in assert_one_line_error(proc)
    assert "hf_secretTOKENvalue123" not in proc.stdout + proc.stderr
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("template", ["{start.__format__.__globals__}", "{a.b}", "{a[0]}", "{0}", "{}", "{a!s}",
                                      "{a:{b}}", "{a:>1000}", "{start:d}", "{youtube_id:.3f}", "{", "x}"])
def test_parser_refuses_the_same_table(template):
    with pytest.raises(TemplateError):
        parse(template)


def test_values_are_plain_types_only():
    """Objects that carry a ``__format__`` of their own are rendered as their text, never asked to format."""

    class Sneaky:
        def __format__(self, spec):  # pragma: no cover - must never run
            raise AssertionError("walked into an object's __format__")

        def __str__(self):
            return "sneaky"

    values = plain_values({"label": Sneaky(), "youtube_id": "abcdefghijk", "start": 30.5, "end": 40})
    assert all(type(v) in (str, int, float) for v in values.values())
    assert render_template("{label}/{youtube_id}_{start}_{end}_{start_ms}_{start_s:06d}.wav", values) == \
        "sneaky/abcdefghijk_30.5_40_30500_000030.wav"


SPEC_CASES = {
    "{youtube_id}_{start_s:06d}.flac": "abcdefghijk_000030.flac",
    "Y{youtube_id}_{start:.3f}_{end:.3f}.flac": "Yabcdefghijk_30.000_40.000.flac",
    "{label}/{youtube_id}_{start_ms}_{end_ms}.flac": "dog/abcdefghijk_30000_40000.flac",
    "{youtube_id}_{start}-{end}.flac": "abcdefghijk_30-40.flac",
    "{label:_<5}{youtube_id}.flac": "dog__abcdefghijk.flac",
}


@pytest.mark.parametrize("pattern", sorted(SPEC_CASES))
def test_media_pattern_takes_the_fetch_format_specs(pattern):
    """``media_pattern`` used to reject ``{start_s:06d}``; now both places share one parser."""
    check_pattern(pattern)
    row = {"youtube_id": "abcdefghijk", "start": 30.0, "end": 40.0, "label": 0}
    assert render_template(pattern, template_values(row, {"label": ["dog"]})) == SPEC_CASES[pattern]


@pytest.mark.parametrize("pattern", ["{youtube_id.__class__}.wav", "{0}.wav", "{youtube_id:06d}.wav",
                                     "../{youtube_id}.wav", "{youtube_id!r}.wav"])
def test_media_pattern_refuses_with_our_error(pattern):
    with pytest.raises(UnsafePathError):
        check_pattern(pattern)


@pytest.mark.parametrize("pattern", ["{labl}/{youtube_id}.flac", "{youtube_id}_{start_sec}.flac", "{0}.flac"])
def test_media_pattern_with_an_unknown_field_fails_before_any_row(tmp_path, vgg_meta, pattern):
    """A typo in a field name is one error up front naming it and the choices, not a silent miss per row."""
    with pytest.raises(ValueError) as e:
        avsets.load_dataset("vggsound", data_dir=vgg_meta, split="test", media_dir=str(tmp_path),
                            media_pattern=pattern, cache_dir=str(tmp_path / "c"))
    text = str(e.value)
    assert "media_pattern" in text and ("category" in text or "positional" in text), text


def test_media_pattern_with_specs_finds_vggsound_names(tmp_path, vgg_meta):
    """End to end: a mirror named ``{youtube_id}_{start_s:06d}.flac`` found through ``media_pattern``."""
    import soundfile as sf

    first = avsets.load_dataset("vggsound", data_dir=vgg_meta, split="test", streaming=True, on_missing="keep",
                                decode=False)
    row = next(iter(first))
    media = tmp_path / "media" / "x"
    media.mkdir(parents=True)
    import numpy as np

    sf.write(media / f"{row['youtube_id']}-{int(row['start']):06d}.flac", np.zeros(16000 * 10, "float32"), 16000)
    ds = avsets.load_dataset("vggsound", data_dir=vgg_meta, split="test", media_dir=str(tmp_path / "media"),
                             media_pattern="x/{youtube_id}-{start_s:06d}.flac", on_missing="skip",
                             cache_dir=str(tmp_path / "c"), decode=False)
    assert [r["id"] for r in ds] == [row["id"]]


# --- item 2: percent-encoded ``..`` and friends in local / file:// templates ---------------------------

ESCAPES = ["%2e%2e", "%2E%2E", "%252e%252e", "%25252e%25252e", ".%2e", "%2e.", "..%2f..", "%2e%2e%2f%2e%2e",
           "..%5c..", "%2e%2e%5c", "%00", "..", "a/../..", "..\\.."]


@pytest.fixture(scope="module")
def outside_video(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("v") / "v.mp4", 6.0)


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["file", "path"])
def test_row_values_cannot_leave_the_template_folder(tmp_path, outside_video, scheme):
    """A row value that decodes to ``..`` (once, twice, with backslashes) never reads outside the folder:
    the clip is an ``error`` naming the folder, and the file outside stays unread."""
    src = tmp_path / "mirror" / "inner"
    src.mkdir(parents=True)
    ids = [f"esc{i:08d}" for i in range(len(ESCAPES))]
    for ytid in ids:  # the bait: right next to the folder, and two levels up
        (tmp_path / "mirror" / f"{ytid}.mp4").write_bytes(outside_video.read_bytes())
        (tmp_path / f"{ytid}.mp4").write_bytes(outside_video.read_bytes())
    rows = [{"youtube_id": y, "start": 0, "end": 3, "label": v} for y, v in zip(ids, ESCAPES, strict=True)]
    listing = segments_csv(tmp_path / "s.csv", rows)
    base = f"file://{src}" if scheme == "file" else str(src)
    out = tmp_path / "out"
    proc = run_cli("fetch", "--segments", str(listing), "--out", str(out), "--audio", "--max-attempts", "1",
                   "--source-url-template", base + "/{label}/{youtube_id}.mp4")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    rows = {r.id.split("_")[0]: r for r in read_ledger(out)}
    assert set(rows) == set(ids)
    for ytid, value in zip(ids, ESCAPES, strict=True):
        assert rows[ytid].status != "ok", value
        reason = rows[ytid].reason or ""
        assert rows[ytid].status == "error" and ("folder" in reason or "safe path part" in reason), (value, reason)
    assert not list(out.glob("*.flac"))


@pytest.mark.slow
def test_plain_values_inside_the_folder_still_work(tmp_path, outside_video):
    """The check refuses escapes, not ordinary names (spaces, percent signs, dots inside names)."""
    labels = ["dog barking", "100% cotton", "a.b", "%41"]
    ids = [f"okv{i:08d}" for i in range(len(labels))]
    for ytid, label in zip(ids, labels, strict=True):
        d = tmp_path / "mirror" / label
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{ytid}.mp4").write_bytes(outside_video.read_bytes())
    rows = [{"youtube_id": y, "start": 0, "end": 3, "label": v} for y, v in zip(ids, labels, strict=True)]
    listing = segments_csv(tmp_path / "s.csv", rows)
    out = tmp_path / "out"
    proc = run_cli("fetch", "--segments", str(listing), "--out", str(out), "--audio",
                   "--source-url-template", str(tmp_path / "mirror") + "/{label}/{youtube_id}.mp4")
    assert proc.returncode == 0, proc.stderr
    assert sorted(r.status for r in read_ledger(out)) == ["ok"] * len(labels)


def test_corpus_row_fields_are_plain_text_for_templates():
    """Every scalar or list column of a corpus row is a template field (lists comma-joined), so a template
    naming ``{labels}`` passes the up-front name check."""
    from avsets.ops.fetch.corpus import _scalar_fields

    fields = _scalar_fields({"labels": ["Speech", "Dog"], "r1": 3, "audio": {"path": "x"}, "nested": [{"a": 1}]},
                            None)
    assert fields == {"labels": "Speech,Dog", "r1": 3}
