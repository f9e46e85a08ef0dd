"""TFRecord files of ``tf.train.Example`` protos, written without TensorFlow.

TFRecord framing (``tensorflow/core/lib/io/record_writer.cc``), all little-endian, no header::

    uint64 length | uint32 masked_crc32c(length bytes) | data[length] | uint32 masked_crc32c(data)

with CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) and
``mask(c) = ((c >> 15) | (c << 17)) + 0xA282EAD8`` (mod 2**32).

``tf.train.Example`` (``tensorflow/core/example/example.proto``, ``feature.proto``), protobuf
wire format by hand: Example{1: Features}, Features{1: map<string, Feature>} (each entry a
message {1: key, 2: value}), Feature oneof {1: BytesList, 2: FloatList, 3: Int64List}, each list
{1: repeated value}; floats and int64s packed, as TensorFlow writes them.

CRC-32C runs over many byte lanes at once with numpy (an episode of camera frames is megabytes)
and joins the lanes with the GF(2) "append n zero bytes" operator, as zlib's crc32_combine does.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO, Mapping, Sequence, Union

import numpy as np

_POLY = 0x82F63B78
_MASK_DELTA = 0xA282EAD8


def _table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(_POLY), table >> 1).astype(np.uint32)
    return table


_TABLE = _table()
_TABLE_LIST = _TABLE.tolist()


def _raw_bytes(crc: int, data: bytes) -> int:
    """The CRC register after ``data`` (no pre/post inversion), one byte at a time."""
    table = _TABLE_LIST
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def _gf2_apply(matrix: Sequence[int], vector: int) -> int:
    out, i = 0, 0
    while vector:
        if vector & 1:
            out ^= matrix[i]
        vector >>= 1
        i += 1
    return out


def _gf2_compose(a: Sequence[int], b: Sequence[int]) -> list[int]:
    """a after b."""
    return [_gf2_apply(a, column) for column in b]


def _zeros_operator(n: int) -> list[int]:
    """The linear map of the CRC register for ``n`` zero bytes (32 columns)."""
    result = [1 << i for i in range(32)]
    power = [_raw_bytes(1 << i, b"\0") for i in range(32)]
    while n:
        if n & 1:
            result = _gf2_compose(power, result)
        n >>= 1
        if n:
            power = _gf2_compose(power, power)
    return result


def crc32c(data: Union[bytes, bytearray, memoryview], lanes: int = 4096) -> int:
    """CRC-32C of ``data`` (init and final xor 0xFFFFFFFF, as iSCSI / TFRecord)."""
    data = memoryview(data).cast("B")
    n = len(data)
    k = max(1, min(lanes, n // 64))
    width = n // k
    register = 0
    if width:
        block = np.frombuffer(data[: k * width], dtype=np.uint8).reshape(k, width)
        crc = np.zeros(k, np.uint32)
        for j in range(width):
            crc = _TABLE[(crc ^ block[:, j]) & 0xFF] ^ (crc >> 8)
        shift = _zeros_operator(width)
        for lane in crc.tolist():
            register = _gf2_apply(shift, register) ^ lane
    register = _raw_bytes(register, bytes(data[k * width:]))
    # the initial 0xFFFFFFFF, carried through all n bytes, then the final inversion
    return (_gf2_apply(_zeros_operator(n), 0xFFFFFFFF) ^ register) ^ 0xFFFFFFFF


def masked_crc32c(data: Union[bytes, bytearray, memoryview]) -> int:
    c = crc32c(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def frame_record(data: bytes) -> bytes:
    """One TFRecord record around ``data``."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc32c(length)) + data + struct.pack("<I", masked_crc32c(data))


class TFRecordWriter:
    """Appends records to a file (``with`` closes it)."""

    def __init__(self, path: Union[str, Path]):
        self.path = Path(path)
        self._file: BinaryIO = open(self.path, "wb")
        self.bytes_written = 0

    def write(self, data: bytes) -> None:
        record = frame_record(data)
        self._file.write(record)
        self.bytes_written += len(record)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "TFRecordWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------- tf.train.Example

_LEN = 2  # wire type: length-delimited


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64: ten bytes of two's complement, as protobuf does
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _delimited(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | _LEN) + _varint(len(payload)) + payload


FeatureValue = Union[Sequence[bytes], np.ndarray]


def encode_feature(values: FeatureValue) -> bytes:
    """A ``Feature``: a list of bytes/str → BytesList; a floating array → FloatList (float32);
    an integer or bool array → Int64List. Arrays are flattened in C order."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
        flat = values.reshape(-1)
        if flat.dtype.kind == "f":
            body = _delimited(1, flat.astype("<f4").tobytes()) if flat.size else b""
            return _delimited(2, body)
        body = _delimited(1, b"".join(_varint(int(v)) for v in flat.tolist())) if flat.size else b""
        return _delimited(3, body)
    items = [v.encode() if isinstance(v, str) else bytes(v) for v in values]
    return _delimited(1, b"".join(_delimited(1, v) for v in items))


def encode_example(features: Mapping[str, FeatureValue]) -> bytes:
    """A serialized ``tf.train.Example`` with one Feature per key."""
    entries = b"".join(_delimited(1, _delimited(1, key.encode()) + _delimited(2, encode_feature(value)))
                       for key, value in features.items())
    return _delimited(1, entries)
