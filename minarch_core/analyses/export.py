"""Take the smallest model home: a variant of the frontier written as ``model.onnx``, ``model.minarch`` and a card.

Which seed: a variant is a configuration at a sparsity and precision, over the frontier's seeds; ``seed_of`` takes
the lower median of its seeds' **validation** accuracies (never the test split), so the exported model is a typical
one, not the luckiest. Its weights are rebuilt exactly as the frontier measured them: the stored run pruned and
rounded again (post-training), or the stored fine-tuned weights rounded (quantization-aware, ``Tables.weights``).

- ``model.minarch`` (``packed``): a header, then the encoding's bytes, whose length is the frontier's
  ``size_bytes``;
- ``model.onnx``: the same model as a standard ONNX graph (torch's exporter), its rounded weight layers stored as
  int8 (uint8 when asymmetric) initialisers with a ``DequantizeLinear`` per tensor when 8 bits or fewer, as float16
  or bfloat16 with a ``Cast`` when a float type, as the rounded float32 values otherwise; pruned weights are exact
  zeros either way;
- ``card.json`` and ``card.md``: what it is, its bytes, its accuracies and the exact input it expects.
"""
from __future__ import annotations

import copy
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

from .. import packed
from ..engine import data, train
from ..engine.errors import ConfigError
from . import encoding, pruning, tables
from .frontier import KEYS
from .grids import FLOATS, codes, grid, precision_of, targets
from .quantization import quantize_model

OPSET = 17  # LayerNormalization's first opset; DequantizeLinear takes an axis from 13
FILES = ("model.onnx", "model.minarch", "card.json", "card.md")


@dataclass(frozen=True)
class Exported:
    folder: Path
    card: dict


def seed_of(table: pd.DataFrame, variant: pd.Series) -> pd.Series:
    """The row of ``variant``'s seed to export: the lower median of its seeds' validation accuracies (ties: the
    lower seed)."""
    mine = np.logical_and.reduce([(table[k] == variant[k]).to_numpy() for k in KEYS])
    rows = table[mine]
    if rows.empty:
        raise ConfigError(f"no stored variant {dict(variant[KEYS])} in the frontier table")
    rows = rows.sort_values(["val_acc", "seed"], ignore_index=True)
    return rows.iloc[(len(rows) - 1) // 2]


def weights(at: tables.Where, row: pd.Series):
    """(``row``'s run, its model holding the variant's weights before rounding: pruned, and fine-tuned when the
    variant was)."""
    run, = at.store.runs_of(row.to_frame().T)
    dataset = train.load_data(run.config, "cpu", at.data_root)
    model = run.model(dataset)
    if row.method == "quantization-aware":
        key = f"{row.run_id}/{row.sparsity:g}/{row.precision}"
        stored = at.store.tables(at.study).weights(at.dataset, "frontier")
        if key not in stored:
            raise ConfigError(f"the fine-tuned weights of {key} are not stored with the frontier table: compute it "
                              f"again (minarch table frontier --dataset {at.dataset}) and export then")
        model.load_state_dict(stored[key])
        return run, model
    return run, pruning.make_permanent(pruning.prune_to(model, float(row.sparsity)))


def export(at: tables.Where, min_accuracy: float, out, family: str | None = None, max_bytes: int | None = None,
           confidence: float | None = None, force: bool = False) -> tuple[Exported | None, object]:
    """``tables.recommend``'s answer written to ``out`` (a folder that must not exist or be empty, unless
    ``force``); (None, the answer) when nothing reaches ``min_accuracy``, and nothing is written."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise ConfigError(f"{out} exists and is not an empty folder: choose another --out, or pass --force to "
                          f"replace its {', '.join(FILES)}")
    kw = {} if confidence is None else {"confidence": confidence}
    answer = tables.recommend(at, min_accuracy, family, max_bytes, **kw)
    if not answer.met:
        return None, answer
    table = tables.get("frontier", at)
    return write(at, seed_of(table, answer.row), answer.row, out), answer


def write(at: tables.Where, row: pd.Series, variant: pd.Series, out: Path) -> Exported:
    """``row`` (one seed of ``variant``, a ``frontier.summarise`` row) written to ``out`` as ``FILES``."""
    run, model = weights(at, row)
    precision, setting = precision_of(row.precision), (row.scheme, row.granularity)
    payload = encoding.encode(model, precision, *setting)
    if len(payload) != int(row.size_bytes):
        raise AssertionError(f"the encoding gave {len(payload)} bytes, the frontier counted {int(row.size_bytes)}")
    spec = data.spec(run.config.dataset)
    images = len(train.load_data(run.config, "cpu", at.data_root).test.y)  # what the test accuracy was measured on
    names = [n for n, _ in model.named_parameters()]
    header = {"dataset": spec.name, "family": run.config.family, "arch": run.config.arch,
              "classes": spec.n_classes, "precision": str(row.precision), "scheme": row.scheme,
              "granularity": row.granularity, "tensors": [{"name": n, "shape": list(p.shape)}
                                                          for n, p in model.named_parameters()],
              "input": input_spec(spec)}
    out.mkdir(parents=True, exist_ok=True)
    file_bytes = packed.write(out / "model.minarch", header, payload)
    (out / "model.onnx").write_bytes(to_onnx(model, precision, *setting, spec.input_shape))
    card = {"dataset": spec.name, "family": run.config.family, "model": row.model, "arch": run.config.arch,
            "parameters": int(row.n_params), "sparsity": float(row.sparsity), "achieved_sparsity": float(row.achieved),
            "precision": str(row.precision), "scheme": row.scheme, "granularity": row.granularity,
            "recovery": row.method, "payload_bytes": len(payload), "file_bytes": file_bytes,
            "onnx_bytes": (out / "model.onnx").stat().st_size, "seed": int(row.seed), "run_id": row.run_id,
            "study_id": at.study.study_id, "validation_accuracy": float(row.val_acc),
            "test_accuracy": _number(row.test_acc),
            "test_images": images, "test_interval": clopper_pearson(row.test_acc, images),
            "seeds": {"count": int(variant.seeds), "test_mean": _number(variant.test_mean),
                      "test_interval": [_number(variant.test_low), _number(variant.test_high)]},
            "input": header["input"], "tensors": names}
    (out / "card.json").write_text(json.dumps(card, indent=1))
    (out / "card.md").write_text(card_text(card))
    return Exported(out, card)


def _number(value) -> float | None:
    """A float for the card, None where nothing was measured (JSON has no NaN)."""
    return None if pd.isna(value) else float(value)


def input_spec(spec) -> dict:
    """What the model expects: the batch layout, and how a stored image (uint8 pixels) becomes its input."""
    return {"shape": ["batch", *spec.input_shape], "dtype": "float32", "layout": "NCHW",
            "scaling": "pixel / 255", "mean": list(spec.mean), "std": list(spec.std),
            "formula": "(pixel / 255 - mean[c]) / std[c] per channel c"}


def to_onnx(model, precision, scheme: str, granularity: str, input_shape) -> bytes:
    """``model`` (weights before rounding) rounded to ``precision`` as the frontier rounds it, as ONNX bytes: the
    rounded layers' integer codes and grids as initialisers feeding ``DequantizeLinear`` (8 bits or fewer), a float
    type's values feeding a ``Cast``, else the rounded float32 values. Checked by ``onnx.checker``."""
    import onnx
    from onnx import helper, numpy_helper

    rounded = quantize_model(copy.deepcopy(model), precision, scheme, granularity).eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the exporter's notes on its own deprecations are not the user's business
        warnings.simplefilter("ignore")
        torch.onnx.export(rounded, (torch.zeros(1, *input_shape),), buffer, dynamo=False, opset_version=OPSET,
                          do_constant_folding=False, input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
    graph = onnx.load_from_string(buffer.getvalue())
    names = {id(p): n for n, p in model.named_parameters()}
    inits = {i.name: i for i in graph.graph.initializer}
    nodes = []
    for module, attr in targets(model):
        name, w = names[id(getattr(module, attr))], getattr(module, attr).detach()
        if name not in inits:
            raise ConfigError(f"the ONNX exporter renamed or folded weight {name}: cannot store it rounded")
        graph.graph.initializer.remove(inits[name])
        if precision in FLOATS:
            if precision == "float32":
                graph.graph.initializer.append(numpy_helper.from_array(w.numpy(), name))
                continue
            kind = onnx.TensorProto.FLOAT16 if precision == "float16" else onnx.TensorProto.BFLOAT16
            low = helper.make_tensor(f"{name}::{precision}", kind, list(w.shape),
                                     w.to(FLOATS[precision]).view(torch.int16).numpy().view(np.uint16).tobytes(),
                                     raw=True)
            graph.graph.initializer.append(low)
            nodes.append(helper.make_node("Cast", [low.name], [name], to=onnx.TensorProto.FLOAT))
        elif precision <= 8:
            per_channel = granularity == "channel" and w.dim() > 1
            scale, zero, qmin, qmax = grid(w, precision, scheme, granularity)
            q = codes(w, scale, zero, qmin, qmax)
            unsigned = scheme == "asymmetric"
            dtype = np.uint8 if unsigned else np.int8
            shape = (-1,) if per_channel else ()
            graph.graph.initializer.extend([
                numpy_helper.from_array(q.numpy().astype(dtype), f"{name}::codes"),
                numpy_helper.from_array(scale.reshape(shape).numpy().astype(np.float32), f"{name}::scale"),
                numpy_helper.from_array(zero.reshape(shape).numpy().astype(dtype), f"{name}::zero")])
            nodes.append(helper.make_node("DequantizeLinear", [f"{name}::codes", f"{name}::scale", f"{name}::zero"],
                                          [name], **({"axis": 0} if per_channel else {})))
        else:  # 9 to 16 bits: no 8-bit initialiser holds them; the rounded values as float32
            graph.graph.initializer.append(numpy_helper.from_array(
                dict(rounded.named_parameters())[name].detach().numpy(), name))
    for node in reversed(nodes):
        graph.graph.node.insert(0, node)
    onnx.checker.check_model(graph)
    return graph.SerializeToString()


def clopper_pearson(accuracy, images: int, level: float = 0.95) -> list | None:
    """The exact binomial interval of a test accuracy measured on ``images`` images (the uncertainty of the split,
    for this one model; the seeds' interval is the other)."""
    if accuracy is None or np.isnan(accuracy):
        return None
    ci = stats.binomtest(int(round(accuracy * images)), images).proportion_ci(level, method="exact")
    return [float(ci.low), float(ci.high)]


def card_text(card: dict) -> str:
    """The card for people."""
    i = card["input"]
    test = "not measured" if card["test_accuracy"] is None else (
        f"{card['test_accuracy']:.2%} (95% Clopper-Pearson interval over the test split's {card['test_images']:,} "
        f"images {card['test_interval'][0]:.2%}..{card['test_interval'][1]:.2%})")
    low, high = card["seeds"]["test_interval"]
    spread = "" if low is None else f" (interval {low:.2%}..{high:.2%})"
    mean = card["seeds"]["test_mean"]
    return "\n".join([
        f"# {card['model']} on {data.spec(card['dataset']).title}",
        "",
        f"- sparsity {card['sparsity']:.0%} (achieved {card['achieved_sparsity']:.1%}), weights at "
        f"{card['precision']}" + ("" if card["precision"] in FLOATS else f" bits ({card['scheme']}, per "
                                                                          f"{card['granularity']})")
        + f", {card['recovery']}",
        f"- payload {card['payload_bytes']:,} bytes (model.minarch {card['file_bytes']:,} bytes with its header; "
        f"model.onnx {card['onnx_bytes']:,} bytes)",
        f"- this seed ({card['seed']}, run {card['run_id']}): validation {card['validation_accuracy']:.2%}, test "
        f"{test}; the variant over {card['seeds']['count']} seed(s): test "
        f"{'not measured' if mean is None else f'{mean:.2%}'}{spread}",
        f"- input: {i['dtype']} {i['layout']} of shape {i['shape']}, each channel {i['formula']}, mean "
        f"{i['mean']}, std {i['std']}",
        f"- study {card['study_id']}; parameters in order: {', '.join(card['tensors'])}",
        ""])


def inspect(path) -> list[str]:
    """A ``.minarch`` file's header and its layout per tensor, for people."""
    header, arrays, info = packed.read(path)
    lines = [f"{path}: {header['family']} {json.dumps(header['arch'], sort_keys=True)} on {header['dataset']}, "
             f"weights at {header['precision']}, payload {sum(i['bytes'] for i in info):,} bytes",
             f"{'tensor':28s} {'shape':>16s} {'values':>9s} {'layout':>8s} {'kept':>9s} {'bytes':>9s}"]
    for (name, a), i in zip(arrays.items(), info):
        lines.append(f"{name:28s} {str(list(a.shape)):>16s} {i['values']:>9s} {i['layout']:>8s} {i['kept']:>9,} "
                     f"{i['bytes']:>9,}")
    return lines
