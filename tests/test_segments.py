"""Segments, ids, clip keys and every file-name convention of DESIGN.md."""

from __future__ import annotations

import pytest

from avsets.core.errors import MetadataError
from avsets.core.segments import Segment, clip_key, is_valid_youtube_id, parse_media_name, parse_seconds


@pytest.mark.parametrize("ytid", ["-5o4C4ZtHSU", "---g-f_I2yQ", "0_8-g2rof7E", "zzwbG0dHLhI", "___________"])
def test_valid_ids(ytid):
    assert is_valid_youtube_id(ytid)
    assert Segment(ytid, 1.0, 11.0).youtube_id == ytid


@pytest.mark.parametrize("bad", ["", "short", "twelve_chars", "abc def ghi", "abcdefghij!", None, 12345678901,
                                 "../../etc/p"])
def test_invalid_ids(bad):
    assert not is_valid_youtube_id(bad)
    with pytest.raises(ValueError):
        Segment(bad, 0.0, 10.0)


def test_segment_times_validated():
    with pytest.raises(ValueError):
        Segment("-5o4C4ZtHSU", 10.0, 10.0)
    with pytest.raises(ValueError):
        Segment("-5o4C4ZtHSU", -1.0, 10.0)


def test_clip_key_is_stable_under_float_noise():
    assert clip_key("-5o4C4ZtHSU", 30, 40) == "-5o4C4ZtHSU_30000_40000"
    assert clip_key("-5o4C4ZtHSU", 29.9999999, 40.0000001) == "-5o4C4ZtHSU_30000_40000"
    assert Segment("-5o4C4ZtHSU", 1.5, 11.5).key == "-5o4C4ZtHSU_1500_11500"


@pytest.mark.parametrize(
    "name, expected",
    [
        ("glLQrEijrKg_000300.mp4", ("glLQrEijrKg", 300.0, None, "mp4")),  # VGGSound authors
        ("0_8-g2rof7E_000049.flac", ("0_8-g2rof7E", 49.0, None, "flac")),  # id with _ and -
        ("-5o4C4ZtHSU_30000_40000.wav", ("-5o4C4ZtHSU", 30.0, 40.0, "wav")),  # canonical ms
        ("-5o4C4ZtHSU_30.000_40.000.flac", ("-5o4C4ZtHSU", 30.0, 40.0, "flac")),  # AudioSet tagging
        ("Y-5o4C4ZtHSU_30.000_40.000.wav", ("-5o4C4ZtHSU", 30.0, 40.0, "wav")),  # Y-prefixed
        ("a/b/-5o4C4ZtHSU.MP4", ("-5o4C4ZtHSU", None, None, "mp4")),  # whole video, any depth
        ("___________.webm", ("___________", None, None, "webm")),
        ("x_y_z_a_b_c_1500_11500.opus", ("x_y_z_a_b_c", 1.5, 11.5, "opus")),
        ("-5o4C4ZtHSU_30.000.mp4", ("-5o4C4ZtHSU", 30.0, None, "mp4")),  # AudioSet one-time name
        ("-5o4C4ZtHSU_1.500.m4a", ("-5o4C4ZtHSU", 1.5, None, "m4a")),
    ],
)
def test_parse_media_name(name, expected):
    parsed = parse_media_name(name)
    assert parsed is not None
    assert (parsed.youtube_id, parsed.start, parsed.end, parsed.ext) == expected


@pytest.mark.parametrize("name", ["notes.txt", "short.mp4", "-5o4C4ZtHSU_40000_30000.wav", "-5o4C4ZtHSU.part",
                                  "-5o4C4ZtHSU_abc.wav", "toolongidxxxx.mp4",
                                  "-5o4C4ZtHSU_30.5.wav"])
def test_unparseable_names(name):
    assert parse_media_name(name) is None


@pytest.mark.parametrize("value, seconds", [(30, 30.0), ("30.000", 30.0), (" 4.5 ", 4.5), ("0:01:02.500", 62.5),
                                            ("1:00:00", 3600.0), ("02:03", 123.0)])
def test_parse_seconds(value, seconds):
    assert parse_seconds(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["abc", "", "-1", "1::2", True, None, [1], "nan", "inf"])
def test_parse_seconds_errors_name_the_place(value):
    with pytest.raises(MetadataError) as err:
        parse_seconds(value, file="f.json", line=7, field="Start Time")
    assert "f.json" in str(err.value) and "line 7" in str(err.value) and "Start Time" in str(err.value)
