"""The ``.minarch`` file: a compressed model as the bytes the book counts, readable with numpy alone.

Layout, little-endian::

    magic        8 bytes   b"MINARCH\\0"
    version      uint16    FORMAT_VERSION
    header size  uint32    n
    checksum     uint32    CRC-32 (zlib's) of everything after the preamble: the header and the payload
    header       n bytes   UTF-8 JSON: dataset, family, arch, input (shape, dtype, scaling, mean, std), classes,
                           precision, scheme, granularity, and "tensors": [{"name", "shape"}] in payload order
    payload      the rest  analyses.encoding's bytes: per tensor a header (layout, kind, float type or bit width,
                           count; integer grids' float32 scales and int32 zero points), then its values, dense or
                           sparse (bitmap or 4-bit relative indices), bit-packed

The payload's length is the variant's ``size_bytes`` in the frontier. ``read`` checks the magic, the version, the
checksum and every length, and refuses a file that is corrupt, truncated or longer than its tensors, never misreading
it (a fuzz test mutates real files: each is read to the same tensors or refused with ``FormatError``); ``forward``
runs the DNN, CNN and Conv+MLP families in numpy. This module imports numpy and the standard library only, so that a
file can be read where torch is not installed; ``analyses.encoding`` decodes through ``decode`` too, so there is one
decoder.
"""
from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np

MAGIC = b"MINARCH\0"
FORMAT_VERSION = 2  # 2: the checksum
PREAMBLE = struct.Struct("<8sHII")
TENSOR = struct.Struct("<BBBI")  # layout, kind, float type index or bit width, count (elements, kept or entries)
GRID = struct.Struct("<BI")  # asymmetric?, number of scales
LAYOUTS = ("dense", "bitmap", "relative")
FLOAT_TYPES = ("float32", "bfloat16", "float16")  # by index
FLOAT, INT = 0, 1
GAP_BITS = 4
MAX_ELEMENTS = 1 << 28  # values a file may declare (1 GiB of float32): a corrupt shape never allocates beyond it


class FormatError(ValueError):
    """The bytes are not a ``.minarch`` file this reader can read; the message says what is wrong."""


def unpack_bits(data, bits: int, count: int) -> np.ndarray:
    """``count`` non-negative integers of ``bits`` bits each, most significant bit first."""
    planes = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[: count * bits]
    if len(planes) < count * bits:
        raise FormatError(f"the payload ends inside a tensor: {count} values of {bits} bits need "
                          f"{(count * bits + 7) // 8} bytes, {len(data)} are left")
    return (planes.reshape(count, bits).astype(np.int64) << np.arange(bits - 1, -1, -1)).sum(1)


def decode_tensor(data: bytes, offset: int, n: int) -> tuple[np.ndarray, int, dict]:
    """The ``n`` float32 values of the tensor encoded at ``offset`` of ``data``, the offset after it, and what it
    is (layout, kind, bits or float type, kept values, bytes)."""
    start = offset
    _need(data, offset, TENSOR.size)
    layout, kind, parameter, count = TENSOR.unpack_from(data, offset)
    offset += TENSOR.size
    if layout >= len(LAYOUTS) or kind not in (FLOAT, INT):
        raise FormatError(f"unknown tensor layout {layout} or kind {kind} at byte {start}")
    if kind == INT:
        _need(data, offset, GRID.size)
        asymmetric, scales = GRID.unpack_from(data, offset)
        offset += GRID.size
        _need(data, offset, 4 * scales * (2 if asymmetric else 1))
        scale = np.frombuffer(data, "<f4", scales, offset).astype(np.float32)
        offset += 4 * scales
        zero = np.zeros(scales, np.float32)
        if asymmetric:
            zero = np.frombuffer(data, "<i4", scales, offset).astype(np.float32)
            offset += 4 * scales
        if not 1 <= parameter <= 16 or not scales or n % scales:
            raise FormatError(f"tensor at byte {start}: {parameter} bits over {scales} scales of {n} values")
        qmin = 0 if asymmetric else -(2 ** (parameter - 1) - 1)
        per = n // scales  # elements per scale (output channels lead)
    if layout == 0:
        places = np.arange(n)
    elif layout == 1:
        _need(data, offset, (n + 7) // 8)
        places = np.flatnonzero(np.unpackbits(np.frombuffer(data, np.uint8, (n + 7) // 8, offset))[:n])
        offset += (n + 7) // 8
    else:
        size = (count * GAP_BITS + 7) // 8
        _need(data, offset, size)
        gaps = unpack_bits(data[offset:offset + size], GAP_BITS, count)
        if len(gaps) and gaps.min() < 1:  # the encoder's gaps are 1..15: each entry lies beyond the last
            raise FormatError(f"tensor at byte {start} has a relative index of 0, which no encoding writes")
        places = np.cumsum(gaps) - 1
        offset += size
    if len(places) and places[-1] >= n:
        raise FormatError(f"tensor at byte {start} places a value beyond its {n} elements")
    out = np.zeros(n, np.float32)
    if kind == FLOAT:
        if parameter >= len(FLOAT_TYPES):
            raise FormatError(f"unknown float type {parameter} at byte {start}")
        width = 4 if parameter == 0 else 2
        _need(data, offset, width * len(places))
        raw = np.frombuffer(data, "<u4" if width == 4 else "<u2", len(places), offset)
        if FLOAT_TYPES[parameter] == "float16":
            out[places] = raw.view(np.float16).astype(np.float32)
        else:  # float32, or bfloat16: the upper half of a float32
            out[places] = (raw.astype(np.uint32) << (16 if width == 2 else 0)).view(np.float32)
        offset += width * len(places)
        what = FLOAT_TYPES[parameter]
    else:
        size = (len(places) * parameter + 7) // 8
        _need(data, offset, size)
        q = (unpack_bits(data[offset:offset + size], parameter, len(places)) + qmin).astype(np.float32)
        channel = places // per
        out[places] = (q - zero[channel]) * scale[channel]  # the grid's arithmetic, in float32
        offset += size
        what = f"{parameter}-bit"
    return out, offset, {"layout": LAYOUTS[layout], "values": what, "kept": len(places), "bytes": offset - start}


def decode(payload: bytes, shapes: list[tuple[int, ...]]) -> tuple[list[np.ndarray], list[dict]]:
    """The tensors of a payload, shaped, and what each is; the payload must hold exactly these tensors."""
    arrays, info, offset = [], [], 0
    for shape in shapes:
        values, offset, what = decode_tensor(payload, offset, int(np.prod(shape, dtype=np.int64)))
        arrays.append(values.reshape(shape))
        info.append(what)
    if offset != len(payload):
        raise FormatError(f"{len(payload) - offset} bytes left over after the last tensor: the payload does not "
                          f"encode these tensors")
    return arrays, info


def write(path: str | Path, header: dict, payload: bytes) -> int:
    """Write a ``.minarch`` file; returns its size in bytes."""
    text = json.dumps(header, sort_keys=True).encode()
    blob = PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(text), zlib.crc32(text + payload)) + text + payload
    Path(path).write_bytes(blob)
    return len(blob)


def read(path: str | Path) -> tuple[dict, dict[str, np.ndarray], list[dict]]:
    """(header, tensors by name, what each tensor is) of a ``.minarch`` file."""
    data = Path(path).read_bytes()
    if len(data) < PREAMBLE.size or data[:8] != MAGIC:
        raise FormatError(f"{path} is not a .minarch file (its first bytes are not {MAGIC!r})")
    _, version, size, checksum = PREAMBLE.unpack_from(data)
    if version != FORMAT_VERSION:
        raise FormatError(f"{path} is format version {version}; this reader reads version {FORMAT_VERSION} (a newer "
                          f"minarch wrote it: upgrade to read it; an older one: export the model again)")
    if len(data) < PREAMBLE.size + size:
        raise FormatError(f"{path} is truncated: its header needs {size} bytes, {len(data) - PREAMBLE.size} remain")
    if zlib.crc32(data[PREAMBLE.size:]) != checksum:
        raise FormatError(f"{path} is corrupt: its checksum does not match its {len(data):,} bytes (truncated, "
                          f"extended or altered since it was written: copy or export it again)")
    try:
        header = json.loads(data[PREAMBLE.size:PREAMBLE.size + size])
        names = [t["name"] for t in header["tensors"]]
        shapes = [tuple(t["shape"]) for t in header["tensors"]]
    except (ValueError, KeyError, TypeError) as err:
        raise FormatError(f"{path}: unreadable header ({err})") from None
    if not all(isinstance(n, str) for n in names) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for shape in shapes for d in shape):
        raise FormatError(f"{path}: unreadable header (tensor names must be strings, shapes lists of integers >= 0)")
    if len(set(names)) < len(names):
        raise FormatError(f"{path}: unreadable header (two tensors share a name: "
                          f"{sorted({n for n in names if names.count(n) > 1})})")
    elements = sum(int(np.prod(shape, dtype=object)) for shape in shapes)
    if elements > MAX_ELEMENTS:
        raise FormatError(f"{path}: its header declares {elements:,} values, more than this reader takes "
                          f"({MAX_ELEMENTS:,}): the file is corrupt")
    arrays, info = decode(data[PREAMBLE.size + size:], shapes)
    return header, dict(zip(names, arrays)), info


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int = 1, padding: int = 0) -> np.ndarray:
    """``torch.nn.functional.conv2d`` in numpy: (N, C, H, W) -> (N, O, H', W')."""
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    k = w.shape[-1]
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("nchwij,ocij->nohw", windows, w, optimize=True) + b[None, :, None, None]


def _max_pool(x: np.ndarray, pool: int) -> np.ndarray:
    """``MaxPool2d(pool)``: windows of ``pool`` x ``pool``, stride ``pool``, the ragged edge dropped."""
    n, c, h, w = x.shape
    h, w = h // pool * pool, w // pool * pool
    return x[:, :, :h, :w].reshape(n, c, h // pool, pool, w // pool, pool).max(axis=(3, 5))


def _mlp(x: np.ndarray, tensors: list) -> np.ndarray:
    """Flatten, then Linear layers (weight, bias pairs) with ReLU between them."""
    x = x.reshape(len(x), -1)
    layers = list(zip(tensors[::2], tensors[1::2]))
    for i, (w, b) in enumerate(layers):
        x = x @ w.T + b
        if i < len(layers) - 1:
            x = np.maximum(x, 0)
    return x


FORWARD = {  # family -> (arch, tensors in model order, images) -> logits: the families numpy runs
    "dnn": lambda arch, t, x: _mlp(x, t),
    "cnn": lambda arch, t, x: _mlp(np.maximum(_conv(x, t[0], t[1]), 0), t[2:]),
    "convmlp": lambda arch, t, x: _mlp(_max_pool(np.maximum(_conv(x, t[0], t[1], 2, 1), 0), arch["pool"]), t[2:]),
}


def forward(header: dict, weights: dict[str, np.ndarray], images: np.ndarray) -> np.ndarray:
    """Logits of ``images`` (N, C, H, W), already scaled and normalised as the header's "input" says, in numpy, for
    the families of ``FORWARD`` (the DNN, the CNN and the Conv+MLP hybrid)."""
    family = header["family"]
    if family not in FORWARD:
        raise FormatError(f"the numpy forward pass covers the {', '.join(FORWARD)} families, not {family!r}: read "
                          f"the weights with read() and run them in the family's own framework")
    return FORWARD[family](header["arch"], list(weights.values()), images.astype(np.float32))


def _need(data: bytes, offset: int, size: int) -> None:
    if offset + size > len(data):
        raise FormatError(f"the payload is truncated: {size} bytes needed at byte {offset}, {len(data) - offset} "
                          f"remain")
