"""Uniform integer grids and float casts: the precisions a weight can be stored at, and the one quantizer
(``quantize``) that post-training quantization, quantization-aware fine-tuning and component sensitivity call. The
encoding stores the integer codes of the same grids (``codes``); its decoder gives back ``quantize``'s values."""
from __future__ import annotations

import torch
from torch import nn

from ..engine import models
from ..engine.compression import FLOAT_PRECISIONS, GRANULARITIES, SCHEMES
from ..engine.errors import ConfigError

FLOATS = dict(zip(FLOAT_PRECISIONS, (torch.float32, torch.bfloat16, torch.float16)))


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


def quantize(w: torch.Tensor, precision, scheme: str = "symmetric", granularity: str = "tensor") -> torch.Tensor:
    """``w`` at ``precision``: cast to a float type and back (``"float16"``), or rounded to a ``precision``-bit grid
    (``grid``) by torch's ``fake_quantize_per_{tensor,channel}_affine`` and mapped back to float (a symmetric 1-bit
    grid is {0}). Differentiable: its gradient is the straight-through estimator (identity inside the grid's range),
    what quantization-aware fine-tuning trains through. The grid is taken from ``w`` itself, without gradient."""
    if precision in FLOATS:
        return w.to(FLOATS[precision]).to(w.dtype)
    scale, zero, qmin, qmax = grid(w.detach(), precision, scheme, granularity)
    if granularity == "channel" and w.dim() > 1:
        return torch.fake_quantize_per_channel_affine(w, scale.flatten(), zero.flatten().to(torch.int32), 0,
                                                      qmin, qmax)
    return torch.fake_quantize_per_tensor_affine(w, scale.reshape(()), zero.reshape(()).to(torch.int32), qmin, qmax)


def bits_of(precision) -> int:
    return {"float32": 32, "bfloat16": 16, "float16": 16}.get(precision, precision)


def precision_of(text: str):
    """A precision as tables store it ("float16", "4") back as ``quantize_model`` takes it ("float16", 4)."""
    return text if text in FLOATS else int(text)


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
