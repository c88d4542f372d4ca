"""What the quick book's verdicts rest on: how many claim parts it decides, what its design added, how stable each verdict
is over the regime thresholds' ranges. Reads a store where the quick book was built (make book); trains and computes
nothing new but the findings table, when what it reads changed.

    python benchmarks/findings.py [--results results]   (make findings writes benchmarks/findings-latest.txt)
"""
from __future__ import annotations

import argparse
import sys
import time

import pandas as pd

import common
from minarch_core.analyses import findings, tables
from minarch_core.engine import data, profiles
from minarch_core.engine.store import Store

TARGETS = {"claim parts undecided, quick book": 2, "design training, share of the quick profile's": 0.15}


def design_share(study: profiles.Profile, store: Store, datasets) -> tuple[float, list[str]]:
    """The training time the design's runs took, as a share of the study's own runs' (the datasets pooled), and one
    line per dataset."""
    lines, added, own = [], 0.0, 0.0
    for d in datasets:
        at = tables.Where(store, study, d)
        base = store.table(configs=study.configs(d)).time_s.sum()
        log = tables.designed(at)
        extra = store.table(configs=tables.design_.configs_of(log)).time_s.sum() if len(log) else 0.0
        lines.append(f"{data.spec(d).title}: {int(log.seeds.sum()) if len(log) else 0} runs added in "
                     f"{log['round'].max() if len(log) else 0} rounds, {extra:,.0f} s of training against the "
                     f"study's own {base:,.0f} s ({extra / base:.1%})")
        added, own = added + extra, own + base
    return added / own, lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", default=None, help="the run store (default: the project's results/)")
    args = parser.parse_args(argv)
    study, store, datasets = profiles.get("quick"), Store(args.results), tuple(data.by_difficulty())
    print(f"minarch benchmarks/findings.py, {time.strftime('%Y-%m-%d %H:%M %Z')}, commit {common.commit()}, "
          f"study {study.study_id}")
    share, lines = design_share(study, store, datasets)
    print("\n== the design ==\n" + "\n".join(lines))
    claims = tables.get("findings", tables.Where(store, study, datasets))
    paper = claims.paper != findings.PAPER["hybrids"]
    print("\n== verdicts ==")
    for name, rows in (("the paper's parts", claims[paper]), ("the hybrids' parts", claims[~paper]),
                       ("every part", claims)):
        counts = rows.verdict.value_counts().reindex(list(findings.VERDICTS), fill_value=0)
        print(f"{name:20s} " + ", ".join(f"{v} {counts[v]}" for v in findings.VERDICTS) + f" (of {len(rows)})")
    with pd.option_context("display.width", 250, "display.max_colwidth", 70, "display.max_rows", None):
        shown = claims.assign(held=[f"{s:.0f}/{n:.0f}" if n == n else "" for s, n in zip(claims.stable,
                                                                                        claims.settings)])
        print(shown[["part", "verdict", "held", "text"]].to_string(index=False))
    measured = {"claim parts undecided, quick book": int((claims.verdict == "undecided").sum()),
                "design training, share of the quick profile's": share}
    print("\n== targets ==")
    for label, target in TARGETS.items():
        value = measured[label]
        print(f"{label:46s} {value:8.2f} (target {target:g}): {'met' if value <= target else 'missed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
