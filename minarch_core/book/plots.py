"""The book's figures as Altair charts: one function per figure, each fed a small tidy frame from the analyses.

Charts carry tooltips, and legend selections where they help. ``use_renderer("book")`` makes a notebook emit
charts as HTML that calls the Vega scripts the book ships in ``book/_static/vega`` (no network needed); in
JupyterLab the default renderer draws them from the same scripts carried by the outputs themselves. ``save`` writes SVG and PNG copies
through vl-convert.
"""
from __future__ import annotations

import functools
import json
import textwrap
import uuid
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd

from ..analyses.frontier import ASK, KEYS
from ..engine import data, models

# Colour-blind-safe palettes (Okabe & Ito), each used for one thing in every figure: regimes and families are
# categories; datasets and depths are ordered, so they get ordered shades (light = easy or shallow).
OKABE_ITO = {"orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73", "yellow": "#F0E442", "blue": "#0072B2",
             "vermillion": "#D55E00", "purple": "#CC79A7", "black": "#000000"}
REGIME_COLORS = alt.Scale(domain=["unstable", "underfitting", "learning", "overfitting"],
                          range=[OKABE_ITO["vermillion"], OKABE_ITO["sky"], OKABE_ITO["green"], OKABE_ITO["orange"]])
FAMILY_RANGE = [OKABE_ITO[c] for c in ("blue", "purple", "black", "orange", "green", "sky", "vermillion", "yellow")]
# in the records' order: the paper's three families, then the hybrids; yellow, the faintest on white, comes last
SHADES = ["#6baed6", "#2171b5", "#08519c", "#08306b", "#041b3d"]  # light to dark: easy to hard, shallow to deep
ACCURACY = alt.Scale(domain=[0, 1])  # with axis=PERCENT: every accuracy axis reads 0%..100%
PERCENT = alt.Axis(format="%")
TEXT_WIDTH = 640  # pixels a figure is drawn at: the text column of a 1,400-pixel window (narrower: CSS scales it)
HEIGHT = 170
SIZES = ["smallest", "middle", "largest"]  # a representative's size within its family and depth


def family_titles() -> dict:
    return {name: f.title for name, f in models.FAMILIES.items()}  # how the figures name each family


def family_color(title: str = "family") -> alt.Color:
    names = list(family_titles().values())
    return alt.Color("family_title:N", title=title, scale=alt.Scale(domain=names, range=FAMILY_RANGE[:len(names)]))


def dataset_color() -> alt.Color:
    titles = [data.spec(d).title for d in data.by_difficulty()]
    return alt.Color("dataset_title:N", title="dataset", sort=titles,
                     scale=alt.Scale(domain=titles, range=SHADES[:len(titles)]))


def depth_color(depths) -> alt.Color:
    depths = sorted({int(d) for d in depths})
    return alt.Color("depth:O", title="depth", scale=alt.Scale(domain=depths, range=SHADES[:len(depths)]))


def panel_width(panels: int, legend: int = 0, own_axis: bool = False) -> int:
    """The width of one of ``panels`` side by side so that the whole figure fits the text column (each panel with
    ``own_axis`` also draws its own y axis)."""
    return max(90, (TEXT_WIDTH - legend) // max(panels, 1) - (70 if own_axis else 20))


def log_x(values, field: str = "n_params:Q", title: str = "learnable parameters") -> alt.X:
    """A log axis fitted to ``values``: its range a little wider than the data, ticks at powers of ten only
    (labelled 100, 1k, 10k ...), so labels never collide and the axis never runs a decade past the data."""
    values = np.asarray([v for v in values if v and np.isfinite(v)], dtype=float)
    lo, hi = (values.min(), values.max()) if len(values) else (1.0, 10.0)
    decades = [10.0 ** k for k in range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)]
    ticks = [t for t in decades if lo / 1.5 <= t <= hi * 1.5] or decades
    return alt.X(field, title=title, scale=alt.Scale(type="log", domain=[lo / 1.5, hi * 1.5], nice=False),
                 axis=alt.Axis(values=ticks, format="~s", grid=True))


def labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the readable names the figures show: family and dataset titles."""
    out = frame.copy()
    if "family" in out:
        out["family_title"] = out.family.map(family_titles())
    if "dataset" in out:
        out["dataset_title"] = out.dataset.map(lambda d: data.spec(d).title)
    return out


def size_labels(frame: pd.DataFrame) -> pd.Series:
    """'smallest', 'middle' or 'largest' for each row's model among its family and depth (by parameters)."""
    sizes = frame.drop_duplicates("config_id" if "config_id" in frame else "run_id")[
        ["family", "depth", "n_params", "config_id" if "config_id" in frame else "run_id"]]
    rank = sizes.groupby(["family", "depth"]).n_params.rank(method="dense").astype(int)
    top = sizes.assign(rank=rank).groupby(["family", "depth"])["rank"].transform("max")
    label = np.where(rank == 1, "smallest", np.where(rank == top, "largest", "middle"))
    key = sizes.columns[-1]
    return frame[key].map(dict(zip(sizes[key], label)))




def use_renderer(name: str = "default") -> None:
    """``book``: charts as HTML calling the book's own vega-embed (``book/_static/vega``). ``default``, for
    JupyterLab: charts as HTML that carry the Vega scripts themselves (vl-convert's bundle, run once per page), so
    they draw with no network. Altair's own default loads them from a CDN; its "inline" template declares the same
    names in every output, so in one JupyterLab page only the first chart drew; and JupyterLab 4's own Vega renderer
    stops at Vega-Lite 5 while Altair 6 writes 6. Anything else: Altair's renderer of that name."""
    if name in RENDERERS:
        alt.renderers.register(name, RENDERERS[name])
    alt.renderers.enable(name)


def _html(spec: dict, scripts: str = "") -> dict:
    """A chart as an HTML output: a div, and a script in its own scope that runs ``scripts`` (unless vega-embed is
    there already) and draws ``spec`` with vega-embed, once the page has it. For screen readers, the chart's SVG
    is labelled by its description (Vega renders ``description`` as its ``aria-label``; ``describe`` gives one
    where the figure has none), the actions menu is named, and a layer with nothing to draw in a panel (an empty
    mark container, which Vega still gives a role) is hidden from screen readers."""
    spec = {**spec, "description": spec.get("description") or describe(spec)}
    div = f"vis-{uuid.uuid4().hex[:10]}"
    options = json.dumps({"renderer": "svg",  # scales down to a narrower text column (minarch.css), tooltips intact
                          "actions": {"export": True, "source": False, "compiled": False, "editor": False}})
    load = f"if(!window.vegaEmbed){{{scripts}}}" if scripts else ""
    script = (f"(function(){{{load}var spec={json.dumps(spec)};function draw(){{vegaEmbed('#{div}',spec,{options})"
              f".then(function(){{var m=document.querySelector('#{div} summary');"
              f"if(m){{m.setAttribute('aria-label','Chart actions: save as SVG or PNG');}}"
              f"document.querySelectorAll('#{div} svg g[role=graphics-symbol]:empty:not([aria-label])')"
              f".forEach(function(g){{g.setAttribute('aria-hidden','true');}});}})"
              f".catch(function(e){{console.error(e);}});}}if(window.vegaEmbed){{draw();}}"
              f"else{{window.addEventListener('load',draw);}}}})();")
    return {"text/html": f'<div id="{div}" class="minarch-chart"></div><script>{script}</script>'}


def describe(spec: dict) -> str:
    """A chart in words for people who cannot see it: its titles and its panels' titles, in order."""
    titles = []

    def walk(node):
        if isinstance(node, dict):
            title = node.get("title")
            text = title.get("text") if isinstance(title, dict) else title
            for t in ([text] if isinstance(text, str) else text if isinstance(text, list) else []):
                if isinstance(t, str) and t and t not in titles and not node.get("field"):  # not an axis title
                    titles.append(t)
            for key, value in node.items():
                if key in ("spec", "layer", "hconcat", "vconcat", "concat", "facet"):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)
    walk(spec)
    return "Chart: " + ("; ".join(titles) if titles else "an interactive figure of this page") + "."


@functools.cache
def _vega_scripts() -> str:
    import vl_convert as vlc
    from altair.utils.html import vl_version_for_vl_convert
    return vlc.javascript_bundle(vl_version=vl_version_for_vl_convert())


RENDERERS = {"book": lambda spec, **_: _html(spec), "default": lambda spec, **_: _html(spec, _vega_scripts())}


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
    ("sweep", 1, 1, "design sweep: {families} × seeds"),
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
    families = ", ".join([f"{f.title}s" for f in models.FAMILIES.values() if not f.parents]
                         + (["hybrids"] if models.hybrids() else []))  # what fits the box
    nodes = pd.DataFrame(WORKFLOW, columns=["step", "x", "y", "text"])
    nodes["text"] = nodes.text.map(lambda text: text.format(families=families))
    at = nodes.set_index("step")
    edges = pd.DataFrame([{"x": at.x[a], "y": at.y[a], "x2": at.x[b], "y2": at.y[b]} for a, b in EDGES])
    x = alt.X("x:Q", axis=None, scale=alt.Scale(domain=[-0.5, 5.5]))
    y = alt.Y("y:Q", axis=None, scale=alt.Scale(domain=[2.6, -0.6]))
    lines = alt.Chart(edges).mark_rule(color="#999", strokeWidth=1.5).encode(x=x, y=y, x2="x2:Q", y2="y2:Q")
    boxes = alt.Chart(nodes).mark_rect(width=98, height=78, cornerRadius=6, color="#e8eef7",
                                       stroke=OKABE_ITO["blue"]).encode(x=x, y=y, tooltip=["text:N"])
    labels = alt.Chart(nodes.assign(lines=nodes.text.map(_wrap))).mark_text(fontSize=10, lineBreak="\n").encode(
        x=x, y=y, text="lines:N")
    return (lines + boxes + labels).properties(width=TEXT_WIDTH, height=250, title="Workflow")


def _wrap(text: str, width: int = 16) -> str:
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
    d = configs[configs.family.isin(models.shaped())].copy()
    d["shape"] = d["shape"].fillna("equal")
    frame = _splits(d, ["n_params", "depth", "shape", "model"])
    shapes = ["equal", "increasing", "decreasing", "mixed"]
    pick = alt.selection_point(fields=["shape"], bind="legend")
    base = alt.Chart().encode(
        x=log_x(d.n_params), opacity=alt.condition(pick, alt.value(0.9), alt.value(0.12)),
        color=alt.Color("shape:N", title="shape", scale=alt.Scale(
            domain=shapes, range=[OKABE_ITO["black"], OKABE_ITO["blue"], OKABE_ITO["orange"], OKABE_ITO["purple"]])))
    points = base.mark_point(filled=True, size=28).encode(
        y=alt.Y("acc:Q", scale=ACCURACY, axis=PERCENT, title="accuracy"), shape=alt.Shape("split:N", title="split"),
        tooltip=[alt.Tooltip("model:N", title="model"), "shape:N", "split:N",
                 alt.Tooltip("n_params:Q", format=",", title="parameters"), alt.Tooltip("acc:Q", format=".1%"),
                 alt.Tooltip("test_std:Q", format=".2%", title="test std over seeds"), "seeds:Q", "regime:N"])
    band = base.transform_filter("datum.split == 'test'").mark_rule(strokeWidth=1).encode(y="lo:Q", y2="hi:Q")
    depths = d.depth.nunique()
    return alt.layer(band, points, data=frame).properties(width=panel_width(depths), height=HEIGHT).facet(
        column=alt.Column("depth:O", title="hidden layers")).add_params(pick).properties(
        title="Phase 1: accuracy vs learnable parameters, by depth and shape").configure_legend(
        orient="bottom", direction="horizontal")


def families(configs: pd.DataFrame) -> alt.FacetChart:
    """Phase 2 accuracy: square DNNs, CNNs and ViTs, test and train accuracy against learnable parameters, one panel
    per family, one colour per depth (hidden layers, convolutions or encoder blocks), test min..max over seeds."""
    d = labelled(configs[configs["shape"].fillna("equal") == "equal"] if "shape" in configs else configs)
    frame = _splits(d, ["n_params", "depth", "model", "family_title"])
    base = alt.Chart().encode(x=log_x(d.n_params), color=depth_color(d.depth))
    points = base.mark_point(filled=True, size=30).encode(
        y=alt.Y("acc:Q", scale=ACCURACY, axis=PERCENT, title="accuracy"), shape=alt.Shape("split:N", title="split"),
        tooltip=[alt.Tooltip("model:N"), "split:N", alt.Tooltip("n_params:Q", format=",", title="parameters"),
                 alt.Tooltip("acc:Q", format=".1%"), alt.Tooltip("test_std:Q", format=".2%", title="test std"),
                 "seeds:Q", "regime:N"])
    lines = base.transform_filter("datum.split == 'test'").mark_line(strokeWidth=1).encode(
        y="acc:Q", detail="depth:O")
    band = base.transform_filter("datum.split == 'test'").mark_rule(strokeWidth=1).encode(y="lo:Q", y2="hi:Q")
    n = d.family.nunique()
    return alt.layer(band, lines, points, data=frame).properties(width=panel_width(n), height=HEIGHT).facet(
        column=alt.Column("family_title:N", title=None)).resolve_scale(x="independent").properties(
        title="Phase 2: accuracy vs learnable parameters, per family").configure_legend(
        orient="bottom", direction="horizontal")


def phase2(configs: pd.DataFrame, minimal: pd.DataFrame) -> alt.FacetChart:
    """Figure 3: square DNNs, CNNs and ViTs: test accuracy against learnable parameters, points coloured by regime,
    with the minimal parameter count (rule) and its bootstrap interval (band) of each family."""
    d = labelled(configs[configs["shape"].fillna("equal") == "equal"] if "shape" in configs else configs)
    d["series"] = d.family_title + " depth " + d.depth.astype("Int64").astype(str)
    m = labelled(drawable(minimal.dropna(subset=["min_params"])))
    m["label"] = np.where(m.get("bound", "exact") == "at most", "≤ ", "") + m.min_params.map("{:,.0f}".format)
    frame = pd.concat([d.assign(kind="config"), m.assign(kind="minimal")], ignore_index=True)
    pick = alt.selection_point(fields=["series"], bind="legend")
    x = log_x(pd.concat([d.n_params, m.get("ci_low", pd.Series(dtype=float))]))
    configs_only = alt.Chart().transform_filter("datum.kind == 'config'")
    lines = configs_only.mark_line(strokeWidth=1, color="#bbb").encode(
        x=x, y="test_mean:Q", detail="series:N", opacity=alt.condition(pick, alt.value(1), alt.value(0.1)))
    points = configs_only.mark_point(filled=True, size=45).encode(
        x=x, y=alt.Y("test_mean:Q", scale=ACCURACY, axis=PERCENT, title="test accuracy (mean over seeds)"),
        color=alt.Color("regime:N", scale=REGIME_COLORS), shape=alt.Shape("series:N", title="series"),
        opacity=alt.condition(pick, alt.value(0.95), alt.value(0.1)),
        tooltip=[alt.Tooltip("model:N"), alt.Tooltip("n_params:Q", format=",", title="parameters"), "regime:N",
                 alt.Tooltip("test_mean:Q", format=".1%"), alt.Tooltip("test_std:Q", format=".2%"),
                 alt.Tooltip("failed_frac:Q", format=".0%", title="failed seeds"),
                 alt.Tooltip("gap:Q", format=".1%", title="train-test gap"), "seeds:Q"])
    minimal_only = alt.Chart().transform_filter("datum.kind == 'minimal'")
    band = minimal_only.mark_rect(opacity=0.15, color=OKABE_ITO["green"]).encode(x="ci_low:Q", x2="ci_high:Q")
    rule = minimal_only.mark_rule(strokeDash=[4, 3], color=OKABE_ITO["green"]).encode(
        x="min_params:Q", tooltip=[alt.Tooltip("min_params:Q", format=",", title="minimal parameters"), "bound:N",
                                   alt.Tooltip("ci_low:Q", format=","), alt.Tooltip("ci_high:Q", format=",")])
    label = minimal_only.mark_text(align="left", dx=3, dy=-4, fontSize=10, color=OKABE_ITO["green"]).encode(
        x="min_params:Q", y=alt.value(8), text="label:N")
    n = d.family.nunique()
    return alt.layer(band, rule, label, lines, points).properties(width=panel_width(n), height=HEIGHT).facet(
        column=alt.Column("family_title:N", title=None), data=frame).add_params(pick).resolve_scale(
        x="independent").properties(title="Phase 2: regimes and the minimal number of learnable parameters") \
        .configure_legend(orient="bottom", direction="horizontal", columns=4)


def dose(outcomes: pd.DataFrame, curves: pd.DataFrame, minimal: pd.DataFrame) -> alt.FacetChart:
    """The minimal size as a dose-response: per family, the share of each square configuration's seeds that learned
    the task (a point, its size the seeds), the fitted probability of learning (the curve), the level it is read
    at (dotted) and the minimal size with its interval (rule and band; an open end drawn to the panel's edge)."""
    o, c, m = labelled(outcomes), labelled(curves), labelled(drawable(minimal.dropna(subset=["min_params"])))
    frame = pd.concat([o.assign(kind="seeds"), c.assign(kind="curve"), m.assign(kind="minimal")], ignore_index=True)
    x = log_x(pd.concat([o.n_params, c.n_params]))
    y = alt.Y("fraction:Q", scale=ACCURACY, axis=PERCENT, title="seeds that learn the task")
    seeds = alt.Chart().transform_filter("datum.kind == 'seeds'").mark_point(filled=True, opacity=0.8).encode(
        x=x, y=y, size=alt.Size("seeds:Q", legend=None, scale=alt.Scale(range=[20, 90])),
        color=alt.value(OKABE_ITO["blue"]),
        tooltip=["model:N", alt.Tooltip("n_params:Q", format=",", title="parameters"), "learned:Q", "seeds:Q"])
    curve = alt.Chart().transform_filter("datum.kind == 'curve'").mark_line(color=OKABE_ITO["black"]).encode(
        x=x, y=alt.Y("probability:Q", title="seeds that learn the task"))
    only = alt.Chart().transform_filter("datum.kind == 'minimal'")
    band = only.mark_rect(opacity=0.15, color=OKABE_ITO["green"]).encode(x="ci_low:Q", x2="ci_high:Q")
    rule = only.mark_rule(strokeDash=[4, 3], color=OKABE_ITO["green"]).encode(
        x="min_params:Q", tooltip=[alt.Tooltip("min_params:Q", format=",", title="minimal parameters"), "bound:N",
                                   alt.Tooltip("ci_low:Q", format=",.0f"), alt.Tooltip("ci_high:Q", format=",.0f")])
    level = only.mark_rule(strokeDash=[1, 2], color="#777").encode(y="level:Q")
    n = o.family.nunique()
    return alt.layer(band, rule, level, curve, seeds).properties(width=panel_width(n), height=HEIGHT).facet(
        column=alt.Column("family_title:N", title=None), data=frame).resolve_scale(x="independent").properties(
        title="The minimal size as a dose-response: the probability that a seed learns the task")


def drawable(minimal: pd.DataFrame) -> pd.DataFrame:
    """``minimal`` with each interval's open end (0 below the searched range, inf beyond it) drawn a decade past
    the family's grid, so that a log axis can show it."""
    out = minimal.copy()
    out["ci_low"] = out.ci_low.where(out.ci_low.isna() | (out.ci_low > 0), out.smallest / 10)
    out["ci_high"] = out.ci_high.where(out.ci_high.isna() | np.isfinite(out.ci_high), out.largest * 10)
    return out  # a bound without a fit has no interval: none is drawn


# -- figure 4 ------------------------------------------------------------------------------------------------------

def learning_curves(histories: pd.DataFrame, examples: pd.DataFrame) -> alt.FacetChart:
    """Figure 4: loss against epoch (train and validation, every seed) of one example configuration per regime."""
    h = histories.merge(examples[["run_id", "regime", "label"]], on="run_id")
    long = pd.concat([h.assign(split="train", loss=h.train_loss), h.assign(split="validation", loss=h.val_loss)])
    long = long[["run_id", "regime", "label", "epoch", "split", "loss", "test_acc"]]
    chart = alt.Chart(long).mark_line(point=alt.OverlayMarkDef(size=12)).encode(
        x=alt.X("epoch:Q"), y=alt.Y("loss:Q", scale=alt.Scale(type="log"), title="loss (log)"),
        color=alt.Color("split:N", scale=alt.Scale(range=[OKABE_ITO["blue"], OKABE_ITO["orange"]])),
        detail="run_id:N",
        tooltip=["label:N", "split:N", "epoch:Q", alt.Tooltip("loss:Q", format=".4f"),
                 alt.Tooltip("test_acc:Q", format=".1%")])
    n = examples.label.nunique()
    return chart.properties(width=panel_width(n, own_axis=True), height=HEIGHT).facet(
        column=alt.Column("label:N", title=None, sort=alt.SortField("regime"))).resolve_scale(y="independent") \
        .properties(title="Learning curves of one configuration per regime (every seed)").configure_legend(
        orient="bottom", direction="horizontal")


# -- figures 5 and 6 -----------------------------------------------------------------------------------------------

def _compression_curves(curves: pd.DataFrame, x: alt.X, tip: alt.Tooltip, row: str, title: str) -> alt.FacetChart:
    """Accuracy of every representative model against a compression axis: one panel per family (columns) and per
    ``row``; colour says the depth, the line's dash its size within family and depth, the band its seeds' range
    (the line is their mean), the tooltip its name."""
    field = x.to_dict()["field"]
    keys = ["config_id", "model", "family", "depth", "n_params", "dataset", row, field]
    d = curves.groupby(keys, sort=False).agg(test_acc=("test_acc", "mean"), lo=("test_acc", "min"),
                                             hi=("test_acc", "max"), seeds=("run_id", "nunique")).reset_index()
    d = labelled(d).assign(depth=lambda f: f.depth.astype(int), size=lambda f: size_labels(f))
    base = alt.Chart().encode(x=x, detail="config_id:N")
    band = base.mark_area(opacity=0.15).encode(y="lo:Q", y2="hi:Q", color=depth_color(d.depth))  # one legend
    y = alt.Y("test_acc:Q", scale=ACCURACY, axis=PERCENT, title="test accuracy")
    line = base.mark_line().encode(  # unfilled, so that the size legend draws its dashes
        y=y, color=depth_color(d.depth),
        strokeDash=alt.StrokeDash("size:N", title="size", sort=SIZES, legend=alt.Legend(symbolType="stroke"),
                                  scale=alt.Scale(domain=SIZES, range=[[2, 2], [6, 3], [1, 0]])))
    points = base.mark_point(filled=True, size=16, opacity=1).encode(
        y=y, color=depth_color(d.depth),
        tooltip=[alt.Tooltip("model:N"), alt.Tooltip("n_params:Q", format=",", title="parameters"), "size:N",
                 tip, alt.Tooltip("test_acc:Q", format=".1%", title="mean"), alt.Tooltip("lo:Q", format=".1%"),
                 alt.Tooltip("hi:Q", format=".1%"), "seeds:Q", f"{row}:N"])
    n = d.family.nunique()
    return alt.layer(band, line, points, data=d).properties(width=panel_width(n), height=140).facet(
        column=alt.Column("family_title:N", title=None), row=alt.Row(f"{row}:N", title=None)).properties(
        title=title).configure_legend(orient="bottom", direction="horizontal", symbolOpacity=1)  # depth opaque


def pruning_curves(curves: pd.DataFrame) -> alt.FacetChart:
    """Figure 5: test accuracy against sparsity, one line per model, per family and scope."""
    return _compression_curves(
        curves, alt.X("sparsity:Q", axis=alt.Axis(format="%"), title="sparsity"),
        alt.Tooltip("sparsity:Q", format=".0%"), "scope",
        "L1 pruning: accuracy vs sparsity (global: one threshold; layer: the same fraction of every layer)")


def redundancy_bars(redundancy: pd.DataFrame) -> alt.FacetChart:
    """Figure 5b: the redundancy of each model (largest sparsity within tolerance of dense), mean over its seeds,
    with their range."""
    d = labelled(redundancy.groupby(["config_id", "model", "family", "n_params", "scope", "dataset"], sort=False).agg(
        redundancy=("redundancy", "mean"), lo=("redundancy", "min"), hi=("redundancy", "max"),
        dense_acc=("dense_acc", "mean"), collapse_at=("collapse_at", "mean")).reset_index())
    bars = alt.Chart().mark_bar().encode(
        y=alt.Y("model:N", sort=alt.SortField("n_params"), title=None),
        x=alt.X("redundancy:Q", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1]),
                title="prunable within the tolerance"),
        color=family_color(),
        tooltip=[alt.Tooltip("model:N"), alt.Tooltip("n_params:Q", format=",", title="parameters"),
                 alt.Tooltip("dense_acc:Q", format=".1%"), alt.Tooltip("redundancy:Q", format=".0%", title="mean"),
                 alt.Tooltip("lo:Q", format=".0%"), alt.Tooltip("hi:Q", format=".0%"),
                 alt.Tooltip("collapse_at:Q", format=".0%")])
    spread = alt.Chart().mark_rule(color="#555").encode(y=alt.Y("model:N", sort=alt.SortField("n_params")),
                                                         x="lo:Q", x2="hi:Q")
    return alt.layer(bars, spread, data=d).properties(width=panel_width(2, legend=120), height=alt.Step(12)).facet(
        column=alt.Column("scope:N", title=None)).properties(
        title="Redundancy per model (bar: mean over seeds; line: their range)").configure_legend(
        orient="bottom", direction="horizontal")


def quantization_curves(curves: pd.DataFrame) -> alt.FacetChart:
    """Figure 6: test accuracy against weight precision, one line per model, per family and setting."""
    order = list(dict.fromkeys(curves.precision))
    d = curves.assign(setting=curves.scheme + ", per " + curves.granularity)
    return _compression_curves(d, alt.X("precision:N", sort=order, title="weight precision (bits)"),
                               alt.Tooltip("precision:N"), "setting",
                               "Post-training quantization: accuracy vs weight precision")


def matched_depth(matched: pd.DataFrame) -> alt.FacetChart | None:
    """Depth at matched size: the redundancy (global pruning) of square DNNs of about equal parameter count at each
    depth, one line per size band, mean over seeds with their range; None when no band holds two depths."""
    if matched.empty:
        return None
    d = matched.groupby(["band", "depth", "model", "n_params"], sort=False).agg(
        redundancy=("redundancy", "mean"), lo=("redundancy", "min"), hi=("redundancy", "max"),
        seeds=("run_id", "nunique")).reset_index()
    d["band_params"] = d.band.str.replace(",", "").astype(float)
    colour = alt.Color("band_params:Q", title="size band (parameters)", legend=alt.Legend(format="~s"),
                       scale=alt.Scale(type="log", range=[SHADES[0], SHADES[-1]]))  # light to dark: small to large
    base = alt.Chart(d).encode(x=alt.X("depth:O", title="hidden layers"), color=colour, detail="band:N")
    lines = base.mark_line(point=True).encode(
        y=alt.Y("redundancy:Q", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1]),
                title="redundancy (mean over seeds)"),
        tooltip=["model:N", alt.Tooltip("n_params:Q", format=",", title="parameters"),
                 alt.Tooltip("redundancy:Q", format=".0%"), alt.Tooltip("lo:Q", format=".0%"),
                 alt.Tooltip("hi:Q", format=".0%"), "seeds:Q"])
    rules = base.mark_rule().encode(y="lo:Q", y2="hi:Q")
    return (rules + lines).properties(width=TEXT_WIDTH - 200, height=200,
                                      title="Pruning resilience by depth, at matched size").configure_legend(
        orient="bottom", direction="horizontal")


def sensitivity(sens: pd.DataFrame) -> alt.FacetChart:
    """How the minimal-parameter estimate of each family moves as each regime threshold is varied (the others at
    their defaults, marked by the dashed rule); a mark at the family's smallest network is a bound (the tooltip
    says so), a missing one not reached within the grid."""
    d = labelled(sens.dropna(subset=["min_params"]))
    panels = sens.threshold.nunique()
    x = alt.X("value:Q", title=None)
    marks = alt.Chart().mark_line(point=alt.OverlayMarkDef(size=40, filled=True)).encode(
        x=x, y=alt.Y("min_params:Q", scale=alt.Scale(type="log"), axis=alt.Axis(format="~s"),
                     title="minimal learnable parameters"),
        color=family_color(), tooltip=["family_title:N", "threshold:N", "value:Q", "bound:N",
                                       alt.Tooltip("min_params:Q", format=",", title="minimal parameters")])
    default = alt.Chart().mark_rule(strokeDash=[4, 3], color="#777").encode(x="default:Q")
    return alt.layer(default, marks, data=d).properties(width=panel_width(panels), height=150).facet(
        column=alt.Column("threshold:N", title=None)).resolve_scale(x="independent").properties(
        title="Sensitivity of the minimal parameters to each threshold").configure_legend(
        orient="bottom", direction="horizontal")


# -- figure 7 ------------------------------------------------------------------------------------------------------

def summary(minimal: pd.DataFrame, redundancy: pd.DataFrame, tolerance: pd.DataFrame,
            intrinsic: pd.DataFrame | None = None) -> alt.VConcatChart:
    """Figure 7: per dataset, the minimal parameters of each family (beside them, crosses: the published intrinsic
    dimensions of ``intrinsic``), the redundancy (global pruning) of the families whose knob lists hidden widths by
    depth, and the lowest precision within tolerance (per tensor) by model size."""
    redundancy = redundancy[(redundancy.scope == "global") & redundancy.family.isin(models.shaped())]
    tolerance = tolerance[tolerance.granularity == "tensor"]
    m = labelled(drawable(minimal.dropna(subset=["min_params"])))
    y = alt.Y("dataset_title:N", title=None, sort=[data.spec(d).title for d in data.by_difficulty()])
    a = alt.Chart(m).mark_point(filled=True, size=80).encode(
        x=log_x(pd.concat([m.min_params, m.ci_low, m.ci_high] + ([intrinsic.d_int90] if intrinsic is not None
                                                                   else [])), "min_params:Q",
                "minimal learnable parameters"),
        y=y, color=family_color(), shape=alt.Shape("bound:N", title="estimate", scale=alt.Scale(
            domain=["exact", "at most"], range=["circle", "triangle-left"])),
        tooltip=["dataset_title:N", "family_title:N", alt.Tooltip("min_params:Q", format=","), "bound:N",
                 alt.Tooltip("ci_low:Q", format=","), alt.Tooltip("ci_high:Q", format=",")])
    a = alt.Chart(m).mark_rule().encode(x="ci_low:Q", x2="ci_high:Q", y=y, color=family_color()) + a
    if intrinsic is not None and len(intrinsic):
        k = labelled(intrinsic[intrinsic.dataset.isin(m.dataset)])
        a += alt.Chart(k).mark_point(shape="cross", size=70, color=OKABE_ITO["black"]).encode(
            x="d_int90:Q", y=y, tooltip=["dataset_title:N", alt.Tooltip("network:N", title="intrinsic dimension of"),
                                         alt.Tooltip("d_int90:Q", format=",", title="d_int90 (Li et al. 2018)")])
    a = a.properties(width=TEXT_WIDTH // 2 - 60, title="Minimal parameters (95% interval; +: intrinsic dimension)")
    r = labelled(redundancy.groupby(["dataset", "depth"], as_index=False).agg(
        redundancy=("redundancy", "mean"), models=("run_id", "count")))
    b = alt.Chart(r).mark_bar().encode(
        x=alt.X("redundancy:Q", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1]), title="mean redundancy"),
        y=alt.Y("depth:O", title=None, axis=alt.Axis(labelExpr="'depth ' + datum.label")), color=depth_color(r.depth),
        row=alt.Row("dataset_title:N", title=None, sort=[data.spec(d).title for d in data.by_difficulty()]),
        tooltip=["dataset_title:N", "depth:O", alt.Tooltip("redundancy:Q", format=".0%"), "models:Q"]
    ).properties(width=TEXT_WIDTH // 2 - 80, height=48, title="Redundancy of DNNs by depth")
    t = labelled(tolerance)
    c = alt.Chart(t).mark_point(filled=True, size=60).encode(
        x=log_x(t.n_params), y=alt.Y("min_bits:Q", title="lowest bits within tolerance", scale=alt.Scale(
            domain=[1, 16]), axis=alt.Axis(values=[2, 3, 4, 5, 6, 8, 10, 12, 16])),
        color=dataset_color(), shape=alt.Shape("family_title:N", title="family"),
        tooltip=["dataset_title:N", "model:N", alt.Tooltip("n_params:Q", format=","), "min_bits:Q",
                 alt.Tooltip("drop_4bit:Q", format="+.1%", title="drop at 4 bits")]
    ).properties(width=TEXT_WIDTH - 80, height=180, title="Precision tolerance by model size")
    return alt.vconcat(alt.hconcat(a, b).resolve_scale(color="independent"), c).resolve_scale(
        color="independent", shape="independent").properties(title="Across datasets").configure_legend(
        orient="bottom", direction="horizontal")


# -- the smallest model -------------------------------------------------------------------------------------------

def frontier(summary: pd.DataFrame, front: pd.DataFrame, references: pd.DataFrame) -> alt.LayerChart:
    """Accuracy against stored bytes: each family's Pareto frontier (line, points with the seeds' interval, on the
    test split), every other variant (faint, on the validation split that chose among them), and published
    tiny models of other architectures (black diamonds tagged R1, R2 ..., the tags of the references table). The
    legends sit below the chart, so that it fits the text column of a 1,200-pixel window."""
    f = labelled(front)
    d = labelled(summary[~summary.set_index(KEYS).index.isin(front.set_index(KEYS).index)])
    d = d.assign(test_mean=d.val_mean)  # the faint points' height: the validation accuracy the choice read
    sizes = [*summary.size_bytes, *references.size_bytes]
    x = log_x(sizes, "size_bytes:Q", "stored size (bytes)")
    low = float(np.nanmin([*f.test_low.fillna(f.test_mean), *references.accuracy, 1.0]))
    floor = max(0.0, np.floor((low - 0.05) * 20) / 20)  # the frontier's range; collapsed variants fall off the axis
    y = alt.Y("test_mean:Q", title="accuracy (frontier: test; the rest: validation)", scale=alt.Scale(
        domain=[floor, 1]), axis=alt.Axis(format="%"))
    tip = [alt.Tooltip("model:N"), alt.Tooltip("sparsity:Q", format=".0%"), alt.Tooltip("precision:N"),
           alt.Tooltip("size_bytes:Q", format=",", title="bytes")]
    method = alt.Shape("method:N", title="weights", scale=alt.Scale(
        domain=["post-training", "quantization-aware"], range=["circle", "triangle-up"]))
    cloud = alt.Chart(d).mark_point(size=14, opacity=0.3, filled=True, clip=True).encode(
        x=x, y=y, color=family_color(), shape=method, tooltip=[
            *tip, alt.Tooltip("test_mean:Q", format=".2%", title="validation accuracy"),
            *([alt.Tooltip("val_images:Q", format=",", title="validation images measured")] if "val_images" in d
              else []), alt.Tooltip("method:N")])
    line = alt.Chart(f).mark_line(point=alt.OverlayMarkDef(size=30)).encode(
        x=x, y=y, color=family_color(), detail="family:N", tooltip=[
            *tip, alt.Tooltip("test_mean:Q", format=".2%"),
            alt.Tooltip("test_low:Q", format=".2%", title="interval low"),
            alt.Tooltip("test_high:Q", format=".2%", title="interval high"), alt.Tooltip("seeds:Q"),
            alt.Tooltip("method:N")])
    bars = alt.Chart(f).mark_rule(opacity=0.6).encode(x=x, y="test_low:Q", y2="test_high:Q", color=family_color())
    refs = references.assign(test_mean=references.accuracy)
    ref_tip = [alt.Tooltip("tag:N"), alt.Tooltip("name:N"), alt.Tooltip("params:Q", format=","),
               alt.Tooltip("accuracy:Q", format=".2%"), alt.Tooltip("note:N"), alt.Tooltip("source:N")]
    marks = alt.Chart(refs).mark_point(shape="diamond", size=60, filled=True, color=OKABE_ITO["black"]).encode(
        x=x, y=y, tooltip=ref_tip, href="source:N")
    alternate = refs.index % 2 == 1  # neighbours' tags alternate above and below their diamonds
    labels = alt.layer(*(alt.Chart(part).mark_text(align="center", dy=dy, fontSize=10).encode(x=x, y=y, text="tag:N")
                         for part, dy in ((refs[~alternate], -9), (refs[alternate], 11))))
    chart = alt.layer(cloud, bars, line, marks, labels).properties(
        width=TEXT_WIDTH - 130, height=300, title="The compression frontier: accuracy per stored byte")
    return chart.configure_legend(orient="bottom", direction="horizontal")


NO_LIMIT = 1e15  # the byte budget's "no limit": larger than any model


def question(candidates: pd.DataFrame, targets: list[float], downloads: dict | None = None,
             confidence: float = ASK["confidence"].default) -> alt.VConcatChart:
    """The frontier as a question (``recommend`` asked in the page, with no kernel): a target accuracy, a family and
    a byte budget chosen with the controls below the chart, and the variant ``recommend`` answers with marked and
    said in words, by its rule on the same rows (``frontier.candidates``): among the variants of the family within
    the budget, the smallest whose validation lower bound reaches the target (the higher bound first among equal
    sizes), else the closest miss (the highest bound, the smaller first). ``candidates`` must have been summarised at
    ``confidence``; ``downloads`` ({variant: link}, ``Chapter.downloads``) links an answer the book exported."""
    from ..analyses.frontier import precision_text, sparsity_text, variant_names
    d = labelled(candidates)[["config_id", "method", "sparsity", "precision", "family", "family_title", "model",
                              "size_bytes", "val_low", "test_mean", "test_low", "test_high"]]
    d = d.assign(variant=variant_names(d), what=d.model + ", " + d.sparsity.map(sparsity_text) + ", " + d.precision.map(precision_text)
                 + " weights (" + d.method + ")")
    d["download"] = d.variant.map(downloads or {})
    lo = float(np.floor(min(d.val_low.min(), *targets) * 100) / 100)
    hi = float(np.ceil(max(d.val_low.max(), *targets) * 100) / 100)
    target = alt.param(name="target", value=float(targets[len(targets) // 2]), bind=alt.binding_range(
        min=max(0.0, lo), max=min(1.0, hi), step=0.001, name="Target accuracy (validation lower bound) "))
    families = sorted(set(d.family), key=list(models.FAMILIES).index)
    family = alt.param(name="family", value="all", bind=alt.binding_select(
        options=["all", *families], labels=["every family", *(models.family(f).title for f in families)],
        name="Family "))
    sizes = [b for b in (1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6)
             if d.size_bytes.min() <= b < d.size_bytes.max()]
    budget = alt.param(name="budget", value=NO_LIMIT, bind=alt.binding_select(
        options=[NO_LIMIT, *sizes], labels=["no limit", *(f"{b:,.0f} bytes" for b in sizes)], name="Byte budget "))
    x = log_x(d.size_bytes, "size_bytes:Q", "stored size (bytes)")
    y = alt.Y("val_low:Q", title=f"validation accuracy, {confidence:.0%} lower bound over seeds",
              axis=alt.Axis(format="%"), scale=alt.Scale(domain=[max(0.0, lo - 0.02), min(1.0, hi + 0.02)]))
    eligible = "(family == 'all' || datum.family == family) && datum.size_bytes <= budget"
    cloud = alt.Chart(d).mark_point(filled=True, size=28).encode(
        x=x, y=y, color=family_color(), opacity=alt.condition(eligible, alt.value(0.75), alt.value(0.12)),
        tooltip=[alt.Tooltip("what:N", title="variant"), alt.Tooltip("size_bytes:Q", format=",", title="bytes"),
                 alt.Tooltip("val_low:Q", format=".2%", title="validation lower bound")])
    line = alt.Chart(pd.DataFrame({"one": [0]})).transform_calculate(goal="target").mark_rule(
        strokeDash=[4, 3], color=OKABE_ITO["black"]).encode(y="goal:Q")
    answer = alt.Chart(d).transform_calculate(
        fits=f"({eligible}) ? 0 : 1", met="datum.val_low >= target",
        k2="datum.val_low >= target ? datum.size_bytes : -datum.val_low",
        k3="datum.val_low >= target ? -datum.val_low : datum.size_bytes",
    ).transform_calculate(k1="datum.fits == 0 ? (datum.met ? 0 : 1) : 2").transform_window(
        rank="row_number()", sort=[{"field": "k1"}, {"field": "k2"}, {"field": "k3"}]
    ).transform_filter("datum.rank == 1")
    ring = answer.transform_filter("datum.k1 < 2").transform_calculate(
        link="isValid(datum.download) ? datum.download : ''").mark_point(  # no link where nothing was exported
        size=260, strokeWidth=2.5, color=OKABE_ITO["vermillion"]).encode(
        x=x, y=y, description="variant:N", href="link:N", tooltip=[
            alt.Tooltip("what:N", title="answer"), alt.Tooltip("download:N", title="download (click)")]
    ).properties(name="answer_ring")
    said = answer.transform_calculate(said=(
        "datum.k1 == 2 ? 'No variant of this family fits the byte budget.' : (datum.met ? 'Smallest reaching ' : "
        "'Nothing reaches ') + format(target, '.1%') + (datum.met ? ': ' : '; closest: ') + datum.what + '\\n'"
        " + format(datum.size_bytes, ',') + ' bytes; validation lower bound ' + format(datum.val_low, '.2%')"
        " + (isValid(datum.test_mean) ? '; test ' + format(datum.test_mean, '.2%') + ' (' + format(datum.test_low,"
        " '.1%') + '–' + format(datum.test_high, '.1%') + ')' : '; its test split is measured when recommend"
        " answers with it') + (isValid(datum.download) ? '\\nthe book exported it: click the ring to download' :"
        " '')")).mark_text(
        align="left", baseline="top", lineBreak="\n", fontSize=11).encode(
        x=alt.value(0), y=alt.value(0), text="said:N").properties(
        name="answer_text", width=TEXT_WIDTH - 130, height=40)  # the answer in words, above the points
    plot = alt.layer(cloud, line, ring).properties(width=TEXT_WIDTH - 130, height=300)
    return alt.vconcat(said, plot, spacing=4).add_params(target, family, budget).properties(
        title="Ask the frontier: the smallest variant for your target",
        description=("Every variant recommend chooses among, by stored bytes and its validation lower bound; the "
                     "controls below set a target accuracy, a family and a byte budget, and the chart marks and "
                     "names the variant recommend answers with.")).configure_legend(
        orient="bottom", direction="horizontal").configure_view(stroke=None)


def components(ranking: pd.DataFrame) -> alt.FacetChart:
    """Accuracy lost when one component group is rounded to few bits and the rest stays float32: one line per
    component, one panel per family, stacked (side by side, several families with their legends outgrow the column)."""
    cols = [c for c in ranking if c.startswith("drop_") and c.endswith("bit")]
    d = ranking.melt(id_vars=["family", "component", "rank", "models"], value_vars=cols, var_name="bits",
                     value_name="drop")
    d = labelled(d.assign(bits=d.bits.str.removeprefix("drop_").str.removesuffix("bit").astype(int)))
    line = alt.Chart().mark_line(point=True).encode(
        x=alt.X("bits:O", sort="descending", title="bits of the rounded component"),
        y=alt.Y("drop:Q", title="test accuracy lost", axis=alt.Axis(format="%")),
        color=alt.Color("component:N", title="component", scale=alt.Scale(range=list(OKABE_ITO.values()))),
        tooltip=["component:N", "bits:O", alt.Tooltip("drop:Q", format=".1%", title="mean drop"),
                 alt.Tooltip("rank:Q", title="rank at 4-2 bits"), alt.Tooltip("models:Q", title="models")])
    return alt.layer(line, data=d).properties(width=TEXT_WIDTH - 260, height=120).facet(
        row=alt.Row("family_title:N", title=None)).resolve_scale(y="independent", color="independent").properties(
        title="Which components tolerate low precision (one group rounded, the rest float32)")


def frontiers(front: pd.DataFrame) -> alt.LayerChart:
    """Every dataset's compression frontier (all families together): test accuracy against stored bytes."""
    d = labelled(front)
    x = log_x(d.size_bytes, "size_bytes:Q", "stored size (bytes)")
    tip = [alt.Tooltip("dataset_title:N", title="dataset"), alt.Tooltip("model:N"),
           alt.Tooltip("sparsity:Q", format=".0%"), alt.Tooltip("precision:N"), alt.Tooltip("method:N"),
           alt.Tooltip("size_bytes:Q", format=",", title="bytes"), alt.Tooltip("test_mean:Q", format=".2%")]
    line = alt.Chart(d).mark_line(point=True, interpolate="step-after").encode(
        x=x, y=alt.Y("test_mean:Q", title="test accuracy", axis=alt.Axis(format="%")), color=dataset_color(),
        tooltip=tip)
    return line.properties(width=TEXT_WIDTH - 140, height=260,
                           title="The compression frontier of each dataset (every family)")
