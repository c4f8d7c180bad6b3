"""TFRecord files and ``tf.train.(Sequence)Example`` protobufs, read and written without TensorFlow.

Why not a library: the ``tfrecord`` package on PyPI reads the two CRC fields of each frame and throws them
away (``tfrecord/reader.py``: ``file.readinto(crc_bytes)`` and nothing more), so a flipped bit or a truncated
file passes as data; its ``example_pb2.py`` is pre-generated code tied to the protoc of its release.  Here
the framing is a dozen lines, both CRCs are checked with the ``crc32c`` package (C implementation), and the
messages are parsed by the real ``protobuf`` runtime from descriptors built at import time (the field
numbers and types of TensorFlow's ``feature.proto`` / ``example.proto``), in a private descriptor pool so a
TensorFlow installed next to us never clashes.

Only the reader lives here: the writer (``tests/tfrecord_writer.py``) makes test fixtures and nothing else.

Framing of one record (TensorFlow ``core/lib/io/record_writer.cc``)::

    uint64 length (little endian) | uint32 masked_crc32c(length bytes) | payload | uint32 masked_crc32c(payload)

A file may be GZIP-compressed as a whole (``TFRecordOptions(compression_type="GZIP")``); the reader
detects the gzip magic.  Any damage - bad CRC, short frame, broken gzip stream - raises
:class:`TFRecordError`, a :class:`~avsets.core.errors.MediaError`, so callers report it like corrupt media.
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from avsets.core.errors import MediaError

try:  # an optional extra (``avsets[embeddings]``): fail with a message that says which one
    import crc32c as _crc32c
except ImportError:  # pragma: no cover - exercised only without the extra
    _crc32c = None

_GZIP_MAGIC = b"\x1f\x8b"
_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
MAX_RECORD_BYTES = 1 << 31  # a length CRC that happens to match on garbage must still not allocate terabytes


class TFRecordError(MediaError):
    """A TFRecord file is corrupt or truncated (bad CRC, short frame, broken gzip stream, bad protobuf)."""


def _require_crc32c() -> Any:
    if _crc32c is None:  # pragma: no cover
        raise ImportError("reading TFRecords needs the 'crc32c' package: pip install 'avsets[embeddings]'")
    return _crc32c


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    """TensorFlow's masked CRC32C: rotate right by 15 bits and add a constant (so CRCs of CRCs differ)."""
    crc = _require_crc32c().crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


# ---------------------------------------------------------------------------------------------------
# framing


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    chunks = []
    remaining = n
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _open(source: str | os.PathLike | bytes | BinaryIO, compression: str | None) -> tuple[BinaryIO, list]:
    """A binary stream of the (decompressed) records, and the streams we opened (the caller closes them)."""
    if compression not in ("gzip", None, "auto"):
        raise ValueError(f"compression must be 'gzip', None or 'auto', not {compression!r}")
    opened: list = []
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw: BinaryIO = io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        raw = open(source, "rb")  # noqa: SIM115 - closed by the caller
        opened.append(raw)
    else:
        raw = source
    if compression == "auto":
        head = raw.read(2)
        raw.seek(-len(head), io.SEEK_CUR)
        compression = "gzip" if head == _GZIP_MAGIC else None
    if compression == "gzip":
        stream = gzip.GzipFile(fileobj=raw, mode="rb")
        opened.insert(0, stream)
        return stream, opened
    return raw, opened


def iter_records(source: str | os.PathLike | bytes | BinaryIO, *, compression: str | None = "auto",
                 name: str | None = None) -> Iterator[bytes]:
    """Yield the payload of every record, checking the length CRC and the payload CRC of each frame.

    ``name`` is what errors call the file (defaults to the path).  Raises :class:`TFRecordError` on damage.
    """
    label = name or (os.fspath(source) if isinstance(source, (str, os.PathLike)) else "<tfrecord>")
    stream, opened = _open(source, compression)
    index = 0
    try:
        while True:
            header = _read_exact(stream, _HEADER.size)
            if not header:
                return
            if len(header) < _HEADER.size:
                raise TFRecordError(f"truncated TFRecord: record {index} header has {len(header)} of 12 bytes",
                                    path=label)
            length, length_crc = _HEADER.unpack(header)
            if masked_crc32c(header[:8]) != length_crc:
                raise TFRecordError(f"corrupt TFRecord: record {index} length CRC mismatch", path=label)
            if length > MAX_RECORD_BYTES:
                raise TFRecordError(f"corrupt TFRecord: record {index} claims {length} bytes", path=label)
            payload = _read_exact(stream, length)
            footer = _read_exact(stream, _FOOTER.size)
            if len(payload) < length or len(footer) < _FOOTER.size:
                raise TFRecordError(f"truncated TFRecord: record {index} ends after {len(payload)} of {length} "
                                    "payload bytes", path=label)
            if masked_crc32c(payload) != _FOOTER.unpack(footer)[0]:
                raise TFRecordError(f"corrupt TFRecord: record {index} payload CRC mismatch", path=label)
            yield payload
            index += 1
    except (EOFError, OSError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        if isinstance(exc, FileNotFoundError):
            raise
        raise TFRecordError(f"corrupt or truncated TFRecord (gzip stream): {exc}", path=label) from exc
    finally:
        for f in opened:
            f.close()


# ---------------------------------------------------------------------------------------------------
# tf.train.* messages from descriptors (tensorflow/core/example/feature.proto and example.proto)


def _build_messages() -> dict[str, type]:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="avsets/tensorflow_example.proto", package="tensorflow",
                                              syntax="proto3")

    def add_message(name: str, fields: Sequence[tuple], parent: Any = None) -> Any:
        msg = (parent.nested_type if parent is not None else file.message_type).add(name=name)
        for fname, number, ftype, label, type_name, *rest in fields:
            f = msg.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = type_name
            if rest and rest[0] == "oneof":
                f.oneof_index = 0
            if rest and rest[0] == "packed":
                f.options.packed = True
        return msg

    rep, opt = fdp.LABEL_REPEATED, fdp.LABEL_OPTIONAL
    add_message("BytesList", [("value", 1, fdp.TYPE_BYTES, rep, None)])
    add_message("FloatList", [("value", 1, fdp.TYPE_FLOAT, rep, None, "packed")])
    add_message("Int64List", [("value", 1, fdp.TYPE_INT64, rep, None, "packed")])
    feature = add_message("Feature", [
        ("bytes_list", 1, fdp.TYPE_MESSAGE, opt, ".tensorflow.BytesList", "oneof"),
        ("float_list", 2, fdp.TYPE_MESSAGE, opt, ".tensorflow.FloatList", "oneof"),
        ("int64_list", 3, fdp.TYPE_MESSAGE, opt, ".tensorflow.Int64List", "oneof"),
    ])
    feature.oneof_decl.add(name="kind")
    for outer, entry, value_type, fname in (("Features", "FeatureEntry", ".tensorflow.Feature", "feature"),
                                            ("FeatureLists", "FeatureListEntry", ".tensorflow.FeatureList",
                                             "feature_list")):
        msg = add_message(outer, [(fname, 1, fdp.TYPE_MESSAGE, rep, f".tensorflow.{outer}.{entry}")])
        nested = add_message(entry, [("key", 1, fdp.TYPE_STRING, opt, None),
                                     ("value", 2, fdp.TYPE_MESSAGE, opt, value_type)], parent=msg)
        nested.options.map_entry = True
        if outer == "Features":
            add_message("FeatureList", [("feature", 1, fdp.TYPE_MESSAGE, rep, ".tensorflow.Feature")])
    add_message("Example", [("features", 1, fdp.TYPE_MESSAGE, opt, ".tensorflow.Features")])
    add_message("SequenceExample", [("context", 1, fdp.TYPE_MESSAGE, opt, ".tensorflow.Features"),
                                     ("feature_lists", 2, fdp.TYPE_MESSAGE, opt, ".tensorflow.FeatureLists")])

    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    get_class = getattr(message_factory, "GetMessageClass", None)
    factory = None if get_class is not None else message_factory.MessageFactory(pool)
    out = {}
    for name in ("BytesList", "FloatList", "Int64List", "Feature", "Features", "FeatureList", "FeatureLists",
                 "Example", "SequenceExample"):
        desc = pool.FindMessageTypeByName(f"tensorflow.{name}")
        out[name] = get_class(desc) if get_class is not None else factory.GetPrototype(desc)  # type: ignore[union-attr]
    return out


_MESSAGES: dict[str, type] | None = None


def messages() -> dict[str, type]:
    """The protobuf classes ``BytesList`` ... ``SequenceExample`` (built once, on first use)."""
    global _MESSAGES
    if _MESSAGES is None:
        _MESSAGES = _build_messages()
    return _MESSAGES


FeatureValue = list[bytes] | list[float] | list[int]


def _feature_value(feature: Any) -> FeatureValue:
    kind = feature.WhichOneof("kind")
    if kind is None:
        return []
    return list(getattr(feature, kind).value)


@dataclass
class SequenceExample:
    """A parsed ``tf.train.SequenceExample``: context values and, per feature list, one value per step."""

    context: dict[str, FeatureValue] = field(default_factory=dict)
    feature_lists: dict[str, list[FeatureValue]] = field(default_factory=dict)

    def float32_matrix(self, name: str, dim: int | None = None, *, path: str | None = None) -> np.ndarray:
        """A feature list of raw float32 bytes (one ``bytes_list`` per step) as a ``(T, D)`` array.

        The layout ``ndarray.tostring()`` writes (little-endian on the x86 machines that wrote them); a
        ``float_list`` per step is accepted too.  A length that is not a multiple of ``dim`` raises
        :class:`TFRecordError`.
        """
        if name not in self.feature_lists:
            raise TFRecordError(f"TFRecord has no feature list {name!r} (has {sorted(self.feature_lists)})",
                                path=path)
        steps = self.feature_lists[name]
        rows = []
        for step in steps:
            if step and isinstance(step[0], bytes):
                raw = b"".join(step)
                if len(raw) % 4:
                    raise TFRecordError(f"feature list {name!r}: {len(raw)} bytes is not float32 data", path=path)
                rows.append(np.frombuffer(raw, dtype="<f4"))
            else:
                rows.append(np.asarray(step, dtype=np.float32))
        if not rows:
            return np.zeros((0, dim or 0), dtype=np.float32)
        flat = np.concatenate(rows).astype(np.float32, copy=False)
        width = dim if dim is not None else (rows[0].size or 1)
        if flat.size % width:
            raise TFRecordError(f"feature list {name!r}: {flat.size} values do not make rows of {width}", path=path)
        return flat.reshape(-1, width)


def parse_sequence_example(payload: bytes, *, path: str | None = None) -> SequenceExample:
    """Decode one serialized ``tf.train.SequenceExample`` (raises :class:`TFRecordError` if it is not one)."""
    from google.protobuf.message import DecodeError

    msg = messages()["SequenceExample"]()
    try:
        msg.ParseFromString(payload)
    except DecodeError as exc:
        raise TFRecordError(f"record is not a tf.train.SequenceExample: {exc}", path=path) from exc
    context = {k: _feature_value(v) for k, v in msg.context.feature.items()}
    lists = {k: [_feature_value(f) for f in v.feature] for k, v in msg.feature_lists.feature_list.items()}
    return SequenceExample(context=context, feature_lists=lists)


def parse_example(payload: bytes, *, path: str | None = None) -> dict[str, FeatureValue]:
    """Decode one serialized ``tf.train.Example`` into ``{name: values}``."""
    from google.protobuf.message import DecodeError

    msg = messages()["Example"]()
    try:
        msg.ParseFromString(payload)
    except DecodeError as exc:
        raise TFRecordError(f"record is not a tf.train.Example: {exc}", path=path) from exc
    return {k: _feature_value(v) for k, v in msg.features.feature.items()}


def read_sequence_examples(path: str | os.PathLike, *, compression: str | None = "auto") -> list[SequenceExample]:
    """Every record of a TFRecord file as a :class:`SequenceExample`."""
    label = os.fspath(path)
    return [parse_sequence_example(p, path=label) for p in iter_records(path, compression=compression)]
