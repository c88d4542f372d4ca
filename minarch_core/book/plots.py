"""The book's figures as Altair charts: one function per figure, each fed a small tidy frame from the analyses.

Charts carry tooltips, and legend selections where they help. ``use_renderer("book")`` makes a notebook emit
charts as HTML that calls the Vega scripts the book ships in ``book/_static/vega`` (no network needed); in
JupyterLab the default renderer draws them natively. ``save`` writes SVG and PNG copies through vl-convert.
"""
from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd

from ..engine import models

REGIME_COLORS = alt.Scale(domain=["unstable", "learning", "overfitting"], range=["#d62728", "#2ca02c", "#ff7f0e"])
LOG_PARAMS = alt.X("n_params:Q", scale=alt.Scale(type="log"), title="learnable parameters")
ACCURACY = alt.Scale(domain=[0, 1])
WIDTH, HEIGHT = 150, 160  # per panel: four panels and a legend fit the book's text column
FAMILIES = {name: f.title for name, f in models.FAMILIES.items()}  # how the figures name each family


def use_renderer(name: str = "default") -> None:
    """``book``: charts as HTML calling the book's own vega-embed; anything else: Altair's renderer of that name."""
    if name == "book":
        alt.renderers.register("book", _book_renderer)
    alt.renderers.enable(name)


def _book_renderer(spec: dict, **_) -> dict:
    div = f"vis-{uuid.uuid4().hex[:10]}"
    options = json.dumps({"actions": {"export": True, "source": False, "compiled": False, "editor": False}})
    script = (f"(function(){{var spec={json.dumps(spec)};function draw(){{vegaEmbed('#{div}',spec,{options})"
              f".catch(function(e){{console.error(e);}});}}if(window.vegaEmbed){{draw();}}"
              f"else{{window.addEventListener('load',draw);}}}})();")
    return {"text/html": f'<div id="{div}" class="minarch-chart"></div><script>{script}</script>'}


def save(chart: alt.TopLevelMixin, stem: str | Path) -> list[Path]:
    """Write ``stem``.svg and ``stem``.png (for papers and slides) and return their paths."""
    import vl_convert as vlc
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    spec = chart.to_dict()
    stem.with_suffix(".svg").write_text(vlc.vegalite_to_svg(spec))
    stem.with_suffix(".png").write_bytes(vlc.vegalite_to_png(spec, scale=2))
    return [stem.with_suffix(".svg"), stem.with_suffix(".png")]


# -- figure 1 ------------------------------------------------------------------------------------------------------

WORKFLOW = [  # (step, column, row, text)
    ("data", 0, 1, "MNIST · Fashion-MNIST · CIFAR-10"),
    ("sweep", 1, 1, "design sweep: DNN shapes, square DNNs, CNNs, ViTs × seeds"),
    ("regimes", 2, 1, "convergence regimes + minimal parameters"),
    ("reps", 3, 1, "representative models (by rule)"),
    ("pruning", 4, 0, "L1 pruning: accuracy vs sparsity"),
    ("quant", 4, 2, "quantization: accuracy vs precision"),
    ("summary", 5, 1, "cross-dataset summary"),
]
EDGES = [("data", "sweep"), ("sweep", "regimes"), ("regimes", "reps"), ("reps", "pruning"), ("reps", "quant"),
         ("pruning", "summary"), ("quant", "summary"), ("regimes", "summary")]


def workflow() -> alt.LayerChart:
    """Figure 1: the study's workflow, from datasets to the cross-dataset summary."""
    nodes = pd.DataFrame(WORKFLOW, columns=["step", "x", "y", "text"])
    at = nodes.set_index("step")
    edges = pd.DataFrame([{"x": at.x[a], "y": at.y[a], "x2": at.x[b], "y2": at.y[b]} for a, b in EDGES])
    x = alt.X("x:Q", axis=None, scale=alt.Scale(domain=[-0.5, 5.5]))
    y = alt.Y("y:Q", axis=None, scale=alt.Scale(domain=[2.6, -0.6]))
    lines = alt.Chart(edges).mark_rule(color="#999", strokeWidth=1.5).encode(x=x, y=y, x2="x2:Q", y2="y2:Q")
    boxes = alt.Chart(nodes).mark_rect(width=124, height=62, cornerRadius=6, color="#e8eef7", stroke="#4c78a8").encode(
        x=x, y=y, tooltip=["text:N"])
    labels = alt.Chart(nodes.assign(lines=nodes.text.map(_wrap))).mark_text(fontSize=10, lineBreak="\n").encode(
        x=x, y=y, text="lines:N")
    return (lines + boxes + labels).properties(width=820, height=240, title="Workflow")


def _wrap(text: str, width: int = 20) -> str:
    return "\n".join(textwrap.wrap(text, width))


# -- figures 2 and 3 -----------------------------------------------------------------------------------------------

def _splits(configs: pd.DataFrame, keys) -> pd.DataFrame:
    """Train and test accuracy (mean and min..max over seeds) as rows, for one encoding of both."""
    test = configs[keys + ["test_mean", "test_min", "test_max", "test_std", "seeds", "regime"]].rename(
        columns={"test_mean": "acc", "test_min": "lo", "test_max": "hi"}).assign(split="test")
    train = configs[keys + ["train_mean", "test_std", "seeds", "regime"]].rename(
        columns={"train_mean": "acc"}).assign(split="train", lo=np.nan, hi=np.nan)
    return pd.concat([test, train], ignore_index=True)


def phase1(configs: pd.DataFrame) -> alt.FacetChart:
    """Figure 2: Phase 1 test and train accuracy against learnable parameters, one panel per depth, one colour per
    shape; test accuracy with its min..max band over seeds."""
    d = configs[configs.family == "dnn"].copy()
    d["shape"] = d["shape"].fillna("equal")
    data = _splits(d, ["n_params", "depth", "shape", "widths"])
    pick = alt.selection_point(fields=["shape"], bind="legend")
    base = alt.Chart().encode(x=LOG_PARAMS, color=alt.Color("shape:N", title="shape"),
                              opacity=alt.condition(pick, alt.value(0.9), alt.value(0.12)))
    points = base.mark_point(filled=True, size=30).encode(
        y=alt.Y("acc:Q", scale=ACCURACY, title="accuracy"), shape=alt.Shape("split:N", title="split"),
        tooltip=["widths:N", "shape:N", "split:N", alt.Tooltip("n_params:Q", format=","),
                 alt.Tooltip("acc:Q", format=".4f"), alt.Tooltip("test_std:Q", format=".4f", title="test std"),
                 "seeds:Q", "regime:N"])
    band = base.transform_filter("datum.split == 'test'").mark_rule(strokeWidth=1).encode(y="lo:Q", y2="hi:Q")
    return alt.layer(band, points, data=data).properties(width=WIDTH, height=HEIGHT).facet(
        column=alt.Column("depth:O", title="hidden layers")).add_params(pick).properties(
        title="Phase 1: accuracy vs learnable parameters, by depth and shape")


def phase2(configs: pd.DataFrame, minimal: pd.DataFrame) -> alt.FacetChart:
    """Figure 3: square DNNs, CNNs and ViTs: test accuracy against learnable parameters, points coloured by regime,
    with the minimal parameter count (rule) and its bootstrap interval (band) of each family."""
    d = configs[(configs.family != "dnn") | (configs["shape"].fillna("equal") == "equal")].copy()
    d["series"] = np.where(d.family == "dnn", "DNN depth " + d.depth.astype("Int64").astype(str),
                           d.family.map(FAMILIES))
    m = minimal.dropna(subset=["min_params"])
    data = pd.concat([d.assign(kind="config"), m.assign(kind="minimal")], ignore_index=True)  # one frame per facet
    data["panel"] = data.family.map({**FAMILIES, "dnn": "square DNN"})
    pick = alt.selection_point(fields=["series"], bind="legend")
    configs_only = alt.Chart().transform_filter("datum.kind == 'config'")
    lines = configs_only.mark_line(strokeWidth=1, color="#bbb").encode(
        x=LOG_PARAMS, y="test_mean:Q", detail="series:N", opacity=alt.condition(pick, alt.value(1), alt.value(0.1)))
    points = configs_only.mark_point(filled=True, size=45).encode(
        x=LOG_PARAMS, y=alt.Y("test_mean:Q", scale=ACCURACY, title="test accuracy (mean over seeds)"),
        color=alt.Color("regime:N", scale=REGIME_COLORS), shape=alt.Shape("series:N", title="series"),
        opacity=alt.condition(pick, alt.value(0.95), alt.value(0.1)),
        tooltip=["series:N", alt.Tooltip("n_params:Q", format=","), "width:Q", "regime:N",
                 alt.Tooltip("test_mean:Q", format=".4f"), alt.Tooltip("test_std:Q", format=".4f"),
                 alt.Tooltip("failed_frac:Q", format=".2f", title="failed seeds"),
                 alt.Tooltip("gap:Q", format=".3f", title="train-test gap"), "seeds:Q"])
    minimal_only = alt.Chart().transform_filter("datum.kind == 'minimal'")
    band = minimal_only.mark_rect(opacity=0.12, color="#2ca02c").encode(x="ci_low:Q", x2="ci_high:Q")
    rule = minimal_only.mark_rule(strokeDash=[4, 3], color="#2ca02c").encode(
        x="min_params:Q", tooltip=[alt.Tooltip("min_params:Q", format=",", title="minimal parameters"),
                                   alt.Tooltip("ci_low:Q", format=","), alt.Tooltip("ci_high:Q", format=",")])
    return alt.layer(band, rule, lines, points).properties(width=WIDTH, height=HEIGHT).facet(
        column=alt.Column("panel:N", title=None), data=data).add_params(pick).resolve_scale(x="independent") \
        .properties(title="Phase 2: regimes and the minimal number of learnable parameters")


# -- figure 4 ------------------------------------------------------------------------------------------------------

def learning_curves(histories: pd.DataFrame, examples: pd.DataFrame) -> alt.FacetChart:
    """Figure 4: loss against epoch (train and validation, every seed) of one example configuration per regime."""
    h = histories.merge(examples[["run_id", "regime", "label"]], on="run_id")
    long = pd.concat([h.assign(split="train", loss=h.train_loss), h.assign(split="validation", loss=h.val_loss)])
    long = long[["run_id", "regime", "label", "epoch", "split", "loss", "test_acc"]]
    chart = alt.Chart(long).mark_line(point=alt.OverlayMarkDef(size=12)).encode(
        x=alt.X("epoch:Q"), y=alt.Y("loss:Q", scale=alt.Scale(type="log"), title="loss (log)"),
        color=alt.Color("split:N"), detail="run_id:N",
        tooltip=["label:N", "split:N", "epoch:Q", alt.Tooltip("loss:Q", format=".4f"),
                 alt.Tooltip("test_acc:Q", format=".4f")])
    return chart.properties(width=WIDTH, height=HEIGHT).facet(
        column=alt.Column("label:N", title=None, sort=alt.SortField("regime"))).resolve_scale(y="independent") \
        .properties(title="Learning curves of one configuration per regime (every seed)")


# -- figure 5 ------------------------------------------------------------------------------------------------------

MODEL_TITLE = "model"


def pruning_curves(curves: pd.DataFrame) -> alt.FacetChart:
    """Figure 5: test accuracy against sparsity, one line per model, coloured by depth, one panel per scope."""
    d = curves.assign(depth=curves.depth.astype(int))
    pick = alt.selection_point(fields=["depth"], bind="legend")
    chart = alt.Chart(d).mark_line(point=True).encode(
        x=alt.X("sparsity:Q", axis=alt.Axis(format="%"), title="sparsity"),
        y=alt.Y("test_acc:Q", scale=ACCURACY, title="test accuracy"),
        color=alt.Color("depth:O", title="depth"), detail="run_id:N",
        opacity=alt.condition(pick, alt.value(0.9), alt.value(0.1)),
        tooltip=["model:N", "depth:O", alt.Tooltip("n_params:Q", format=","), alt.Tooltip("sparsity:Q", format=".0%"),
                 alt.Tooltip("achieved:Q", format=".3%"), alt.Tooltip("test_acc:Q", format=".4f"), "scope:N"])
    return chart.properties(width=WIDTH + 60, height=HEIGHT).facet(column=alt.Column("scope:N", title="scope")) \
        .add_params(pick).properties(title="L1 pruning: accuracy vs sparsity")


def redundancy_bars(redundancy: pd.DataFrame) -> alt.Chart:
    """Figure 5b: the redundancy of each model (largest sparsity within tolerance of dense)."""
    return alt.Chart(redundancy).mark_bar().encode(
        y=alt.Y("model:N", sort=alt.SortField("n_params"), title=MODEL_TITLE),
        x=alt.X("redundancy:Q", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1]),
                title="prunable without losing more than the tolerance"),
        color=alt.Color("depth:O"), row=alt.Row("scope:N", title=None),
        tooltip=["model:N", alt.Tooltip("n_params:Q", format=","), alt.Tooltip("dense_acc:Q", format=".4f"),
                 alt.Tooltip("redundancy:Q", format=".0%"), alt.Tooltip("collapse_at:Q", format=".0%")]
    ).properties(width=320, title="Redundancy per model")


# -- figure 6 ------------------------------------------------------------------------------------------------------

def quantization_curves(curves: pd.DataFrame) -> alt.FacetChart:
    """Figure 6: test accuracy against weight precision, one line per model, coloured by its parameter count."""
    order = list(dict.fromkeys(curves.precision))
    d = curves.assign(setting=curves.scheme + ", per " + curves.granularity)
    pick = alt.selection_point(fields=["model"], bind="legend")
    chart = alt.Chart(d).mark_line(point=True).encode(
        x=alt.X("precision:N", sort=order, title="weight precision (bits)"),
        y=alt.Y("test_acc:Q", scale=ACCURACY, title="test accuracy"),
        color=alt.Color("model:N", sort=alt.SortField("n_params"), title=MODEL_TITLE,
                        scale=alt.Scale(scheme="viridis")),
        opacity=alt.condition(pick, alt.value(0.9), alt.value(0.1)),
        tooltip=["model:N", alt.Tooltip("n_params:Q", format=","), "precision:N",
                 alt.Tooltip("test_acc:Q", format=".4f"), alt.Tooltip("drop:Q", format="+.4f"),
                 alt.Tooltip("size_bytes:Q", format=",")])
    return chart.properties(width=WIDTH + 60, height=HEIGHT).facet(column=alt.Column("setting:N", title=None)) \
        .add_params(pick).properties(title="Post-training quantization: accuracy vs precision")


# -- figure 7 ------------------------------------------------------------------------------------------------------

def summary(minimal: pd.DataFrame, redundancy: pd.DataFrame, tolerance: pd.DataFrame) -> alt.HConcatChart:
    """Figure 7: per dataset, the minimal parameters of each family, the redundancy by depth, and the lowest
    precision within tolerance by model size."""
    m = minimal.dropna(subset=["min_params"])
    a = alt.Chart(m).mark_point(filled=True, size=80).encode(
        x=alt.X("min_params:Q", scale=alt.Scale(type="log"), title="minimal learnable parameters"),
        y=alt.Y("dataset:N"), color=alt.Color("family:N"),
        tooltip=["dataset:N", "family:N", alt.Tooltip("min_params:Q", format=","),
                 alt.Tooltip("ci_low:Q", format=","), alt.Tooltip("ci_high:Q", format=",")])
    a = (alt.Chart(m).mark_rule().encode(x="ci_low:Q", x2="ci_high:Q", y="dataset:N", color="family:N") + a) \
        .properties(width=170, title="Minimal parameters (95% interval)")
    r = redundancy.groupby(["dataset", "depth"], as_index=False).agg(redundancy=("redundancy", "mean"),
                                                                     models=("run_id", "count"))
    b = alt.Chart(r).mark_bar().encode(
        x=alt.X("redundancy:Q", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1]), title="mean redundancy"),
        y=alt.Y("depth:O"), color=alt.Color("depth:O"), row=alt.Row("dataset:N", title=None),
        tooltip=["dataset:N", "depth:O", alt.Tooltip("redundancy:Q", format=".0%"), "models:Q"]
    ).properties(width=140, height=60, title="Redundancy of DNNs by depth")
    c = alt.Chart(tolerance).mark_point(filled=True, size=60).encode(
        x=alt.X("n_params:Q", scale=alt.Scale(type="log"), title="learnable parameters",
                axis=alt.Axis(format="~s", values=[1e2, 1e3, 1e4, 1e5, 1e6, 1e7])),
        y=alt.Y("min_bits:Q", title="lowest bits within tolerance", scale=alt.Scale(domain=[1, 16]),
                axis=alt.Axis(values=[2, 3, 4, 5, 6, 8, 10, 12, 16])),
        color=alt.Color("dataset:N"),
        tooltip=["dataset:N", "depth:O", "width:Q", alt.Tooltip("n_params:Q", format=","), "min_bits:Q",
                 alt.Tooltip("drop_4bit:Q", format="+.3f", title="drop at 4 bits")]
    ).properties(width=170, height=180, title="Precision tolerance")
    return alt.hconcat(a, b, c).resolve_scale(color="independent").properties(title="Across datasets") \
        .configure_legend(orient="bottom", direction="horizontal")
