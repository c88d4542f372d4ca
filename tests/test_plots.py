import json
import re

import numpy as np
import pandas as pd
import pytest

from minarch_core.book import plots
from minarch_core.engine import models


@pytest.fixture
def configs():
    rows = []
    for family, depth, width, params, acc, regime, shape in [
            ("dnn", 1, 1, 805, 0.2, "unstable", "equal"), ("dnn", 1, 100, 79510, 0.97, "learning", "equal"),
            ("dnn", 2, 10, 8070, 0.93, "learning", "increasing"), ("cnn", 1, 4, 27090, 0.95, "overfitting", None)]:
        rows.append(dict(dataset="mnist", family=family, config_id=f"{family}{depth}{width}", depth=depth, width=width,
                         model=f"{family.upper()} {width}",
                         widths=str(width), shape=shape, n_params=params, seeds=3, test_mean=acc, test_std=0.01,
                         test_min=acc - 0.02, test_max=acc + 0.01, train_mean=acc + 0.01, gap=0.01, failed_frac=0.0,
                         regime=regime))
    return pd.DataFrame(rows)


def spec(chart):
    return json.dumps(chart.to_dict())  # to_dict validates against the Vega-Lite schema


def test_workflow_and_design_figures(configs):
    minimal = pd.DataFrame({"dataset": ["mnist"] * 2, "family": ["dnn", "cnn"], "min_params": [8070, np.nan],
                            "ci_low": [805, np.nan], "ci_high": [np.inf, np.nan], "smallest": [805, 27090],
                            "largest": [79510, 27090]})
    assert "cross-dataset summary" in spec(plots.workflow())
    assert '"hidden layers"' in spec(plots.phase1(configs))
    text = spec(plots.phase2(configs, minimal))
    assert "minimal parameters" in text and "DNN depth 1" in text and "unstable" in text
    assert '"Phase 2: accuracy vs learnable parameters, per family"' in spec(plots.families(configs))
    with_vit = pd.concat([configs, configs.iloc[[3]].assign(family="vit", config_id="vit1")], ignore_index=True)
    text = spec(plots.phase2(with_vit, minimal))
    assert '"ViT"' in text and '"VIT"' not in text  # each family named as in the other figures


def test_the_dose_figure_draws_the_seeds_the_curve_and_an_open_interval_to_the_panel_edge(configs):
    from minarch_core.analyses import regimes
    minimal = pd.DataFrame({"dataset": "mnist", "family": ["dnn"], "min_params": [8070.0], "bound": "exact",
                            "ci_low": [0.0], "ci_high": [np.inf], "fitted": [8070.0], "slope": [5.0], "level": 0.9,
                            "smallest": [805], "largest": [79510]})
    drawn = plots.drawable(minimal).iloc[0]
    assert (drawn.ci_low, drawn.ci_high) == (80.5, 795100)  # a decade past the grid: a log axis can show it
    bound = plots.drawable(minimal.assign(ci_low=np.nan, ci_high=np.nan, bound="at most")).iloc[0]
    assert np.isnan(bound.ci_low) and np.isnan(bound.ci_high)  # no fit, no interval: no band across the panel
    outcomes = configs[configs.family == "dnn"].assign(learned=[0, 3, 2], seeds=3, fraction=[0, 1, 2 / 3])
    curves = regimes.dose_curves(minimal)
    assert curves.probability.is_monotonic_increasing and curves.probability.iloc[0] < 0.9 < curves.probability.max()
    text = spec(plots.dose(outcomes, curves, minimal))
    assert "seeds that learn the task" in text and '"DNN"' in text


def test_learning_curves():
    hist = pd.DataFrame({"run_id": ["a"] * 3 + ["b"] * 3, "epoch": [0, 1, 2] * 2, "train_loss": [2, 1, 0.5] * 2,
                         "val_loss": [2, 1.1, 0.9] * 2, "test_acc": [0.1, 0.8, 0.9] * 2})
    examples = pd.DataFrame({"run_id": ["a", "b"], "regime": ["learning", "unstable"], "label": ["L", "U"]})
    assert '"validation"' in spec(plots.learning_curves(hist, examples))


@pytest.fixture
def curves():
    rows = []
    for run, family, depth, params in [("a", "dnn", 1, 805), ("b", "dnn", 1, 79510), ("c", "dnn", 2, 8070),
                                       ("d", "cnn", 1, 27090)]:
        for sparsity, acc in ((0, 0.97), (0.5, 0.96), (0.9, 0.5)):
            rows.append(dict(run_id=run, config_id=run, dataset="mnist", family=family, depth=depth, n_params=params,
                             model=f"{family} {params}", scope="global", sparsity=sparsity, achieved=sparsity,
                             test_acc=acc))
    return pd.DataFrame(rows)


def test_pruning_quantization_and_summary_figures(curves):
    chart = plots.pruning_curves(curves).to_dict()
    line = chart["spec"]["layer"][1]["encoding"]
    assert line["strokeDash"]["field"] == "size" and line["color"]["field"] == "depth"  # size apart from depth
    sizes = plots.size_labels(curves).groupby(curves.run_id).first().to_dict()
    assert sizes == {"a": "smallest", "b": "largest", "c": "smallest", "d": "smallest"}  # within family and depth
    red = curves[curves.sparsity == 0].assign(dense_acc=0.97, redundancy=0.5, collapse_at=0.9)
    assert "Redundancy" in spec(plots.redundancy_bars(red))
    q = curves.assign(precision=curves.sparsity.map({0: "float32", 0.5: "8", 0.9: "2"}), scheme="symmetric",
                      granularity="tensor")
    assert "weight precision" in spec(plots.quantization_curves(q))
    tol = curves[curves.sparsity == 0].assign(min_bits=4, drop_4bit=0.004, granularity="tensor")
    minimal = pd.DataFrame({"dataset": ["mnist"], "family": ["dnn"], "min_params": [4000], "ci_low": [0.0],
                            "ci_high": [4000], "smallest": [805], "largest": [79510]})
    assert "Across datasets" in spec(plots.summary(minimal, red, tol))
    from minarch_core.analyses import references
    assert "d_int90 (Li et al. 2018)" in spec(plots.summary(minimal, red, tol, references.intrinsic()))


def test_sensitivity_and_matched_depth_figures(curves):
    sens = pd.DataFrame({"dataset": "mnist", "family": ["dnn", "dnn", "cnn"], "threshold": "min_level",
                         "value": [0.5, 0.9, 0.5], "default": 0.8, "min_params": [8000, 16000, np.nan],
                         "bound": ["exact", "exact", "not reached"]})
    assert '"Sensitivity of the minimal parameters to each threshold"' in spec(plots.sensitivity(sens))
    matched = curves[curves.sparsity == 0].assign(band="8,000", redundancy=[0.5, 0.6, 0.7, 0.4])
    assert '"hidden layers"' in spec(plots.matched_depth(matched))
    many = pd.concat([matched.assign(band=f"{8000 + 1000 * k:,}") for k in range(len(plots.SHADES) + 4)])
    assert '"size band (parameters)"' in spec(plots.matched_depth(many))  # more bands than shades: still drawn


def test_log_axes_tick_whole_decades_within_the_data_only():
    axis = plots.log_x([805, 79510, 216650]).to_dict()
    assert axis["axis"]["values"] == [1000, 10000, 100000]
    assert axis["scale"]["domain"][0] > 100 and axis["scale"]["domain"][1] < 1e6 and axis["scale"]["nice"] is False


def test_figures_fit_the_text_column_and_share_their_colours(configs, curves):
    assert plots.workflow().to_dict()["width"] <= plots.TEXT_WIDTH
    dnn_depths, families = configs[configs.family == "dnn"].depth.nunique(), configs.family.nunique()
    for figure, panels in ((plots.phase1(configs), dnn_depths), (plots.families(configs), families)):
        assert (figure.to_dict()["spec"]["width"] + 20) * panels <= plots.TEXT_WIDTH
    a = plots.families(configs).to_dict()["spec"]["layer"][-1]["encoding"]["color"]["scale"]
    b = plots.pruning_curves(curves).to_dict()["spec"]["layer"][1]["encoding"]["color"]["scale"]
    assert a["range"][:1] == b["range"][:1] and a["domain"][:1] == b["domain"][:1]  # depth 1: one shade everywhere
    regimes = plots.REGIME_COLORS.to_dict()["range"]
    assert len(set(regimes)) == 4 and set(regimes) <= set(plots.OKABE_ITO.values())  # colour-blind safe


def test_book_renderer_and_saved_files(tmp_path, configs):
    spec = plots.phase1(configs).to_dict()
    html = plots.RENDERERS["book"](spec)["text/html"]
    assert "vegaEmbed(" in html and "<script>" in html and "cdn" not in html.lower()
    assert "window.vegaEmbed=" not in html  # the book page loads vega-embed once, from book/_static
    svg, png = plots.save(plots.phase1(configs), tmp_path / "fig" / "phase1")
    assert svg.read_text().startswith("<svg") and png.read_bytes()[:4] == b"\x89PNG"


def test_the_claims_table_links_a_part_across_datasets_to_the_first_dataset():
    from minarch_core.book import tables
    claims = pd.DataFrame({"claim": ["a <claim>", "a <claim>", "b"], "paper": ["p", "p", "q"],
                           "part": ["x", "y", "z"], "text": ["1 & 2", "3", "4"], "verdict": ["agrees"] * 3,
                           "figure": ["regimes", "pruning", "method"], "dataset": ["cifar10", np.nan, None]})
    page = tables.claims(claims, "smoke", ["mnist", "cifar10"]).data
    assert re.findall(r"href='([^']+)'", page) == ["cifar10/regimes.html", "mnist/pruning.html", "method.html"]
    assert page.count("<b>a &lt;claim&gt;</b>") == 1 and "1 &amp; 2" in page and "(MNIST, CIFAR-10)" in page


def test_the_exported_models_read_as_downloads_one_per_model():
    from minarch_core.book import tables
    card = {"model": "CNN 4 ch", "sparsity": 0.9, "precision": "2", "recovery": "quantization-aware",
            "payload_bytes": 2648}
    page = tables.downloads([([0.63, 0.73], card, "../../figures/mnist/models/mnist-63.zip"),
                             ([0.78], {**card, "sparsity": 0.0, "precision": "float16"}, "x.zip")]).data
    assert re.findall(r"href='([^']+)'", page) == ["../../figures/mnist/models/mnist-63.zip", "x.zip"]
    assert "63%, 73%: " in page and "pruned to 90%, 2-bit, quantization-aware" in page and "2,648 bytes" in page
    assert "dense, float16" in page
    assert "no target was met" in tables.downloads([], "no target was met").data


def test_every_family_has_a_colour_of_its_own():
    scale = plots.family_color().to_dict()["scale"]
    assert scale["domain"] == [f.title for f in models.FAMILIES.values()]
    assert len(set(scale["range"])) == len(scale["domain"])  # two families in one colour read as one


def test_tables_show_families_and_datasets_by_title_and_an_empty_table_as_its_sentence():
    from minarch_core.book import tables
    frame = pd.DataFrame({"dataset": ["fashion_mnist", "all"], "family": ["convmlp", "dnn"], "runs": [3, 4]})
    page = tables.show(frame, None, "cost").data
    assert ">Fashion-MNIST<" in page and ">Conv+MLP<" in page and ">all<" in page and ">runs<" in page
    assert "fashion_mnist" not in page and "convmlp" not in page
    empty = tables.show(frame.iloc[:0], {"runs": ("runs", None)}, "cost", empty="The design added no run.").data
    assert empty == "<p>The design added no run.</p>"
    with pytest.raises(KeyError, match="columns \\['seeds'\\] are not in the table"):
        tables.show(frame, {"seeds": ("seeds", None)}, "cost")
