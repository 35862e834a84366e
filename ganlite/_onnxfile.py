"""Just enough of the ONNX file format, without the onnx package: top-level fields with
their byte spans, the graph and its external-data references, read from (and, for the
model card, written in) the protobuf wire format."""
from __future__ import annotations

import hashlib

# ModelProto field numbers (onnx.proto3): graph = 7.
_GRAPH_FIELD = 7


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def encode_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def encode_field(number: int, value: bytes) -> bytes:
    """One length-delimited field (wire type 2), in its shortest encoding."""
    return encode_varint(number << 3 | 2) + encode_varint(len(value)) + value


def fields(buf: bytes):
    """Yield (field_number, wire_type, value) of one protobuf message; value is bytes for
    length-delimited fields, an int otherwise. Raises ValueError on malformed input."""
    for number, wire, value, _, _ in spans(buf):
        yield number, wire, value


def spans(buf: bytes):
    """Like fields(), with each field's byte span: (number, wire, value, start, end), so
    that buf[start:end] is the whole field, key and length included."""
    pos = 0
    while pos < len(buf):
        start = pos
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise ValueError("truncated field")
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > len(buf):
            raise ValueError("truncated field")
        yield number, wire, value, start, pos


def graph_bytes(model_bytes: bytes) -> bytes:
    """The serialized GraphProto inside a serialized ModelProto."""
    for number, wire, value in fields(model_bytes):
        if number == _GRAPH_FIELD and wire == 2:
            return value
    raise ValueError("no graph in the file")


def graph_sha256(model_bytes: bytes) -> str:
    return hashlib.sha256(graph_bytes(model_bytes)).hexdigest()


def uses_external_data(graph: bytes) -> bool:
    """True if any initializer (GraphProto field 5, TensorProto.data_location = 14)
    stores its data outside the file."""
    for number, wire, value in fields(graph):
        if number == 5 and wire == 2:
            for n, w, v in fields(value):
                if n == 14 and w == 0 and v == 1:
                    return True
    return False
