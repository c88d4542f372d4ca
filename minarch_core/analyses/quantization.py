"""Post-training, weight-only quantization of trained models: accuracy against numeric precision.

Choices (the paper says only "reduced numeric precision on trainable parameters"): the weights of every Linear and
Conv2d layer are rounded to a uniform integer grid and mapped back to float ("fake quantization", the standard way
to measure what a precision costs), per tensor or per output channel, symmetric (zero point 0, levels
-(2^(b-1)-1)..2^(b-1)-1) or asymmetric (levels 0..2^b-1 spanning [min, max] and 0); or cast to float16 / bfloat16.
Biases (and LayerNorm, positions) stay float32 unless ``include_biases``. Activations stay float32. The rounding is
exactly that of ``torch.fake_quantize_per_{tensor,channel}_affine`` (tested), and ``int8_crosscheck`` runs the
8-bit per-channel model through torch's real int8 weight kernel (``aten._weight_int8pack_mm``) to show that fake and
real quantization agree.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..engine import models, train
from ..engine.errors import ConfigError
from ..engine.store import Run
from .common import info_of, run_columns

INT_BITS = (16, 12, 10, 8, 6, 5, 4, 3, 2)
FLOATS = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
PRECISIONS = ("float32", "bfloat16", "float16", *INT_BITS)  # from the most precise down
SCHEMES = ("symmetric", "asymmetric")
GRANULARITIES = ("tensor", "channel")


def grid(w: torch.Tensor, bits: int, scheme: str = "symmetric", granularity: str = "tensor"):
    """(scale, zero_point, qmin, qmax) of the integer grid for ``w``; per channel along dim 0."""
    _check(bits, scheme, granularity)
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


def fake_quantize(w: torch.Tensor, bits: int, scheme: str = "symmetric", granularity: str = "tensor") -> torch.Tensor:
    """``w`` rounded to a ``bits``-bit uniform grid and mapped back to float (a symmetric 1-bit grid is {0})."""
    return apply_grid(w, *grid(w, bits, scheme, granularity))


def apply_grid(w: torch.Tensor, scale, zero, qmin: int, qmax: int) -> torch.Tensor:
    """Round ``w`` to the grid's nearest level (ties to even, as torch does) and map it back to float."""
    q = torch.clamp(torch.round(w * (1 / scale)) + zero, qmin, qmax)
    return (q - zero) * scale


def quantize_model(model: nn.Module, precision, scheme: str = "symmetric", granularity: str = "tensor",
                   include_biases: bool = False) -> nn.Module:
    """Replace ``model``'s weights in place by their value at ``precision`` (bits, or a float dtype name)."""
    with torch.no_grad():
        for module, name in _targets(model, include_biases):
            w = getattr(module, name)
            w.copy_(_at(w, precision, scheme, "tensor" if name == "bias" else granularity))
    return model


def packed_bytes(model: nn.Module, precision, scheme: str = "symmetric", granularity: str = "tensor",
                 include_biases: bool = False) -> int:
    """Bytes to store the model at ``precision``: quantized tensors bit-packed plus their float32 scales (and int32
    zero points when asymmetric); every other parameter at float32."""
    targets = {id(getattr(m, n)) for m, n in _targets(model, include_biases)}
    total = 0
    for p in model.parameters():
        if id(p) not in targets or precision == "float32":
            total += 4 * p.numel()
        elif precision in FLOATS:
            total += 2 * p.numel()
        else:
            channels = p.shape[0] if granularity == "channel" and p.dim() > 1 else 1
            total += math.ceil(p.numel() * precision / 8) + channels * (4 if scheme == "symmetric" else 8)
    return total


def curve(run: Run, precisions=PRECISIONS, scheme: str = "symmetric", granularity: str = "tensor",
          include_biases: bool = False, splits=("test",), device=None, data_root=None) -> pd.DataFrame:
    """Accuracy (and loss) of ``run``'s model on ``splits`` at each precision, with the packed size: one row per
    precision."""
    dataset = train.load_data(run.config, device, data_root)
    loss_fn = train.LOSSES[run.config.loss]
    rows = []
    for precision in precisions:
        model = quantize_model(run.model(dataset), precision, scheme, granularity, include_biases)
        r = {"run_id": run.run_id, "precision": str(precision), "bits": _bits(precision),
             "kind": "float" if precision in FLOATS else "int", "scheme": scheme, "granularity": granularity,
             "size_bytes": packed_bytes(model, precision, scheme, granularity, include_biases)}
        for split in splits:
            r[f"{split}_loss"], r[f"{split}_acc"] = train.evaluate(model, getattr(dataset, split), loss_fn)
        rows.append(r)
    out = pd.DataFrame(rows)
    base = out.loc[out.precision == "float32", "test_acc"]
    out["drop"] = (base.iloc[0] if len(base) else np.nan) - out.test_acc
    return out


def curves(runs, **options) -> pd.DataFrame:
    """``curve`` for several runs, with each run's dataset, seed and architecture columns."""
    return pd.concat([curve(run, **options).assign(**run_columns(run)) for run in runs], ignore_index=True)


def tolerance(curves_: pd.DataFrame, tol: float = 0.01) -> pd.DataFrame:
    """Per model (and scheme, granularity): float32 accuracy, the lowest integer bit width such that it and every
    higher one tested stay within ``tol`` of float32, and the accuracy drop at 8, 4 and 2 bits."""
    keys = [k for k in ("run_id", "scheme", "granularity") if k in curves_]
    rows = []
    for key, c in curves_.groupby(keys, sort=False):
        ints = c[c.kind == "int"].sort_values("bits", ascending=False)
        ok = (ints["drop"] <= tol).to_numpy()
        n_ok = len(ok) if ok.all() else int(np.argmin(ok))
        r = {**dict(zip(keys, key)), "float32_acc": float(c.loc[c.precision == "float32", "test_acc"].iloc[0]),
             "min_bits": int(ints.bits.iloc[n_ok - 1]) if n_ok else np.nan}
        for bits in (8, 4, 2):
            d = ints.loc[ints.bits == bits, "drop"]
            r[f"drop_{bits}bit"] = float(d.iloc[0]) if len(d) else np.nan
        rows.append(r)
    return pd.DataFrame(rows).join(info_of(curves_), on="run_id")


class Int8Linear(nn.Module):
    """A Linear layer stored as int8 weights with per-output-channel float scales, run by torch's int8 kernel."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        scale, _, qmin, qmax = grid(linear.weight.detach(), 8, "symmetric", "channel")
        q = torch.clamp(torch.round(linear.weight.detach() * (1 / scale)), qmin, qmax)
        self.register_buffer("weight_int8", q.to(torch.int8).contiguous())
        self.register_buffer("scales", scale.flatten().contiguous())
        self.bias = linear.bias

    def forward(self, x):
        shape = x.shape
        y = torch.ops.aten._weight_int8pack_mm(x.reshape(-1, shape[-1]).contiguous(), self.weight_int8, self.scales)
        y = y.reshape(*shape[:-1], -1)
        return y if self.bias is None else y + self.bias


def int8_crosscheck(run: Run, data_root=None) -> dict:
    """Run the 8-bit per-channel symmetric model twice on the CPU, with fake quantization and with real int8
    weights in torch's int8 kernel (Linear layers; convolutions stay fake-quantized), and compare."""
    dataset = train.load_data(run.config, "cpu", data_root)
    fake = quantize_model(run.model(dataset), 8, "symmetric", "channel")
    real = run.model(dataset)
    quantize_model(real, 8, "symmetric", "channel")  # convolutions and all: identical to fake ...
    for name, module in list(real.named_modules()):
        if isinstance(module, nn.Linear):  # ... then every Linear runs from int8 storage
            parent, _, child = name.rpartition(".")
            setattr(real.get_submodule(parent) if parent else real, child, Int8Linear(module))
    x = dataset.test.x
    with torch.inference_mode():
        a, b = fake.eval()(x), real.eval()(x)
    int8_bytes = sum(m.weight_int8.numel() + 4 * m.scales.numel() for m in real.modules() if isinstance(m, Int8Linear))
    return {"run_id": run.run_id, "max_abs_logit_diff": float((a - b).abs().max()),
            "argmax_agreement": float((a.argmax(1) == b.argmax(1)).float().mean()),
            "fake_test_acc": float((a.argmax(1) == dataset.test.y).float().mean()),
            "int8_test_acc": float((b.argmax(1) == dataset.test.y).float().mean()), "int8_linear_bytes": int8_bytes}


def _targets(model: nn.Module, include_biases: bool):
    layers = models.weight_layers(model)
    return layers + [(m, "bias") for m, _ in layers if m.bias is not None] if include_biases else layers


def _at(w: torch.Tensor, precision, scheme: str, granularity: str) -> torch.Tensor:
    if precision in FLOATS:
        return w.to(FLOATS[precision]).to(w.dtype)
    return fake_quantize(w, precision, scheme, granularity)


def _bits(precision) -> int:
    return {"float32": 32, "bfloat16": 16, "float16": 16}.get(precision, precision)


def _check(bits, scheme, granularity) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
        raise ConfigError(f"bits must be an integer in 1..16 (or a precision in {list(FLOATS)}), got {bits!r}")
    if scheme not in SCHEMES:
        raise ConfigError(f"unknown quantization scheme {scheme!r}: choose one of {list(SCHEMES)}")
    if granularity not in GRANULARITIES:
        raise ConfigError(f"unknown granularity {granularity!r}: choose one of {list(GRANULARITIES)}")
