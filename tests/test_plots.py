import json

import numpy as np
import pandas as pd
import pytest

from minarch_core.book import plots


@pytest.fixture
def configs():
    rows = []
    for family, depth, width, params, acc, regime, shape in [
            ("dnn", 1, 1, 805, 0.2, "unstable", "equal"), ("dnn", 1, 100, 79510, 0.97, "learning", "equal"),
            ("dnn", 2, 10, 8070, 0.93, "learning", "increasing"), ("cnn", 1, 4, 27090, 0.95, "overfitting", None)]:
        rows.append(dict(dataset="mnist", family=family, config_id=f"{family}{depth}{width}", depth=depth, width=width,
                         widths=str(width), shape=shape, n_params=params, seeds=3, test_mean=acc, test_std=0.01,
                         test_min=acc - 0.02, test_max=acc + 0.01, train_mean=acc + 0.01, gap=0.01, failed_frac=0.0,
                         regime=regime))
    return pd.DataFrame(rows)


def spec(chart):
    return json.dumps(chart.to_dict())  # to_dict validates against the Vega-Lite schema


def test_workflow_and_design_figures(configs):
    minimal = pd.DataFrame({"dataset": ["mnist"] * 2, "family": ["dnn", "cnn"], "min_params": [8070, np.nan],
                            "ci_low": [805, np.nan], "ci_high": [8070, np.nan]})
    assert "cross-dataset summary" in spec(plots.workflow())
    assert '"hidden layers"' in spec(plots.phase1(configs))
    text = spec(plots.phase2(configs, minimal))
    assert "minimal parameters" in text and "square DNN" in text and "unstable" in text
    with_vit = pd.concat([configs, configs.iloc[[3]].assign(family="vit", config_id="vit1")], ignore_index=True)
    text = spec(plots.phase2(with_vit, minimal))
    assert '"ViT"' in text and '"VIT"' not in text  # each family named as in the other figures


def test_learning_curves():
    hist = pd.DataFrame({"run_id": ["a"] * 3 + ["b"] * 3, "epoch": [0, 1, 2] * 2, "train_loss": [2, 1, 0.5] * 2,
                         "val_loss": [2, 1.1, 0.9] * 2, "test_acc": [0.1, 0.8, 0.9] * 2})
    examples = pd.DataFrame({"run_id": ["a", "b"], "regime": ["learning", "unstable"], "label": ["L", "U"]})
    assert '"validation"' in spec(plots.learning_curves(hist, examples))


def test_pruning_quantization_and_summary_figures():
    curves = pd.DataFrame({"run_id": ["a"] * 3, "scope": "global", "sparsity": [0, 0.5, 0.9], "achieved": [0, 0.5, 0.9],
                           "test_acc": [0.97, 0.96, 0.5], "depth": 2, "width": 100, "widths": "100-100",
                           "n_params": 89610})
    assert "sparsity" in spec(plots.pruning_curves(curves))
    red = pd.DataFrame({"run_id": ["a"], "scope": ["global"], "dense_acc": [0.97], "redundancy": [0.6],
                        "collapse_at": [0.99], "dataset": ["mnist"], "family": ["dnn"], "depth": [2], "width": [100],
                        "n_params": [89610]})
    assert "Redundancy" in spec(plots.redundancy_bars(red))
    q = pd.DataFrame({"run_id": ["a"] * 3, "precision": ["float32", "8", "2"], "test_acc": [0.97, 0.97, 0.2],
                      "drop": [0, 0, 0.77], "size_bytes": [4, 1, 0.25], "scheme": "symmetric", "granularity": "tensor",
                      "family": "dnn", "depth": 2, "width": 100, "n_params": 89610})
    assert "weight precision" in spec(plots.quantization_curves(q))
    tol = pd.DataFrame({"dataset": ["mnist"], "depth": [2], "width": [100], "n_params": [89610], "min_bits": [4],
                        "drop_4bit": [0.004]})
    minimal = pd.DataFrame({"dataset": ["mnist"], "family": ["dnn"], "min_params": [4000], "ci_low": [2000],
                            "ci_high": [4000]})
    assert "Across datasets" in spec(plots.summary(minimal, red, tol))


def test_book_renderer_and_saved_files(tmp_path, configs):
    plots.use_renderer("book")
    try:
        html = plots._book_renderer(plots.phase1(configs).to_dict())["text/html"]
        assert "vegaEmbed(" in html and "<script>" in html and "cdn" not in html.lower()
    finally:
        plots.use_renderer("default")
    svg, png = plots.save(plots.phase1(configs), tmp_path / "fig" / "phase1")
    assert svg.read_text().startswith("<svg") and png.read_bytes()[:4] == b"\x89PNG"
