"""Post-training, weight-only quantization of trained models: accuracy against numeric precision.

Choices (the paper says only "reduced numeric precision on trainable parameters"): the family's weight layers (every
Linear and Conv2d weight, the ViT's patch embedding included) are rounded to a uniform integer grid and mapped back to float ("fake quantization", the standard way
to measure what a precision costs), per tensor or per output channel, symmetric (zero point 0, levels
-(2^(b-1)-1)..2^(b-1)-1) or asymmetric (levels 0..2^b-1 spanning [min, max] and 0); or cast to float16 / bfloat16.
Biases (and LayerNorm, positions) stay float32 unless ``include_biases``. Activations stay float32. The rounding is
``grids.quantize`` (torch's ``fake_quantize_per_{tensor,channel}_affine`` on the grid's levels), and
``int8_crosscheck``, the independent check, runs the 8-bit per-channel model through torch's real int8 weight kernel
(``aten._weight_int8pack_mm``) to show that fake and real quantization agree. The precisions and settings measured
are the study's compression grid (``engine.compression``, slice ``quantization``).
"""
from __future__ import annotations


import numpy as np
import pandas as pd
import torch
from torch import nn

from ..engine import train
from ..engine.compression import DEFAULT, Slice
from ..engine.store import Run
from . import encoding
from .common import info_of, run_columns, score
from .grids import FLOATS, bits_of, grid, quantize, targets


def quantize_model(model: nn.Module, precision, scheme: str = "symmetric", granularity: str = "tensor",
                   include_biases: bool = False) -> nn.Module:
    """Replace ``model``'s weights in place by their value at ``precision`` (bits, or a float dtype name)."""
    with torch.no_grad():
        for module, name in targets(model, include_biases):
            w = getattr(module, name)
            w.copy_(quantize(w, precision, scheme, "tensor" if name == "bias" else granularity))
    return model


def curve(run: Run, precisions=DEFAULT.quantization.precisions, scheme: str = "symmetric", granularity: str = "tensor",
          include_biases: bool = False, splits=("test",), device=None, data_root=None) -> pd.DataFrame:
    """Accuracy (and loss) of ``run``'s model on ``splits`` at each precision, with the packed size: one row per
    precision."""
    dataset = train.load_data(run.config, device, data_root)
    loss_fn = train.LOSSES[run.config.loss]
    rows, states, dense = [], [], run.model(dataset)
    for precision in precisions:
        states.append(quantize_model(run.model(dataset), precision, scheme, granularity, include_biases).state_dict())
        rows.append({"run_id": run.run_id, "precision": str(precision), "bits": bits_of(precision),
                     "kind": "float" if precision in FLOATS else "int", "scheme": scheme, "granularity": granularity,
                     "size_bytes": encoding.size(dense, precision, scheme=scheme, granularity=granularity,
                                                 include_biases=include_biases)})
    out = pd.DataFrame(score(rows, dense, states, {s: getattr(dataset, s) for s in splits}, loss_fn))
    base = out.loc[out.precision == "float32", "test_acc"]
    out["drop"] = (base.iloc[0] if len(base) else np.nan) - out.test_acc
    return out


def curves(runs, grid: Slice = DEFAULT.quantization, **options) -> pd.DataFrame:
    """``curve`` of several runs at every precision and (scheme, granularity) of the compression grid's slice, with
    each run's dataset, seed and architecture columns."""
    return pd.concat([curve(run, grid.precisions, scheme, granularity, **options).assign(**run_columns(run))
                      for scheme, granularity in grid.settings for run in runs], ignore_index=True)


def tolerance(curves_: pd.DataFrame, tol: float = DEFAULT.tolerance) -> pd.DataFrame:
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
        if "scheme" in r and "granularity" in r:
            r["setting"] = f"{r['scheme']}, per {r['granularity']}"
        rows.append(r)
    return pd.DataFrame(rows).join(info_of(curves_), on="run_id")


def tolerance_in_words(tolerance_: pd.DataFrame) -> str:
    """``tolerance`` in two sentences, symmetric per tensor, each model the median (bits) or mean (drops) of its
    seeds: the median lowest bit width within tolerance, and the least any model loses at 2 bits."""
    t = tolerance_[tolerance_.granularity == "tensor"]
    if "scheme" in t:
        t = t[t.scheme == "symmetric"]
    t = t.groupby("config_id").agg(min_bits=("min_bits", "median"), drop_2bit=("drop_2bit", "mean"))
    if t.empty:
        return "No representative model was rounded."
    return (f"Symmetric per tensor, the lowest bit width within one point of float32 is **{t.min_bits.median():.0f} "
            f"bits** (median over {len(t)} models, each the median of its seeds). At 2 bits every model loses at "
            f"least {t.drop_2bit.min() * 100:.0f} points of accuracy.")


def int8_of_largest(runs: list[Run], data_root=None) -> dict:
    """``int8_crosscheck`` of the largest of ``runs`` (the representatives): the model whose Linear layers hold the
    most weights for torch's int8 kernel to read."""
    return int8_crosscheck(max(runs, key=lambda run: run.summary["n_params"]), data_root)


def int8_in_words(check: dict) -> str:
    """``int8_crosscheck``'s comparison in two sentences."""
    return (f"Its Linear layers stored as int8 take **{check['int8_linear_bytes']:,} bytes**. Fake and real int8 "
            f"agree on **{check['argmax_agreement']:.2%}** of the test predictions (largest logit difference "
            f"{check['max_abs_logit_diff']:.2g}); test accuracy {check['fake_test_acc']:.2%} with fake quantization, "
            f"{check['int8_test_acc']:.2%} with int8 weights.")


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
