"""Taking the smallest model home: the exported files compute what the book measured, and bad files are refused."""
import copy
import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from scipy import stats

from conftest import real_mnist

from minarch_core import cli, packed
from minarch_core.analyses import export, frontier, tables
from minarch_core.analyses.common import run_columns
from minarch_core.analyses.grids import precision_of
from minarch_core.analyses.quantization import quantize_model
from minarch_core.engine import models, profiles, sweep, train
from minarch_core.engine.compression import DEFAULT
from minarch_core.engine.config import RunConfig
from minarch_core.engine.store import Store

FLIPS = 2  # test images on which onnxruntime's prediction may differ from torch's (float sums in another order)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_root):
    """A store holding only the training runs of a small study of every family (two seeds) on synthetic data."""
    study = profiles.get("smoke").replace(seeds=2, epochs=8, train_per_class=300, val_per_class=20, grids={
        "dnn": profiles.square((16,), (1,)), "cnn": profiles.Grid("cnn", (2,)),
        "vit": profiles.Grid("vit", (16,), {"depth": 1, "heads": 2}), "convmlp": profiles.Grid("convmlp", (4,)),
        "convvit": profiles.Grid("convvit", (32,))})  # each learns the task: in the frontier
    assert {g.family for g in study.grids.values()} == set(models.FAMILIES), "a family the export tests miss"
    store = Store(tmp_path_factory.mktemp("export") / "results")
    sweep.run(study.configs("mnist"), store, data_root=tiny_root, device="cpu", progress=False)
    return tables.Where(store, study, "mnist", "cpu", tiny_root)


def session(path):
    """onnxruntime as the card says to run it: without folding DequantizeLinear into integer kernels (which
    would also round the activations)."""
    options = ort.SessionOptions()
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    return ort.InferenceSession(str(path), options)


@pytest.mark.slow
@pytest.mark.parametrize("family", list(models.FAMILIES))
def test_an_exported_variant_computes_what_the_book_measured(trained, tmp_path, family):
    done, answer = export.export(trained, 0.2, tmp_path / family, family=family)
    assert answer.met and {f.name for f in done.folder.iterdir()} == set(export.FILES)
    card = json.loads((done.folder / "card.json").read_text())
    table = tables.get("frontier", trained)
    chosen = np.logical_and.reduce([(table[k] == answer.row[k]).to_numpy() for k in frontier.KEYS])
    seeds = table[chosen].sort_values("val_acc", ignore_index=True)
    row = seeds.iloc[(len(seeds) - 1) // 2]  # the lower median on validation
    assert card["run_id"] == row.run_id == export.seed_of(table, answer.row).run_id
    assert card["payload_bytes"] == row.size_bytes
    assert card["file_bytes"] == (done.folder / "model.minarch").stat().st_size > card["payload_bytes"]
    run, model = export.weights(trained, row)
    ours = quantize_model(copy.deepcopy(model), precision_of(card["precision"]), card["scheme"],
                          card["granularity"]).eval()
    header, arrays, _ = packed.read(done.folder / "model.minarch")
    assert all(np.array_equal(arrays[n], p.detach().numpy()) for n, p in ours.named_parameters())  # bit for bit
    test = train.load_data(run.config, "cpu", trained.data_root).test
    with torch.inference_mode():
        mine = ours(test.x).argmax(1).numpy()
    theirs = session(done.folder / "model.onnx").run(None, {"image": test.x.numpy()})[0].argmax(1)
    assert (mine != theirs).sum() <= FLIPS
    assert abs((theirs == test.y.numpy()).mean() - card["test_accuracy"]) <= FLIPS / len(test.y)
    assert card["test_images"] == len(test.y)  # Clopper-Pearson over the images the accuracy was measured on
    exact = stats.binomtest(round(card["test_accuracy"] * len(test.y)), len(test.y)).proportion_ci(0.95, "exact")
    assert card["test_interval"] == pytest.approx([exact.low, exact.high])
    assert card["test_interval"][0] <= card["test_accuracy"] <= card["test_interval"][1]
    assert f"Clopper-Pearson interval over the test split's {len(test.y):,} images" in export.card_text(card)
    if family in packed.FORWARD:
        assert (packed.forward(header, arrays, test.x.numpy()).argmax(1) != mine).sum() <= FLIPS


@pytest.mark.slow
def test_inspect_reads_a_file_and_refuses_a_truncated_a_foreign_and_a_future_one(trained, tmp_path, capsys):
    done, _ = export.export(trained, 0.2, tmp_path / "m", family="dnn")
    path = done.folder / "model.minarch"
    assert cli.main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    header, _, _ = packed.read(path)
    assert f"payload {done.card['payload_bytes']:,} bytes" in out
    assert all(t["name"] in out for t in header["tensors"]) and any(f" {k} " in out for k in packed.LAYOUTS)
    good = path.read_bytes()
    for name, blob, message in (
            ("truncated", good[:-3], "corrupt: its checksum does not match .* \\(truncated, extended or altered"),
            ("header cut", good[:packed.PREAMBLE.size + 5], "truncated: its header needs"),
            ("magic", b"X" + good[1:], "not a .minarch file"),
            ("future", good[:8] + (packed.FORMAT_VERSION + 1).to_bytes(2, "little") + good[10:], "format version"),
            ("longer", good + b"\0", "corrupt: its checksum")):
        bad = tmp_path / f"{name}.minarch"
        bad.write_bytes(blob)
        with pytest.raises(packed.FormatError, match=message):
            packed.read(bad)
        assert cli.main(["inspect", str(bad)]) == 2 and "cannot read" in capsys.readouterr().err


@pytest.mark.slow
def test_export_writes_nothing_for_an_unreached_target_and_keeps_a_full_folder(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli.profiles, "study", lambda *a, **k: trained.study)  # the CLI's study: the small one
    args = ["export", "--dataset", "mnist", "--results", str(trained.store.root), "--data", str(trained.data_root),
            "--device", "cpu"]
    smallest = int(frontier.summarise(tables.get("frontier", trained)).size_bytes.min())  # learns less than all
    assert cli.main([*args, "--min-accuracy", "1.0", "--max-bytes", str(smallest), "--out",
                     str(tmp_path / "none")]) == 1
    assert "nothing written" in capsys.readouterr().out and not (tmp_path / "none").exists()
    full = tmp_path / "full"
    full.mkdir()
    (full / "mine.txt").write_text("keep me")
    assert cli.main([*args, "--min-accuracy", "0.2", "--out", str(full)]) == 2
    assert "--force" in capsys.readouterr().err and sorted(p.name for p in full.iterdir()) == ["mine.txt"]
    assert cli.main([*args, "--min-accuracy", "0.2", "--out", str(full), "--force"]) == 0
    assert {p.name for p in full.iterdir()} == {"mine.txt", *export.FILES}


@real_mnist
@pytest.mark.parametrize("family, arch", [("dnn", {"widths": [64]}), ("cnn", {"channels": 4})])
def test_a_real_mnist_model_exports_and_predicts_as_the_project(tmp_path, family, arch):
    """A trained model on the real MNIST test split, pruned to 90 % and rounded to 4 bits: onnxruntime and the numpy
    forward pass predict as the project on all but ``FLIPS`` of its 10,000 images."""
    store = Store(tmp_path / "real")
    cfg = RunConfig("mnist", family, arch, epochs=2, train_per_class=200)
    sweep.run([cfg], store, device="cpu", progress=False)
    run = store.get(cfg)
    rows = frontier.variants(run, DEFAULT.frontier.only(sparsities=(0.9,), precisions=(4,)), device="cpu")
    rows = rows.assign(**run_columns(run))
    rows = frontier.complete(rows, store, rows, device="cpu", progress=False)
    at = tables.Where(store, profiles.get("quick"), "mnist", "cpu", None)
    done = export.write(at, rows.iloc[0], frontier.summarise(rows).iloc[0], tmp_path / "out")
    assert done.card["payload_bytes"] == rows.size_bytes.iloc[0] and done.card["seeds"]["test_interval"] == [None] * 2
    test = train.load_data(cfg, "cpu").test
    header, arrays, _ = packed.read(done.folder / "model.minarch")
    onnx = session(done.folder / "model.onnx").run(None, {"image": test.x.numpy()})[0].argmax(1)
    numpy = packed.forward(header, arrays, test.x.numpy()).argmax(1)
    _, model = export.weights(at, rows.iloc[0])
    with torch.inference_mode():
        ours = quantize_model(model, 4, "symmetric", "channel").eval()(test.x).argmax(1).numpy()
    assert (onnx != ours).sum() <= FLIPS and (numpy != ours).sum() <= FLIPS
    assert (ours == test.y.numpy()).mean() == pytest.approx(rows.test_acc.iloc[0], abs=1e-12)


@pytest.mark.parametrize("precision", ["float32", "float16", "bfloat16", 12, 8, 4, 2])
@pytest.mark.parametrize("scheme, granularity", [("symmetric", "tensor"), ("asymmetric", "channel")])
def test_every_precision_and_scheme_exports_its_own_graph_and_computes_what_the_project_does(precision, scheme,
                                                                                             granularity):
    """Each weight of a half-pruned DNN stored as the precision says: float32 values; a float16 or bfloat16
    initialiser and a Cast; at 8 bits or fewer int8 (symmetric) or uint8 (asymmetric) codes, a scale and a zero point
    (per output channel or per tensor) feeding a DequantizeLinear; above 8 bits the rounded float32 values. Pruned
    weights stay exact zeros, and onnxruntime computes the project's rounded model."""
    import onnx
    from onnx import numpy_helper
    torch.manual_seed(0)
    model = models.build("dnn", {"widths": [12, 12]}, (1, 28, 28), 10).eval()
    export.pruning.make_permanent(export.pruning.prune_to(model, 0.5))
    graph = onnx.load_from_string(export.to_onnx(model, precision, scheme, granularity, (1, 28, 28)))
    inits = {i.name: i for i in graph.graph.initializer}
    ops = [n.op_type for n in graph.graph.node]
    weights = [n for n, p in model.named_parameters() if n.endswith("weight")]
    if precision == "float32":
        assert all(inits[w].data_type == onnx.TensorProto.FLOAT for w in weights) and "Cast" not in ops
        values = {w: numpy_helper.to_array(inits[w]) for w in weights}
    elif precision in ("float16", "bfloat16"):
        kind = onnx.TensorProto.FLOAT16 if precision == "float16" else onnx.TensorProto.BFLOAT16
        assert all(inits[f"{w}::{precision}"].data_type == kind for w in weights) and ops.count("Cast") == len(weights)
        bits = {w: np.frombuffer(inits[f"{w}::{precision}"].raw_data, np.uint16) for w in weights}
        values = {w: b.view(np.float16) if precision == "float16" else (b.astype(np.uint32) << 16).view(np.float32)
                  for w, b in bits.items()}  # a pruned negative weight is -0.0: an exact zero still
    elif precision <= 8:
        dtype = onnx.TensorProto.UINT8 if scheme == "asymmetric" else onnx.TensorProto.INT8
        assert all(inits[f"{w}::codes"].data_type == dtype for w in weights)
        assert ops.count("DequantizeLinear") == len(weights)
        axes = [a.i for n in graph.graph.node if n.op_type == "DequantizeLinear" for a in n.attribute if a.name == "axis"]
        assert axes == ([0] * len(weights) if granularity == "channel" else [])
        values = {}
        for w in weights:
            codes = numpy_helper.to_array(inits[f"{w}::codes"]).astype(np.int32)
            zero = numpy_helper.to_array(inits[f"{w}::zero"]).astype(np.int32)
            values[w] = codes - (zero.reshape(-1, 1) if zero.ndim else zero)  # zero where the weight is zero
    else:
        assert "DequantizeLinear" not in ops and "Cast" not in ops
        values = {w: numpy_helper.to_array(inits[w]) for w in weights}
    zeros = 0
    for w in weights:
        pruned = (dict(model.named_parameters())[w].detach().numpy() == 0).reshape(values[w].shape)
        assert pruned.any() and (values[w][pruned] == 0).all()  # pruned weights stay exact zeros
        zeros += pruned.sum()
    assert zeros / sum(values[w].size for w in weights) == pytest.approx(0.5, abs=0.01)  # global: half of them
    x = torch.randn(16, 1, 28, 28)
    with torch.inference_mode():
        ours = quantize_model(copy.deepcopy(model), precision_of(str(precision)), scheme, granularity).eval()(x)
    path = f"/tmp/minarch-export-{precision}-{scheme}.onnx"
    with open(path, "wb") as f:
        f.write(graph.SerializeToString())
    theirs = session(path).run(None, {"image": x.numpy()})[0]
    assert np.allclose(theirs, ours.numpy(), atol=1e-4)
