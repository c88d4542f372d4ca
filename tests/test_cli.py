import subprocess
import sys

import pytest

from minarch_core import cli
from minarch_core.engine import data


def test_sweep_prints_one_row_per_configuration(tmp_path, tiny_root, capsys):
    args = ["sweep", "--dataset", "mnist", "--profile", "smoke", "--family", "dnn", "--seeds", "2", "--epochs", "1",
            "--results", str(tmp_path), "--data", str(tiny_root), "--quiet", "--csv", str(tmp_path / "runs.csv")]
    assert cli.main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:4] == ["dataset", "family", "model", "depth"]
    assert len(lines) == 1 + 6  # smoke: 3 widths x 2 depths, seeds pooled
    assert len((tmp_path / "runs.csv").read_text().strip().splitlines()) == 1 + 12
    assert cli.main(args[:-2] + ["--dry-run"]) == 0
    assert "12 runs, 0 not yet in" in capsys.readouterr().out
    assert cli.main(args[:-2] + ["--dry-run", "--train-precision", "fp32"]) == 0  # fp32: the same runs
    assert "12 runs, 0 not yet in" in capsys.readouterr().out
    assert cli.main(args[:-2] + ["--dry-run", "--train-precision", "bf16"]) == 0  # bf16: runs of their own
    assert "12 runs, 12 not yet in" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(args[:-2] + ["--train-precision", "fp16"])
    assert "invalid choice: 'fp16' (choose from 'fp32', 'bf16')" in capsys.readouterr().err


@pytest.mark.subprocess
def test_help_documents_every_option():
    out = subprocess.run([sys.executable, "-m", "minarch_core.cli", "sweep", "--help"], capture_output=True,
                         text=True, check=True).stdout
    sweep_parser = cli.build_parser()._subparsers._group_actions[0].choices["sweep"]
    options = [a for a in sweep_parser._actions if a.option_strings and a.dest != "help"]
    assert len(options) > 10
    for action in options:
        assert action.help and action.option_strings[0] in out, f"{action.option_strings[0]} is not documented"


def test_bad_input_is_an_error_message_not_a_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(data, "network_available", lambda: False)
    assert cli.main(["sweep", "--dataset", "mnist", "--profile", "smoke", "--data", str(tmp_path / "empty"),
                     "--results", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minarch: error: dataset 'mnist' is missing from the data root") and "Traceback" not in err
    with pytest.raises(SystemExit):
        cli.main(["sweep", "--dataset", "mnist", "--profile", "enormous"])
    assert "invalid choice: 'enormous'" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["sweep", "--seeds", "-2"], "argument --seeds: the value of 'seeds' must be an integer in 1..1,000 or None"),
    (["sweep", "--seeds", "0"], "'seeds' must be an integer in 1..1,000"),
    (["sweep", "--epochs", "0"], "'epochs' must be an integer in 1..10,000"),
    (["sweep", "--epochs", "2.5"], "got '2.5'"),
    (["sweep", "--train-per-class", "-5"], "'train_per_class' must be an integer in 1..1,000,000"),
    (["sweep", "--executor", "process", "--workers", "0"], "'workers' must be an integer in 1..256"),
    (["book", "--workers", "-1"], "'workers' must be an integer in 1..256"),
])
def test_a_bad_number_on_the_command_line_is_named_and_nothing_is_written(tmp_path, capsys, argv, message):
    results = tmp_path / "results"
    dataset = ["--dataset", "mnist"] if argv[0] == "sweep" else []
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv + dataset + ["--profile", "smoke", "--results", str(results)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not results.exists()


@pytest.mark.parametrize("parameter, message", [
    (["-p", "seeds", "0"], "parameter 'seeds' must be an integer in 1..1,000 or None"),
    (["-p", "workers", "-4"], "parameter 'workers' must be an integer in 1..256"),
    (["-p", "colour", "blue"], "chapter 'sweep' takes no parameter 'colour'"),
])
def test_a_bad_chapter_parameter_is_refused_before_papermill_starts(tmp_path, capsys, parameter, message):
    out = tmp_path / "out.ipynb"
    assert cli.main(["chapter", "sweep", "--profile", "smoke", "--output", str(out), *parameter]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_book_level_chapters_take_their_own_parameters(monkeypatch, tmp_path):
    from minarch_core.book import pipeline
    seen = {}
    monkeypatch.setattr(pipeline, "execute", lambda name, output, params, log: seen.update({name: params}) or 0.0)
    assert cli.main(["chapter", "findings", "-p", "datasets", "mnist", "--output", str(tmp_path / "f.ipynb")]) == 0
    assert cli.main(["chapter", "reproducing", "--output", str(tmp_path / "r.ipynb")]) == 0
    assert cli.main(["chapter", "pruning", "--dataset", "cifar10", "--output", str(tmp_path / "p.ipynb")]) == 0
    assert seen == {"findings": {"profile": "quick", "datasets": "mnist"}, "reproducing": {},
                    "pruning": {"profile": "quick", "dataset": "cifar10"}}


def test_recommend_s_miss_exits_1_and_says_how_to_search_further(monkeypatch, capsys):
    from test_frontier import hand_table
    from minarch_core.analyses import frontier
    monkeypatch.setattr(cli.tables, "recommend", lambda at, target, *a, **k: frontier.recommend(hand_table(), target))
    code = cli.main(["recommend", "--dataset", "mnist", "--min-accuracy", "0.995"])
    out = " ".join(capsys.readouterr().out.split())  # unwrapped, as the terminal wraps it
    assert code == 1 and "no stored variant's own 90% lower bound reaches 99.5% on mnist" in out
    assert "Closest miss:" in out and "validation lower bound 99.00%" in out
    assert "to search further, train larger models or more seeds: minarch sweep --dataset mnist --profile paper " \
           "--family" in out and "reproduce: minarch recommend --dataset mnist --profile quick" in out
