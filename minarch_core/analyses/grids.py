"""Uniform integer grids and float casts: the precisions a weight can be stored at. Quantization measures what
they cost in accuracy; the encoding stores the codes they give."""
from __future__ import annotations

import torch
from torch import nn

from ..engine import models
from ..engine.errors import ConfigError

FLOATS = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
SCHEMES = ("symmetric", "asymmetric")
GRANULARITIES = ("tensor", "channel")
STORED = ("symmetric", "channel")  # the grid the compression frontier stores integer weights on (scheme, granularity)


def grid(w: torch.Tensor, bits: int, scheme: str = "symmetric", granularity: str = "tensor"):
    """(scale, zero_point, qmin, qmax) of the integer grid for ``w``; per channel along dim 0."""
    check(bits, scheme, granularity)
    dims = tuple(range(1, w.dim())) if granularity == "channel" else tuple(range(w.dim()))
    if scheme == "symmetric":
        qmin, qmax = -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1
        scale = w.abs().amax(dim=dims, keepdim=True) / max(qmax, 1)
        zero = torch.zeros_like(scale)
    else:
        qmin, qmax = 0, 2 ** bits - 1
        lo = w.amin(dim=dims, keepdim=True).clamp(max=0)
        hi = w.amax(dim=dims, keepdim=True).clamp(min=0)
        scale = (hi - lo) / qmax
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        zero = torch.clamp(torch.round(qmin - lo * (1 / scale)), qmin, qmax)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero tensor stays exactly zero
    return scale, zero, qmin, qmax


def codes(w: torch.Tensor, scale, zero, qmin: int, qmax: int) -> torch.Tensor:
    """The integer code of each element of ``w`` on the grid: nearest level, ties to even, as torch rounds."""
    return torch.clamp(torch.round(w * (1 / scale)) + zero, qmin, qmax)


def apply_grid(w: torch.Tensor, scale, zero, qmin: int, qmax: int) -> torch.Tensor:
    """Round ``w`` to the grid's nearest level and map it back to float."""
    return (codes(w, scale, zero, qmin, qmax) - zero) * scale


def fake_quantize(w: torch.Tensor, bits: int, scheme: str = "symmetric", granularity: str = "tensor") -> torch.Tensor:
    """``w`` rounded to a ``bits``-bit uniform grid and mapped back to float (a symmetric 1-bit grid is {0})."""
    return apply_grid(w, *grid(w, bits, scheme, granularity))


def targets(model: nn.Module, include_biases: bool = False) -> list[tuple[nn.Module, str]]:
    """The (module, name) pairs a precision applies to: the family's weight layers, and their biases if asked."""
    layers = models.weight_layers(model)
    return layers + [(m, "bias") for m, _ in layers if m.bias is not None] if include_biases else layers


def check(bits, scheme, granularity) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
        raise ConfigError(f"bits must be an integer in 1..16 (or a precision in {list(FLOATS)}), got {bits!r}")
    if scheme not in SCHEMES:
        raise ConfigError(f"unknown quantization scheme {scheme!r}: choose one of {list(SCHEMES)}")
    if granularity not in GRANULARITIES:
        raise ConfigError(f"unknown granularity {granularity!r}: choose one of {list(GRANULARITIES)}")
