"""A TFRecord and ``tf.train.SequenceExample`` writer for test fixtures (moved out of the package: only tests
write TFRecords; the package reads them, ``avsets.metadata.tfrecord``).

It frames records as TensorFlow's ``core/lib/io/record_writer.cc`` does and serializes messages with the
package's own descriptors, so a file written here is read back by the code under test byte for byte.
"""

from __future__ import annotations

import gzip
import os
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from avsets.metadata.tfrecord import masked_crc32c, messages


def frame_record(payload: bytes) -> bytes:
    """One framed record: length, masked CRC of the length, payload, masked CRC of the payload."""
    length = struct.pack("<Q", len(payload))
    return length + struct.pack("<I", masked_crc32c(length)) + payload + struct.pack("<I", masked_crc32c(payload))


def write_records(path: str | os.PathLike, payloads: Iterable[bytes], *, compression: str | None = "gzip") -> None:
    """Write a TFRecord file as TensorFlow's ``TFRecordWriter`` does (GZIP by default, as AVMIT's files)."""
    data = b"".join(frame_record(p) for p in payloads)
    if compression == "gzip":
        data = gzip.compress(data)
    elif compression is not None:
        raise ValueError(f"compression must be 'gzip' or None, not {compression!r}")
    with open(path, "wb") as f:
        f.write(data)


def _fill_feature(feature: Any, value: Any) -> None:
    if isinstance(value, np.ndarray):
        value = value.tolist() if value.dtype.kind in "iuf" else [value.tobytes()]
    if isinstance(value, (bytes, str)):
        value = [value]
    if isinstance(value, (int, float)):
        value = [value]
    values = list(value)
    if not values or isinstance(values[0], (bytes, str)):
        feature.bytes_list.value.extend(v.encode("utf-8") if isinstance(v, str) else v for v in values)
    elif all(isinstance(v, (int, np.integer)) for v in values):
        feature.int64_list.value.extend(int(v) for v in values)
    else:
        feature.float_list.value.extend(float(v) for v in values)


def encode_sequence_example(context: Mapping[str, Any], feature_lists: Mapping[str, Sequence[Any]]) -> bytes:
    """Serialize a ``tf.train.SequenceExample``.

    Context values: ``str``/``bytes`` -> ``bytes_list``, ``int`` -> ``int64_list``, ``float`` -> ``float_list``
    (lists of those too).  Feature lists: one entry per step, encoded the same way; a 1-D float32 ndarray step
    becomes one ``bytes_list`` of its raw bytes, as AVMIT's extractor writes (``ndarray.tostring()``).
    """
    msg = messages()["SequenceExample"]()
    for key, value in context.items():
        _fill_feature(msg.context.feature[key], value)
    for key, steps in feature_lists.items():
        flist = msg.feature_lists.feature_list[key]
        for step in steps:
            if isinstance(step, np.ndarray) and step.dtype == np.float32:
                flist.feature.add().bytes_list.value.append(step.astype("<f4").tobytes())
            else:
                _fill_feature(flist.feature.add(), step)
    return msg.SerializeToString()
