"""Property-based attacks on every metadata parser (issue 8).

Each corpus format is fed random rows, random bytes, wrong encodings (UTF-16, BOM, Latin-1), CRLF/LF/CR mixes,
huge fields and empty files.  The only acceptable outcomes: parsed rows, or avsets' ``MetadataError`` naming
the file (and the line, for an error about a row).  TFRecord framing: records, or ``TFRecordError`` naming the
file.  Any other exception type is a bug.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import tempfile

import numpy as np
import pyarrow as pa
import pytest
from helpers import mini_audiosetzsl, writable_sample
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import avsets
from avsets.core.errors import MetadataError
from avsets.metadata.readers import RowErrors

# AVSETS_FUZZ_EXAMPLES=2000 explores further with fresh random seeds; the suite runs a fixed, fast set.
_DEEP = int(os.environ.get("AVSETS_FUZZ_EXAMPLES", "0"))
SETTINGS = settings(max_examples=_DEEP or 50, deadline=None, derandomize=not _DEEP, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])

# Whole-file problems have no single line to name; every other MetadataError must carry one.
WHOLE_FILE = ("no rows", "empty file", "column-oriented", "dict keyed by id", "keys but", "no youtube-id",
              "no <class>.txt", "no YouTube id field", "no start/end time field", "both name the field",
              "expected text, found", "timestamp must be", "record ", "unreadable JSON metadata")


# ------------------------------------------------------------------------------------------ strategies
FIELD_CHARS = st.characters(blacklist_categories=("Cs",), max_codepoint=0x2FFF)
NASTY = st.sampled_from([",", '"', '""', "\r", "\n", "\r\n", "\t", "\x00", "\ufeff", "é", "日本", " ", "'", ", ",
                         "\\", "{", "}", "[", "]", ":", "-rf", "--exec", "../../etc/passwd", "/abs/x.mp4"])
FIELD = st.one_of(st.text(FIELD_CHARS, max_size=20), NASTY, st.integers(-5, 10**6).map(str),
                  st.floats(allow_nan=True, allow_infinity=True).map(repr))
NEWLINE = st.sampled_from(["\n", "\r\n", "\r"])
ENCODING = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "latin-1", "cp1252"])
YTID = st.sampled_from(["--9O4XZOge4", "-0O3e95y4gE", "1FCq89ykIII", "a_b-c_d-e_f", "short", "x" * 12, ""])


def _encode(text: str, encoding: str) -> bytes:
    return text.encode(encoding, errors="replace")


@st.composite
def csv_file(draw, row: st.SearchStrategy, header: str | None = None, min_rows: int = 0) -> bytes:
    """Plausible rows (mutated), joined with mixed line endings, in some encoding; sometimes a huge field."""
    rows = draw(st.lists(row, min_size=min_rows, max_size=8))
    if header is not None and draw(st.integers(0, 9)) < 9:  # sometimes no header at all
        rows = [header.split(","), *rows]
    lines = []
    for fields in rows:
        fields = list(fields)
        # rare branches sit on the high values: hypothesis favours 0 and shrinks towards it
        if fields and draw(st.integers(0, 9)) == 9:  # mutate one field
            fields[draw(st.integers(0, len(fields) - 1))] = draw(FIELD)
        if draw(st.integers(0, 9)) == 9:  # drop or add a field
            fields = fields[:-1] if draw(st.booleans()) else [*fields, draw(FIELD)]
        if draw(st.integers(0, 14)) == 14:
            fields = [*fields[:-1], "h" * draw(st.sampled_from([70_000, 140_000]))]  # past csv's field limit
        lines.append(",".join(fields) + draw(NEWLINE))
    text = "".join(lines)
    if draw(st.booleans()) and text:
        text = text.rstrip("\r\n")  # no final newline
    if draw(st.integers(0, 4)) == 4:
        text = text.replace("\n", "\n\n", 1)  # a blank line
    data = _encode(text, draw(ENCODING))
    if draw(st.integers(0, 6)) == 6:
        data = data[: draw(st.integers(0, len(data)))]  # truncated anywhere (even mid UTF-16 unit)
    return data


def any_bytes(plausible: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(plausible, plausible, plausible, st.binary(max_size=400), st.just(b""),
                     st.sampled_from([b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\r\n\r\n", b"\x00" * 8]))


def _write(data: bytes, name: str, folder: str | None = None) -> str:
    folder = folder or tempfile.mkdtemp(prefix="avsets-fuzz-")
    path = os.path.join(folder, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


def check_outcome(fn, path: str):
    """Run a parser: a result, or a MetadataError naming ``path`` (and a line for row errors)."""
    try:
        return fn(path)
    except MetadataError as exc:
        assert exc.file is not None and os.path.abspath(exc.file).startswith(os.path.dirname(os.path.abspath(path))), exc
        if not any(w in exc.reason for w in WHOLE_FILE) and "(row " not in exc.reason:  # column files: a row
            assert exc.line is not None and exc.line >= 1, f"no line in: {exc!r}"
        assert str(exc).startswith(exc.file)
        assert len(str(exc)) < 1500, f"unreadably long message ({len(str(exc))} characters)"  # huge fields
        return exc


# ------------------------------------------------------------------------------------------ VGGSound
from avsets.vggsound.metadata import label_list, read_astest_csv, read_categories, read_vggsound_csv  # noqa: E402

VGG_LABELS = st.sampled_from(list(label_list("default")[:5]) + ['"female speech, woman speaking"', "nope"])
HUGE_NUMBER = "1" + "0" * 25
VGG_ROW = st.tuples(YTID, st.sampled_from(["0", "30", "12.5", "-1", "x", "nan", HUGE_NUMBER]), VGG_LABELS,
                    st.sampled_from(["train", "test", "TRAIN", ""]))
ASTEST_ROW = st.tuples(st.sampled_from(["glLQrEijrKg_000300.mp4", "bad.mp4", "glLQrEijrKg_000300.mp3"]),
                       st.sampled_from(list(label_list("common")[:3]) + ["nope"]))


@SETTINGS
@given(data=any_bytes(csv_file(VGG_ROW)), errors=st.sampled_from(["raise", "skip"]))
def test_vggsound_csv(data, errors):
    path = _write(data, "vggsound.csv")
    out = check_outcome(lambda p: read_vggsound_csv(p, label_list("default"), only=None, errors=errors,
                                                    row_errors=RowErrors()), path)
    if isinstance(out, pa.Table):
        assert out.column_names[:3] == ["youtube_id", "start", "label_name"]
        assert out.column("label").null_count == 0


@SETTINGS
@given(data=any_bytes(csv_file(ASTEST_ROW)), errors=st.sampled_from(["raise", "skip"]))
def test_vggsound_astest_csv(data, errors):
    path = _write(data, "AStest.csv")
    check_outcome(lambda p: read_astest_csv(p, label_list("common"), errors=errors, row_errors=RowErrors()), path)


@SETTINGS
@given(data=any_bytes(csv_file(st.tuples(VGG_LABELS, st.just("1050"), st.just("people")))))
def test_vggsound_stat_csv(data):
    check_outcome(read_categories, _write(data, "stat.csv"))


# ------------------------------------------------------------------------------------------ AudioSetZSL
from avsets.audiosetzsl.metadata import class_names, read_class_split, read_id_file  # noqa: E402


@st.composite
def zsl_id_file(draw) -> bytes:
    rows = draw(st.lists(st.tuples(st.sampled_from(["136315", "x", ""]), YTID,
                                   st.sampled_from(["40.000", "0", "1e3", "nan", "-1", "50.000", HUGE_NUMBER, "1e300"]),
                                   st.sampled_from(["50.000", "10", "inf", "40.000"]),
                                   st.lists(st.sampled_from(["/m/07yv9", "/m/0k5j", "/m/zzzz", ""]), max_size=3)),
                         max_size=6))
    lines = []
    for idx, yt, s, e, mids in rows:
        fields = [idx, yt, s, e, *mids]
        if draw(st.integers(0, 9)) == 9:
            fields[draw(st.integers(0, len(fields) - 1))] = draw(FIELD)
        lines.append(", ".join(fields) + draw(NEWLINE))
    return _encode("".join(lines), draw(ENCODING))


@SETTINGS
@given(data=any_bytes(zsl_id_file()), errors=st.sampled_from(["raise", "skip"]), drop=st.booleans())
def test_audiosetzsl_id_file(data, errors, drop):
    path = _write(data, "youtube-id/trn/dog.txt")
    out = check_outcome(lambda p: read_id_file(p, 3, errors=errors, row_errors=RowErrors(), drop_unknown=drop),
                        path)
    if isinstance(out, pa.Table):
        assert set(out.column("label").to_pylist()) <= {3}


@SETTINGS
@given(data=any_bytes(st.builds(
    lambda names, nl, enc: _encode(nl.join(f"'{n}'," for n in names), enc),
    st.lists(st.sampled_from([*class_names()[:4], "unicorn", "", "'"]), max_size=6), NEWLINE, ENCODING)))
def test_audiosetzsl_class_split(data):
    out = check_outcome(read_class_split, _write(data, "class-split/seen_class.txt"))
    if isinstance(out, list):
        assert set(out) <= set(class_names())


# ------------------------------------------------------------------------------------------ AVSET-10M
from avsets.avset10m.metadata import ReadOptions, read_file  # noqa: E402

JSON_VALUE = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10, 10**12), st.floats(),
                                    st.text(FIELD_CHARS, max_size=8)),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                       max_size=2), max_leaves=6)
AVSET_RECORD = st.fixed_dictionaries(
    {"Youtube ID": st.one_of(YTID, JSON_VALUE), "Start Time": st.sampled_from([30, "30.000", "0:00:30.000", "x", -1, "NaN", 1e300, 2**62]),
     "End Time": st.sampled_from([40, "40.000", "0:00:40.000", 20, None]),
     "AVC": st.sampled_from(["0.31", 0.5, "high", None, 2**62, 1e300]), "Flag (Sound Separation)": st.sampled_from([0, 1, "1", 7]),
     "Label": st.sampled_from(["/m/09x0r,/m/04rlf", "Speech", "/m/nope", "", None, ["/m/09x0r"]])},
    optional={"caption": JSON_VALUE, "pseudo_label": st.one_of(JSON_VALUE, st.just([{"label": "Speech", "score": 0.5}])),
              "junk key": JSON_VALUE})


@st.composite
def avset_file(draw) -> bytes:
    recs = draw(st.lists(AVSET_RECORD, max_size=5))
    layout = draw(st.sampled_from(["array", "lines", "keyed", "columns", "columns_dict", "pretty"]))
    dumps = (lambda o: json.dumps(o, indent=2)) if draw(st.booleans()) else json.dumps
    if layout == "array":
        text = dumps(recs)
    elif layout == "lines":
        text = draw(NEWLINE).join(json.dumps(r) for r in recs)
    elif layout == "pretty":
        text = "\n".join(json.dumps(r, indent=2) for r in recs)
    elif layout == "keyed":
        text = dumps({f"k{i}": {k: v for k, v in r.items() if k != "Youtube ID"} for i, r in enumerate(recs)})
    else:
        keys = list(dict.fromkeys(k for r in recs for k in r))
        if layout == "columns":
            text = dumps({k: [r.get(k) for r in recs] for k in keys})
        else:
            text = dumps({k: {str(i): r.get(k) for i, r in enumerate(recs)} for k in keys})
    if draw(st.integers(0, 3)) == 3:
        text = text[: draw(st.integers(0, len(text)))]  # truncated
    if draw(st.integers(0, 3)) == 3:
        text = text.replace("\n", "\r\n")
    return _encode(text, draw(ENCODING))


@pytest.mark.slow
@SETTINGS
@given(data=any_bytes(avset_file()), errors=st.sampled_from(["raise", "skip"]), with_text=st.booleans(),
       drop=st.booleans())
def test_avset10m_json(data, errors, with_text, drop):
    path = _write(data, "AVSET-700K/unbalanced_train_segments_part00.json")
    opts = ReadOptions(with_text=with_text, errors=errors, drop_unknown_labels=drop)
    out = check_outcome(lambda p: read_file(p, opts, RowErrors()), path)
    if isinstance(out, pa.Table):
        assert out.column_names[:4] == ["id", "youtube_id", "start", "end"]


# ------------------------------------------------------------------------------------------ AVMIT
from avsets.avmit.metadata import (  # noqa: E402
    AVMIT_LIST,
    MIT16_LIST,
    TEST_SET,
    VIDEO_RATINGS,
    UnsafeNames,
    labels_avmit16,
    labels_from_file,
    read_list,
)

AVMIT_KINDS = {
    "test_set": (TEST_SET, "filename,AVMIT_label,MIT_label,video_location,new_filename,tfrecord_filename"),
    "avmit": (AVMIT_LIST, "filename,actual_label,r1,r2,r3,label,video_location,tfrecord_filename"),
    "mit16": (MIT16_LIST, ",filename,MIT label,AVMIT label,tfrecord_filename"),
    "ratings": (VIDEO_RATINGS, "filename,r1,r2,r3,AVMIT_label,MIT_label,video_location,tfrecord_filename"),
}
MIT_FILE = st.sampled_from(["inflating/yt-vRmldM5Wcs4_37.mp4", "../x.mp4", "/etc/passwd", "a\\..\\b.mp4", "",
                            "-rf.mp4", "x" * 5000])
MIT_LABEL = st.sampled_from([*labels_avmit16()[:3], "nope", ""])
MIT_LOC = st.sampled_from(["training", "validation", "MIT_training", "elsewhere"])
MIT_INT = st.sampled_from(["0", "2", "x", "-1", "1.5", HUGE_NUMBER])


def _avmit_row(kind: str) -> st.SearchStrategy:
    tf = st.sampled_from(["inflating/a.tfrecord", "../../a.tfrecord"])
    return {
        "test_set": st.tuples(MIT_FILE, MIT_LABEL, MIT_LABEL, MIT_LOC, MIT_FILE, tf),
        "avmit": st.tuples(MIT_FILE, MIT_LABEL, MIT_INT, MIT_INT, MIT_INT, MIT_LABEL, MIT_LOC, tf),
        "mit16": st.tuples(st.just("0"), MIT_FILE, MIT_LABEL, MIT_LABEL, tf),
        "ratings": st.tuples(MIT_FILE, MIT_INT, MIT_INT, MIT_INT, MIT_LABEL, MIT_LABEL, MIT_LOC, tf),
    }[kind]


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(AVMIT_KINDS))
@SETTINGS
@given(data=st.data(), errors=st.sampled_from(["raise", "skip"]))
def test_avmit_lists(kind, data, errors):
    list_kind, header = AVMIT_KINDS[kind]
    content = data.draw(any_bytes(csv_file(_avmit_row(kind), header=header)))
    path = _write(content, f"{kind}.csv")
    unsafe = UnsafeNames()
    out = check_outcome(lambda p: read_list(p, list_kind, labels_avmit16(), errors=errors, row_errors=RowErrors(),
                                            unsafe=unsafe), path)
    if isinstance(out, pa.Table):
        for name in out.column("id").to_pylist():
            assert avsets.core.paths.is_safe_relpath(name)
    check_outcome(labels_from_file, path)


# ------------------------------------------------------------------------------------------ ASCC
from avsets.ascc.metadata import label_space, read_cc_ids, read_num_ids, read_pairs, read_segments  # noqa: E402

MIDS = label_space()[0]
ASCC = {
    "cc": (",Unnamed: 0,id,license", st.tuples(st.just("7"), st.just("7"), YTID, st.just("CC BY")),
           lambda p, e: read_cc_ids(p, errors=e, row_errors=RowErrors())),
    "pairs": (",id,class_id", st.tuples(st.just("0"), YTID, st.sampled_from([*MIDS[:3], "/m/nope"])),
              lambda p, e: read_pairs(p, MIDS, errors=e, row_errors=RowErrors())),
    "num_ids": (",id,num_id,/m/09x0r", st.tuples(st.just("0"), YTID, st.sampled_from(["3", "3.0", "x", "-2", HUGE_NUMBER]),
                                                 st.just("1")),
                lambda p, e: read_num_ids(p, errors=e, row_errors=RowErrors())),
    "segments": (",0,1,2,3", st.tuples(st.just("0"), YTID, st.sampled_from(["30.0", "x", "", HUGE_NUMBER]),
                                       st.sampled_from(["40.0", "1e400"]), st.just("/m/09x0r")),
                 lambda p, e: read_segments(p, {"--9O4XZOge4", "1FCq89ykIII", "short"}, errors=e,
                                            row_errors=RowErrors())),
}


@pytest.mark.parametrize("kind", sorted(ASCC))
@SETTINGS
@given(data=st.data(), errors=st.sampled_from(["raise", "skip"]))
def test_ascc_csvs(kind, data, errors):
    header, row, fn = ASCC[kind]
    content = data.draw(any_bytes(csv_file(row, header=header)))
    check_outcome(lambda p: fn(p, errors), _write(content, f"{kind}.csv"))


# ------------------------------------------------------------------------------------------ TFRecord
from tfrecord_writer import encode_sequence_example, frame_record  # noqa: E402

from avsets.avmit.embeddings import SETS, read_embeddings  # noqa: E402
from avsets.metadata.tfrecord import TFRecordError, iter_records, parse_sequence_example  # noqa: E402


@st.composite
def tfrecord_file(draw) -> bytes:
    emb = SETS["vggish_vgg16"]
    payloads = []
    for _ in range(draw(st.integers(0, 2))):
        ta, tv = draw(st.integers(0, 3)), draw(st.integers(0, 3))
        ctx = {"filename": "a.mp4", "audio_timesteps": draw(st.sampled_from([ta, ta + 1, "x"])),
               "visual_timesteps": tv}
        lists = {"audio": [np.ones(draw(st.sampled_from([emb.audio_dim, 3])), np.float32) for _ in range(ta)],
                 "visual_object": [np.ones(emb.visual_dim, np.float32) for _ in range(tv)]}
        if draw(st.booleans()):
            lists["audio"] = [[1, 2]] * ta
        payloads.append(encode_sequence_example(ctx, lists) if draw(st.integers(0, 5)) < 5 else draw(st.binary(max_size=40)))
    data = b"".join(frame_record(p) for p in payloads)
    if draw(st.integers(0, 3)) == 3 and data:  # flip one byte
        i = draw(st.integers(0, len(data) - 1))
        data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
    if draw(st.booleans()):
        data = gzip.compress(data)
    if draw(st.integers(0, 3)) == 3:
        data = data[: draw(st.integers(0, len(data)))]
    return data


@SETTINGS
@given(data=st.one_of(tfrecord_file(), st.binary(max_size=200),
                      st.builds(lambda n, b: struct.pack("<Q", n) + b, st.integers(0, 2**64 - 1), st.binary(max_size=20))))
def test_tfrecord_framing_and_embeddings(data):
    path = _write(data, "inflating/a.tfrecord")
    try:
        for payload in iter_records(path):
            parse_sequence_example(payload, path=path)
    except TFRecordError as exc:
        assert exc.path == path
    try:
        audio, visual = read_embeddings(path, SETS["vggish_vgg16"], clip_id="inflating/a.mp4")
        assert audio.dtype == np.float32 and visual.dtype == np.float32
    except TFRecordError as exc:
        assert exc.path == path and exc.clip_id == "inflating/a.mp4"


# ------------------------------------------------------------------------------------------ one vocabulary, end to end
def test_validate_rows_skip_with_two_different_bad_fields(tmp_path):
    """Regression (found by the fuzzer): under errors="skip", bad rows of two different checks crashed with
    pyarrow's "Array arguments must all be the same length"."""
    path = _write(b"bad id!,30,dog barking,train\n--9O4XZOge4,thirty,dog barking,train\n"
                  b"--0PQM4-hqg,30,dog barking,train\n", "vggsound.csv", str(tmp_path))
    errs = RowErrors()
    table = read_vggsound_csv(path, label_list("default"), only=None, errors="skip", row_errors=errs)
    assert table.num_rows == 1 and errs.count == 2
    assert "line 1" in errs.examples[0] and "line 2" in errs.examples[1]


def test_huge_header_field_is_a_metadata_error(tmp_path):
    """Regression: a header past csv's field limit raised ``_csv.Error`` from ``header_of``."""
    path = _write(b",id," + b"h" * 200_000 + b"\n0,-0O3e95y4gE,/m/09x0r\n", "all_cc_qual_0_false.csv", str(tmp_path))
    with pytest.raises(MetadataError) as info:
        read_pairs(path, MIDS, errors="raise", row_errors=RowErrors())
    assert info.value.file == path and info.value.line == 1


def _vgg_dir(root, vgg_sample_dir):
    import shutil

    shutil.copy(os.path.join(vgg_sample_dir, "stat.csv"), root / "stat.csv")
    bad = root / "vggsound.csv"
    bad.write_bytes(b"---g-f_I2yQ,1,people marching,test\r\n--0PQM4-hqg,30,waterfall burbling,train\r\n"
                    b"--9O4XZOge4,thirty,lawn mowing,train\r\n")
    return str(root), str(bad), {}


def _zsl_dir(root, _):
    from avsets.audiosetzsl.metadata import bundled_archive, extract_archive

    src = extract_archive(bundled_archive(), str(root / "src"))
    dst = mini_audiosetzsl(src, root / "zsl", rows=2)
    bad = dst / "youtube-id" / "trn" / "dog.txt"
    bad.write_text(bad.read_text() + "136315, 1FCq89ykIII, forty, 50.000, /m/07yv9\n")
    return str(dst), str(bad), {}


def _avset_dir(root, _):
    folder = root / "AVSET-700K"
    folder.mkdir()
    bad = folder / "unbalanced_train_segments_part00.json"
    rec = {"Youtube ID": "--9O4XZOge4", "Start Time": "30.000", "End Time": "40.000", "AVC": "0.5",
           "Flag (Sound Separation)": 0, "Label": "/m/09x0r"}
    rows = [rec, {**rec, "Youtube ID": "1FCq89ykIII"}, {**rec, "Youtube ID": "-0O3e95y4gE", "End Time": "soon"}]
    bad.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return str(root), str(bad), {"config": "700k"}


def _avmit_dir(root, _):
    dst = writable_sample("avmit", root / "meta")
    bad = dst / "test_set.csv"
    lines = bad.read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace("inflating,inflating,training", "inflating,inflating,the moon", 1)
    bad.write_text("".join(lines))
    return str(dst), str(bad), {"config": "test"}


def _ascc_dir(root, _):
    dst = writable_sample("ascc", root / "meta")
    bad = dst / "all_cc_qual_0_false.csv"
    lines = bad.read_text().splitlines(keepends=True)
    lines[2] = lines[2].rsplit(",", 1)[0] + ",/m/not-a-class\n"
    bad.write_text("".join(lines))
    return str(dst), str(bad), {}


CORPUS_DIRS = {"vggsound": _vgg_dir, "audiosetzsl": _zsl_dir, "avset10m": _avset_dir, "avmit": _avmit_dir,
               "ascc": _ascc_dir}


@pytest.mark.parametrize("corpus", sorted(CORPUS_DIRS))
def test_every_corpus_names_file_and_line_and_says_what_to_do(corpus, tmp_path, vgg_sample_dir):
    """Item 1: one error vocabulary.  A malformed line 3 in each corpus' metadata reaches the user as avsets'
    MetadataError (not datasets' "An error occurred while generating the dataset"), naming the file and the
    line, with advice; map-style and streaming alike; errors="skip" loads the rest."""
    data_dir, bad, kw = CORPUS_DIRS[corpus](tmp_path, vgg_sample_dir)
    config = kw.get("config")
    for streaming in (False, True):
        with pytest.raises(MetadataError) as info:
            ds = avsets.load_dataset(corpus, config, data_dir=data_dir, cache_dir=str(tmp_path / f"c{streaming}"),
                                     streaming=streaming)
            for split in ds.values():  # streaming reads lazily
                list(split)
        err = info.value
        assert os.path.abspath(err.file) == os.path.abspath(bad), err
        assert err.line == 3, err
        assert "errors='skip'" in str(err) or "errors=\"skip\"" in str(err)
    ds = avsets.load_dataset(corpus, config, data_dir=data_dir, cache_dir=str(tmp_path / "skip"), errors="skip")
    assert sum(len(s) for s in ds.values()) > 0


def test_avset10m_list_of_nulls_is_a_metadata_error(tmp_path):
    """Regression (found by the fuzzer): ``"Youtube ID": [null, null]`` made pyarrow's JSON reader build an
    invalid list<null> array whose ArrowIndexError escaped; now the json fallback reads it and the id field is
    named."""
    path = _write(json.dumps([{"Youtube ID": [None, None], "Start Time": 30, "End Time": 40, "AVC": "0.3",
                               "Flag (Sound Separation)": 0, "Label": "/m/09x0r"}]).encode(),
                  "AVSET-700K/unbalanced_train_segments_part00.json", str(tmp_path))
    with pytest.raises(MetadataError) as info:
        read_file(path, ReadOptions(with_text=False), RowErrors())
    assert info.value.file == path and info.value.field == "Youtube ID"


# ------------------------------------------------------------------------------------------ end to end, fuzzed
GOOD_YTID = st.sampled_from(["--9O4XZOge4", "-0O3e95y4gE", "1FCq89ykIII", "a_b-c_d-e_f"])
VGG_GOOD = st.tuples(GOOD_YTID, st.sampled_from(["0", "30", "12.5"]), st.sampled_from(label_list("default")[:40]),
                     st.sampled_from(["train", "test"]))
MIT_GOOD = st.tuples(st.sampled_from(["inflating/yt-vRmldM5Wcs4_37.mp4", "barking/yt-a_1.mp4", "-rf/--x.mp4"]),
                     st.sampled_from(labels_avmit16()), st.sampled_from(labels_avmit16()),
                     st.sampled_from(["training", "validation"]), st.just("inflating/inflating_1.mp4"),
                     st.just("inflating/a.tfrecord"))
E2E = {  # mostly plausible rows, so the stages after parsing (sharding, resolving, the cache) are reached
    "vggsound": lambda: csv_file(st.one_of(VGG_GOOD, VGG_GOOD, VGG_GOOD, VGG_ROW), min_rows=2),
    "avmit": lambda: csv_file(st.one_of(MIT_GOOD, MIT_GOOD, MIT_GOOD, _avmit_row("test_set")),
                              header=AVMIT_KINDS["test_set"][1], min_rows=2),
    "ascc": lambda: csv_file(ASCC["pairs"][1], header=ASCC["pairs"][0], min_rows=2),
    "avset10m": avset_file,
    "audiosetzsl": zsl_id_file,
}
E2E_SETTINGS = settings(max_examples=_DEEP or 12, deadline=None, derandomize=not _DEEP, database=None,
                        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                               HealthCheck.function_scoped_fixture])


@pytest.mark.slow
@pytest.mark.parametrize("corpus", sorted(E2E))
@E2E_SETTINGS
@given(data=st.data(), errors=st.sampled_from(["raise", "skip"]))
def test_fuzzed_metadata_through_load_dataset(corpus, tmp_path_factory, vgg_sample_dir, data, errors):
    """The whole builder (parse, validate, shard, resolve, write the cache) on fuzzed metadata: a dataset, or
    our MetadataError / ManualDownloadRequired naming a file in data_dir - never datasets' wrapper or a raw
    pyarrow / csv / json error."""
    root = tmp_path_factory.mktemp(corpus)
    data_dir, target, kw = CORPUS_DIRS[corpus](root, vgg_sample_dir)
    with open(target, "wb") as f:
        f.write(data.draw(E2E[corpus]()))  # random bytes and empty files: the parser tests above
    try:
        ds = avsets.load_dataset(corpus, kw.get("config"), data_dir=data_dir, cache_dir=str(root / "cache"),
                                 errors=errors)
    except MetadataError as exc:
        event(f"MetadataError: {exc.reason[:50]}")
        assert exc.file is not None and os.path.abspath(exc.file).startswith(os.path.abspath(data_dir)), exc
        return
    except avsets.ManualDownloadRequired:
        event("ManualDownloadRequired")
        return
    event("dataset")
    for split in ds.values():
        for row in split:
            assert row["id"]


def test_avset10m_list_of_nulls_in_a_record_stream(tmp_path):
    """Regression (fuzzer): the same pyarrow list<null> bug in a JSON Lines file read without complaint and
    exploded later in ``combine_chunks``; the table is now validated and the json fallback takes over."""
    rec = {"Start Time": 30, "Youtube ID": [None, None], "End Time": 40, "AVC": "0.31",
           "Flag (Sound Separation)": 0, "Label": "/m/09x0r"}
    path = _write(json.dumps(rec, indent=2).replace("\n", "\r\n").encode(),
                  "AVSET-700K/unbalanced_train_segments_part00.json", str(tmp_path))
    with pytest.raises(MetadataError) as info:
        read_file(path, ReadOptions(with_text=False), RowErrors())
    assert info.value.file == path and info.value.field == "Youtube ID"


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["garbage", "truncated", "no_datasets", "scalar_data", "int_urls"])
def test_audiosetzsl_damaged_h5_features_name_the_file(tmp_path, vgg_sample_dir, damage):
    """Found here: a damaged features file surfaced as h5py's OSError / KeyError (or datasets' generation
    wrapper), not as our error naming the file."""
    h5py = pytest.importorskip("h5py")
    data_dir, bad, _ = _zsl_dir(tmp_path, vgg_sample_dir)
    with open(bad) as f:
        lines = f.readlines()[:-1]  # drop the injected bad row
    with open(bad, "w") as f:
        f.writelines(lines)
    ids = [ln.split(", ")[1] for ln in lines]
    feats = tmp_path / "features"
    for modality in ("audio", "video"):
        path = feats / modality / "trn" / "dog.h5"
        path.parent.mkdir(parents=True)
        with h5py.File(path, "w") as hf:
            if damage == "scalar_data":
                hf["data"] = 1.0
            elif damage != "no_datasets":
                hf["data"] = np.ones((len(ids), 4), np.float32)
            urls = [1, 2] if damage == "int_urls" else [i.encode() for i in ids]
            if damage != "no_datasets":
                hf["video_urls"] = np.array(urls)
        if damage == "garbage":
            path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00garbage" * 20)
        elif damage == "truncated":
            path.write_bytes(path.read_bytes()[:600])
    with pytest.raises(MetadataError) as info:
        ds = avsets.load_dataset("audiosetzsl", data_dir=data_dir, features_dir=str(feats),
                                 cache_dir=str(tmp_path / "c"))
        list(ds["train"])
    assert info.value.file.endswith("dog.h5"), info.value


def test_huge_field_error_stays_readable(tmp_path):
    """Found here: a 200 kB field was quoted whole in the error (and in every skip log line)."""
    path = _write(b"--9O4XZOge4,30," + b"x" * 200_000 + b",train\n", "vggsound.csv", str(tmp_path))
    with pytest.raises(MetadataError) as info:
        read_vggsound_csv(path, label_list("default"), only=None, errors="raise", row_errors=RowErrors())
    assert info.value.line == 1 and len(str(info.value)) < 1500 and "characters]" in str(info.value)
    errs = RowErrors()
    table = read_vggsound_csv(path, label_list("default"), only=None, errors="skip", row_errors=errs)
    assert table.num_rows == 0 and errs.count == 1 and all(len(e) < 1500 for e in errs.examples)
