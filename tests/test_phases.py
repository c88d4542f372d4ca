"""The benchmarks' own arithmetic: the frontier chapter's "why" (what share of the matmul peak its target needs,
computed by benchmarks/phases.py and carried into benchmarks/latest.txt by benchmarks/speed.py), and the racing
benchmark's replay of stopping rules (benchmarks/racing.py)."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import phases  # noqa: E402
import speed  # noqa: E402


def test_the_target_needs_the_chapters_arithmetic_at_the_peak_within_its_time():
    seconds = {"dense evaluation": 200.0, "fine-tuning": 200.0}
    flops = {"dense evaluation": 180e9, "fine-tuning": 36e9}  # at 1 GFLOP/s: 90% and 18% of the peak
    line = phases.why(seconds, flops, peak=1e9, total=400.0)
    assert f"needs {216 / phases.CHAPTER_TARGET_S:.1%} of the matmul peak" in line  # 216 s of arithmetic
    assert "against 54.0% now" in line
    assert line.endswith("below that share: fine-tuning 18.0%")  # the dense evaluation already runs above it


def test_the_speed_benchmark_quotes_the_last_phases_run(tmp_path):
    out = tmp_path / "phases-latest.txt"
    out.write_text("minarch benchmarks/phases.py, 2026-12-01 18:20 UTC, commit abc1234, cifar10, 1 thread(s): 75 runs\n"
                   "  total  715.9 s\n  the target, 6 min on one core, needs 69% of the matmul peak\n")
    line = speed.phases_why(str(out))
    assert "cifar10, commit abc1234" in line
    assert line.endswith("the target, 6 min on one core, needs 69% of the matmul peak")
    assert "not measured" in speed.phases_why(str(tmp_path / "missing.txt"))


def test_the_speed_benchmark_reads_what_racing_saved_from_the_last_phases_run(tmp_path):
    out = tmp_path / "phases-latest.txt"
    out.write_text("minarch benchmarks/phases.py, 2026-12-04 14:40 UTC, commit abc1234, cifar10, 1 thread(s): 75 runs\n"
                   "  racing: 1,000 of the 2,120 validation image-evaluations that measuring every variant on the "
                   "whole split takes (2.12x fewer); 322 of 875 variants finished\n"
                   "  the target, 6 min on one core, needs 69% of the matmul peak\n")
    assert speed.racing_saving(str(out)) == 2.12
    assert speed.phases_why(str(out)).endswith("needs 69% of the matmul peak")  # the why stays the last line
    assert speed.racing_saving(str(tmp_path / "missing.txt")) is None


def test_the_racing_benchmark_replays_the_books_rule_and_bounds_it_by_the_oracle():
    import racing as bench  # benchmarks/racing.py
    n = 5000
    right = (torch.arange(n) % 10 != 0).float()  # 90% right
    p = torch.stack([right, right.clone(), (torch.arange(n) % 10 < 3).float()])  # a copy of it, and one at 30%
    sizes = np.array([10, 20, 30])
    measured, finished = bench.replay(sizes, p)
    assert measured.tolist() == [n, n, 200] and finished.tolist() == [True, True, False]  # a tie never separates
    measured, finished = bench.replay(sizes, p, oracle=True)  # the copy is off the Pareto set: larger, no better
    assert measured.tolist() == [n, 200, 200] and finished.tolist() == [True, False, False]
    assert bench.lost(sizes, p.mean(1).numpy(), finished) == 0.0
    assert bench.lost(sizes, p.mean(1).numpy(), np.array([False, True, True])) == pytest.approx(0.9)


def test_the_speed_benchmark_quotes_what_bounds_racing(tmp_path):
    out = tmp_path / "racing-latest.txt"
    out.write_text("minarch benchmarks/racing.py, 2026-12-04 23:20 UTC, commit abc1234, cifar10: 105 runs, 945 variants\n"
                   "  rule                                     fewer  finished  accuracy lost at a size\n"
                   "  the book's rule, tolerance 0              2.05x       365  0.00%\n"
                   "  ceiling: an oracle stops every variant    7.40x        94  0.00%\n"
                   "  94 of the 945 variants are on their family's whole-split Pareto set\n")
    line = speed.racing_why(str(out))
    assert "cifar10, commit abc1234" in line
    assert line.endswith("the book's rule, tolerance 0 2.05x (0.00%); ceiling: an oracle stops every variant 7.40x "
                         "(0.00%)")
    assert "not measured" in speed.racing_why(str(tmp_path / "missing.txt"))
