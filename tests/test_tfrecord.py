"""TFRecord framing, CRC32C and tf.train protobufs without TensorFlow: real bytes, real gzip, real CRCs."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
from tfrecord_writer import encode_sequence_example, frame_record, write_records

from avsets.core.errors import MediaError
from avsets.metadata.tfrecord import (
    TFRecordError,
    iter_records,
    masked_crc32c,
    parse_example,
    parse_sequence_example,
    read_sequence_examples,
)


def _crc32c_reference(data: bytes) -> int:
    """Bitwise CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): an independent check of the package."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _masked_reference(data: bytes) -> int:
    crc = _crc32c_reference(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_crc32c_matches_the_castagnoli_check_value_and_an_independent_implementation():
    assert _crc32c_reference(b"123456789") == 0xE3069283  # the published CRC-32C check value
    for data in (b"", b"\x00" * 8, b"123456789", bytes(range(256)) * 3):
        assert masked_crc32c(data) == _masked_reference(data)


def test_frame_layout_is_tensorflows():
    payload = b"hello tfrecord"
    framed = frame_record(payload)
    length = struct.pack("<Q", len(payload))
    assert framed[:8] == length
    assert struct.unpack("<I", framed[8:12])[0] == _masked_reference(length)
    assert framed[12:-4] == payload
    assert struct.unpack("<I", framed[-4:])[0] == _masked_reference(payload)


def test_sequence_example_wire_bytes_match_hand_assembled_protobuf():
    # SequenceExample{context: Features{feature: {"n": Feature{int64_list: Int64List{value: [5]}}}}}
    int64_list = b"\x0a\x01\x05"                      # field 1, packed, one varint
    feature = b"\x1a" + bytes([len(int64_list)]) + int64_list       # Feature.int64_list = field 3
    entry = b"\x0a\x01n" + b"\x12" + bytes([len(feature)]) + feature  # map entry: key=1, value=2
    features = b"\x0a" + bytes([len(entry)]) + entry              # Features.feature = field 1
    expected = b"\x0a" + bytes([len(features)]) + features        # SequenceExample.context = field 1
    assert encode_sequence_example({"n": 5}, {}) == expected
    assert parse_sequence_example(expected).context == {"n": [5]}


def test_feature_list_and_float_list_field_numbers():
    # FeatureLists.feature_list (field 1) {"a": FeatureList{feature: [Feature{float_list: [1.5]}]}}
    float_list = b"\x0a\x04" + struct.pack("<f", 1.5)           # FloatList.value packed
    feature = b"\x12" + bytes([len(float_list)]) + float_list    # Feature.float_list = field 2
    flist = b"\x0a" + bytes([len(feature)]) + feature            # FeatureList.feature = field 1
    entry = b"\x0a\x01a" + b"\x12" + bytes([len(flist)]) + flist
    lists = b"\x0a" + bytes([len(entry)]) + entry
    payload = b"\x12" + bytes([len(lists)]) + lists              # SequenceExample.feature_lists = field 2
    ex = parse_sequence_example(payload)
    assert ex.feature_lists == {"a": [[1.5]]}
    assert encode_sequence_example({}, {"a": [[1.5]]}) == payload


def test_example_parses():
    # Example{features: {"s": bytes_list ["x"]}}
    bytes_list = b"\x0a\x01x"
    feature = b"\x0a" + bytes([len(bytes_list)]) + bytes_list    # Feature.bytes_list = field 1
    entry = b"\x0a\x01s" + b"\x12" + bytes([len(feature)]) + feature
    features = b"\x0a" + bytes([len(entry)]) + entry
    assert parse_example(b"\x0a" + bytes([len(features)]) + features) == {"s": [b"x"]}


@pytest.mark.parametrize("compression", ["gzip", None])
def test_round_trip_of_float32_embeddings_is_exact(tmp_path, compression):
    rng = np.random.default_rng(0)
    audio = rng.standard_normal((3, 128)).astype(np.float32)
    visual = rng.standard_normal((7, 512)).astype(np.float32)
    payload = encode_sequence_example(
        {"filename": "blowing/yt-h86SGC1a9bY_81.mp4", "label": "inflating", "audio_timesteps": 3,
         "visual_timesteps": 7},
        {"audio": list(audio), "visual_object": list(visual)})
    path = tmp_path / "x.tfrecord"
    write_records(path, [payload, payload], compression=compression)
    if compression == "gzip":
        assert path.read_bytes()[:2] == b"\x1f\x8b"
    examples = read_sequence_examples(path)
    assert len(examples) == 2
    ex = examples[0]
    assert ex.context["filename"] == [b"blowing/yt-h86SGC1a9bY_81.mp4"]
    assert ex.context["audio_timesteps"] == [3]
    a, v = ex.float32_matrix("audio", 128), ex.float32_matrix("visual_object", 512)
    assert a.dtype == np.float32 and v.dtype == np.float32
    assert np.array_equal(a, audio) and np.array_equal(v, visual)
    assert a.tobytes() == audio.tobytes()


def _gzip_file(tmp_path, payload=b"payload bytes " * 20):
    path = tmp_path / "r.tfrecord"
    write_records(path, [payload])
    return path


def test_payload_crc_mismatch_inside_a_valid_gzip_stream(tmp_path):
    path = _gzip_file(tmp_path)
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[20] ^= 0x01  # flip one payload bit, then re-gzip: gzip's own CRC is valid, ours must catch it
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(TFRecordError, match="payload CRC"):
        list(iter_records(path))


def test_length_crc_mismatch(tmp_path):
    path = _gzip_file(tmp_path)
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[0] ^= 0x01
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(TFRecordError, match="length CRC"):
        list(iter_records(path))


@pytest.mark.parametrize("cut", [5, 14, 30, -2])
def test_truncated_record_uncompressed(tmp_path, cut):
    path = tmp_path / "r.tfrecord"
    write_records(path, [b"x" * 40], compression=None)
    data = path.read_bytes()
    path.write_bytes(data[:cut])
    with pytest.raises(TFRecordError, match="truncated"):
        list(iter_records(path))


def test_truncated_gzip_file(tmp_path):
    path = _gzip_file(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TFRecordError) as info:
        list(iter_records(path))
    assert isinstance(info.value, MediaError) and info.value.path == str(path)


def test_corrupt_gzip_trailer(tmp_path):
    path = _gzip_file(tmp_path)
    data = bytearray(path.read_bytes())
    data[-6] ^= 0xFF  # gzip's CRC32 of the stream
    path.write_bytes(bytes(data))
    with pytest.raises(TFRecordError):
        list(iter_records(path))


def test_not_a_protobuf(tmp_path):
    with pytest.raises(TFRecordError, match="SequenceExample"):
        parse_sequence_example(b"\xff\xff\xff")


def test_empty_file_has_no_records(tmp_path):
    path = tmp_path / "empty.tfrecord"
    path.write_bytes(b"")
    assert list(iter_records(path)) == []


def test_float32_matrix_rejects_ragged_bytes():
    ex = parse_sequence_example(encode_sequence_example({}, {"audio": [b"\x00" * 6]}))
    with pytest.raises(TFRecordError):
        ex.float32_matrix("audio", 128)
    with pytest.raises(TFRecordError, match="no feature list"):
        ex.float32_matrix("visual_object", 512)
