"""The README's speed table is what the benchmarks printed, never typed by hand."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import report  # noqa: E402

from minarch_core.book import benchmarks  # noqa: E402


def test_the_speed_table_is_generated_from_the_benchmark_outputs():
    assert report.block(ROOT) in (ROOT / "README.md").read_text(), "run python benchmarks/report.py"


def test_the_targets_parser_reads_both_benchmarks_formats():
    text = ("header, 2026-11-26 17:46 UTC, commit abc1234\nmachine: x86_64, 2 cores\n== targets (worst) ==\n"
            "competent loop, quick sweep                  5.04 (target 3): met\n"
            "quick book from an empty store, min             - (target 20): not measured (build it)\n")
    rows = benchmarks.targets(text)
    assert [(r["label"], r["value"], r["target"], r["verdict"]) for r in rows] == [
        ("competent loop, quick sweep", "5.04", "3", "met"),
        ("quick book from an empty store, min", "-", "20", "not measured (build it)")]
    assert benchmarks.where(text) == "x86_64, 2026-11-26, commit abc1234"
