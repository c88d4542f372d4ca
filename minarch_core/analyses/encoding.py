"""What "size in bytes" means in this book: a real encoding of a compressed model's parameters, and its decoder.

Every parameter tensor, in ``model.parameters()`` order (the architecture itself comes from the run's config), is
stored as a header (layout, value kind, float type or bit width, count; for integer grids the float32 scales and,
when asymmetric, the int32 zero points: one, or one per output channel) followed by its values:

- float values as raw float32, bfloat16 or float16;
- integer codes of ``b`` bits, bit-packed (offset by the grid's lowest code, so that they are non-negative).

The values are laid out **dense** (every element) or **sparse** (only the elements that are not exactly 0.0, their
places given by a **bitmap**, one bit per element, or by **relative indices**, the gap from the previous entry in 4
bits, with a filler entry holding the value 0.0 when a gap exceeds 15, as in Han et al.'s Deep Compression),
whichever takes fewer bytes for that tensor. ``decode`` gives back exactly the weights whose accuracy the book
measures (equal values; a pruned -0.0 comes back as 0.0) (``tests/test_encoding.py`` round-trips pruned and quantized models and checks the byte counts).
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from .. import packed
from ..packed import FLOAT, GAP_BITS, GRID, INT, TENSOR as HEADER
from .grids import FLOATS, codes, grid, targets

DENSE, BITMAP, RELATIVE = 0, 1, 2  # packed.LAYOUTS, in order
FLOAT_TYPES = list(FLOATS)  # float32, bfloat16, float16: stored by index, as packed.FLOAT_TYPES reads them
GAP_LIMIT = 2 ** GAP_BITS - 1  # the largest step one relative index holds
assert tuple(FLOAT_TYPES) == packed.FLOAT_TYPES


def pack_bits(values: np.ndarray, bits: int, chunk: int = 1 << 16) -> bytes:
    """Non-negative integers below 2**bits, ``bits`` each, most significant bit first, in whole bytes (packed a
    multiple of 8 values at a time, so that memory stays small for large tensors)."""
    values = np.asarray(values, dtype=np.int64).reshape(-1)
    shifts = np.arange(bits - 1, -1, -1)
    planes = [((values[i:i + chunk, None] >> shifts) & 1).astype(np.uint8).reshape(-1)
              for i in range(0, len(values), chunk)]
    return np.packbits(np.concatenate(planes) if planes else np.zeros(0, np.uint8)).tobytes()


def encode(model: nn.Module, precision="float32", scheme: str = "symmetric", granularity: str = "tensor",
           include_biases: bool = False) -> bytes:
    """``model`` (dense or pruned float weights) stored at ``precision`` as ``quantization.quantize_model`` sets it:
    its weight layers (and biases, if ``include_biases``) at ``precision``, every other parameter float32."""
    return b"".join(_tensors(model, precision, scheme, granularity, include_biases, build=True))


def decode(data: bytes, model: nn.Module) -> nn.Module:
    """A copy of ``model`` (the same architecture) holding the parameters that ``data`` encodes (read by
    ``packed.decode``, the one decoder, which needs numpy only)."""
    out = copy.deepcopy(model)
    params = list(out.parameters())
    try:
        arrays, _ = packed.decode(data, [tuple(p.shape) for p in params])
    except packed.FormatError as err:  # the payload holds no shapes: a wrong model reads as a damaged payload
        raise packed.FormatError(f"the payload does not fit this model's {len(params)} parameter tensors "
                                 f"({sum(p.numel() for p in params):,} values): decode it into the architecture it "
                                 f"was encoded from ({err})") from err
    with torch.no_grad():
        for p, values in zip(params, arrays):
            p.copy_(torch.from_numpy(values))
    return out


def size(model: nn.Module, precision="float32", scheme: str = "symmetric", granularity: str = "tensor",
         include_biases: bool = False) -> int:
    """Bytes of ``encode(model, precision, ...)``, counted by the same choices without packing the values (the
    frontier sizes every variant; tests/test_encoding.py holds the two equal)."""
    return sum(_tensors(model, precision, scheme, granularity, include_biases, build=False))


def layouts(data: bytes, model: nn.Module) -> list[str]:
    """The layout chosen for each parameter tensor (dense, bitmap or relative)."""
    return [i["layout"] for i in packed.decode(data, [tuple(p.shape) for p in model.parameters()])[1]]


# -- one tensor --------------------------------------------------------------------------------------------------------

def _tensors(model: nn.Module, precision, scheme: str, granularity: str, include_biases: bool, build: bool):
    """Each parameter tensor's encoding (``build``) or its byte count, in ``parameters()`` order."""
    if any(name.endswith("_orig") for name, _ in model.named_parameters()):  # its parameters are the unpruned ones
        raise ValueError("the model still carries pruning masks: encode pruning.make_permanent(model), or a copy "
                         "loaded with pruning.masked_state(model)")
    roles = {id(getattr(m, n)): n for m, n in targets(model, include_biases)}
    for p in model.parameters():
        w, role = p.detach().cpu().float(), roles.get(id(p))
        if role is None or precision in FLOATS:
            yield _float_tensor(w, "float32" if role is None else precision, build)
        else:
            yield _int_tensor(w, precision, scheme, "tensor" if role == "bias" else granularity, build)


def _float_tensor(w: torch.Tensor, dtype: str, build: bool):
    values = w.reshape(-1).to(FLOATS[dtype])
    raw = values.view(torch.int16 if values.element_size() == 2 else torch.int32).numpy()
    return _layout(values.float().numpy() != 0, FLOAT, FLOAT_TYPES.index(dtype), b"", lambda i: raw[i].tobytes(),
                   8 * values.element_size(), build)


def _int_tensor(w: torch.Tensor, bits: int, scheme: str, granularity: str, build: bool):
    scale, zero, qmin, qmax = grid(w, bits, scheme, granularity)
    q = codes(w, scale, zero, qmin, qmax).reshape(-1).numpy().astype(np.int64)
    zero_code = torch.broadcast_to(zero, w.shape).reshape(-1).numpy().astype(np.int64)
    asymmetric = scheme == "asymmetric"
    grid_bytes = GRID.pack(asymmetric, scale.numel()) + scale.reshape(-1).numpy().astype("<f4").tobytes() + \
        (zero.reshape(-1).numpy().astype("<i4").tobytes() if asymmetric else b"")
    return _layout(q != zero_code, INT, bits, grid_bytes, lambda i: pack_bits(q[i] - qmin, bits), bits, build)


def _layout(kept: np.ndarray, kind: int, parameter: int, grid_bytes: bytes, store, bits: int, build: bool):
    """The cheapest of the dense, bitmap and relative layouts of one tensor (``bits`` per value), built
    (``build``) or only counted; ``store(indices)`` packs the values at those flat indices (an index in a relative
    gap holds 0.0, which is what a filler must decode to). The sizes are counted first and only the smallest layout
    is built."""
    n, where = len(kept), np.flatnonzero(kept)
    steps = np.diff(where, prepend=-1).astype(np.int64)  # each kept place's step from the last (the first's from -1)
    fillers = (steps - 1) // GAP_LIMIT  # the full gaps a relative index needs before each step's last
    entries = len(where) + int(fillers.sum())  # of the relative layout
    size = lambda count, extra: (count * bits + 7) // 8 + extra  # noqa: E731
    costs = [size(n, 0), size(len(where), (n + 7) // 8), size(entries, (entries * GAP_BITS + 7) // 8)]
    layout = int(np.argmin(costs))
    head = HEADER.pack(layout, kind, parameter, (n, len(where), entries)[layout]) + grid_bytes
    if not build:
        return len(head) + costs[layout]
    if layout == DENSE:
        return head + store(np.arange(n))
    if layout == BITMAP:
        return head + np.packbits(kept).tobytes() + store(where)
    gaps = np.full(entries, GAP_LIMIT, dtype=np.int64)  # fillers, then each step's last gap
    gaps[np.cumsum(fillers + 1) - 1] = steps - fillers * GAP_LIMIT
    return head + pack_bits(gaps, GAP_BITS) + store(np.cumsum(gaps) - 1)
