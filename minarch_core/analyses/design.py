"""Runs where a verdict is open: a sequential design over each family's own knob.

Once a study's grid is trained on a dataset, each round reads every stored run of the study there (the grid's and
those earlier rounds added), fits each family's dose-response (``regimes.minimal_params``) and, for every family whose
minimal size is not settled (its interval wider than ``Design.target`` times), proposes

- **new knob values** (hidden width at every depth of the family's square networks, channels, embedding width)
  between two trained ones, bisecting geometrically the widest gaps that the interval spans, and
- **more seeds** at the trained configurations where the fitted probability of learning lies inside ``Design.band``
  (the outcomes there are the most uncertain),

the widest interval's family first, while the design's training stays within ``Design.budget`` of the training time
the store records for the study's own runs on the dataset (a run priced at what its family's own runs of about its
size took there). A family whose every seed learns (its minimal size a bound below its smallest
member, as the CNN's one channel on MNIST) is out of its range: no run of the family can settle it, so none is added.
The added runs are ordinary runs of the store. The next points are a function of what is stored: replaying the design
on a store that holds its runs trains nothing, and an interrupted design resumes where it stopped.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..engine import models, sweep
from ..engine.config import RunConfig
from ..engine.errors import MinarchError
from ..engine.profiles import Profile
from ..engine.store import Store
from . import dose, regimes
from .common import square

LOG = ["round", "family", "model", "n_params", "seeds", "why", "config"]
KNOBS = {"widths": "hidden width", "channels": "channel count", "dim": "embedding width"}


@dataclass(frozen=True)
class Plan:
    """What the design has chosen so far on one dataset: every added run in order, those the store lacks (train
    them, then plan again), and one log row per added configuration (its round, family, model, size, seeds and why:
    the book's table; ``config`` holds the run's settings as JSON)."""
    added: list
    missing: list
    log: pd.DataFrame


def plan(study: Profile, dataset: str, store: Store) -> Plan:
    """Replay the study's design on ``dataset`` from what ``store`` holds (nothing is trained here; the study's own
    runs must be stored)."""
    design, base = study.design, study.configs(dataset)
    if design is None:
        return Plan([], [], pd.DataFrame(columns=LOG))
    table = store.table(configs=base)
    cost = lambda cfgs: sum(_seconds(table, c) for c in cfgs)  # noqa: E731
    budget = design.budget * table.time_s.sum()
    added, log, spent = [], [], 0.0
    for round_ in range(1, design.rounds + 1):
        missing = [c for c in added if not store.path(c).exists()]
        if missing:
            return Plan(added, missing, pd.DataFrame(log, columns=LOG))
        configs = base + added
        features = regimes.run_features(store.table(configs=configs), store.histories(configs=configs))
        minimal = regimes.minimal_params(features)
        known = {c.run_id for c in configs}
        chosen = []
        for _, row in minimal.assign(open=_openness(minimal)).sort_values(
                ["open", "family"], ascending=[False, True]).iterrows():
            for cfgs, why in _propose(row, features, study, dataset, design):
                cfgs = [c for c in cfgs if c.run_id not in known]
                seconds = cost(cfgs)
                if not cfgs or spent + seconds > budget:
                    continue
                spent += seconds
                known.update(c.run_id for c in cfgs)
                chosen += cfgs
                first = cfgs[0]
                log.append({"round": round_, "family": first.family,
                            "model": models.describe(first.family, first.arch)["model"],
                            "n_params": sweep.footprint(first).params, "seeds": len(cfgs), "why": why,
                            "config": json.dumps([c.to_dict() for c in cfgs], sort_keys=True)})
        if not chosen:
            break
        added += chosen
    return Plan(added, [c for c in added if not store.path(c).exists()], pd.DataFrame(log, columns=LOG))


def train(study: Profile, datasets, store: Store, run) -> tuple[int, int]:
    """Every round of the design on every dataset (after the study's own runs), ``run`` (a list of RunConfigs ->
    trained and stored, e.g. a ``sweep.run`` partial) training each round's runs of all datasets together; returns
    (runs trained now, runs the design holds)."""
    trained = 0
    while True:
        plans = [plan(study, d, store) for d in datasets]
        missing = [c for p in plans for c in p.missing]
        if not missing:
            return trained, sum(len(p.added) for p in plans)
        print(f"the design adds {len(missing)} runs where a minimal size is still open", flush=True)
        run(missing)
        trained += len(missing)


def _seconds(table: pd.DataFrame, cfg: RunConfig) -> float:
    """What training ``cfg`` costs, priced by the study's own runs of its family: their mean time per configuration,
    interpolated in log parameters (small networks train far below the machine's peak, so FLOPs alone would
    underprice them)."""
    own = table[table.family == cfg.family].groupby("n_params").time_s.mean()
    return float(np.interp(np.log(sweep.footprint(cfg).params), np.log(own.index.to_numpy(float)), own.to_numpy()))


def _openness(minimal: pd.DataFrame) -> pd.Series:
    """How open each minimal size is: its interval's high / low ratio (inf when an end is open)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (minimal.ci_high / minimal.ci_low).fillna(np.inf).where(minimal.bound != "at most", 0.0)


def _propose(row, features: pd.DataFrame, study: Profile, dataset: str, design) -> list[tuple[list, str]]:
    """The proposals for one family: (runs, why) pairs, most useful first."""
    if row.bound == "at most" and row.learned == row.seeds:
        return []  # out of the family's range: its smallest member already learns
    if np.isnan(row.fitted) or (row.bound == "exact" and row.ci_high / row.ci_low <= design.target):
        return []  # no crossing to place, or settled
    lo, hi = max(row.ci_low, row.smallest), min(row.ci_high, row.largest)
    f = square(features[features.family == row.family])
    trained = f.groupby("config_id").agg(width=("width", "first"), depth=("depth", "first"),
                                         n_params=("n_params", "first"), top=("seed", "max"))
    gaps = []
    for depth, g in trained.sort_values("width").groupby("depth"):
        for (_, a), (_, b) in zip(g.iterrows(), g.iloc[1:].iterrows()):
            overlap = np.log(min(b.n_params, hi) / max(a.n_params, lo))  # of the gap and the interval
            if overlap > 0 and b.width - a.width > 1:
                gaps.append((overlap, depth, a.width, b.width))
    out = []
    for _, depth, a, b in sorted(gaps, reverse=True)[:design.points]:
        cfgs = _between(study, dataset, row.family, int(depth), int(a), int(b))
        if cfgs:
            high = "beyond the grid" if np.isinf(row.ci_high) else f"{row.ci_high:,.0f}"
            out.append((cfgs, f"a {KNOBS[models.family(row.family).knob]} between {a} and {b}: the minimal size's "
                              f"interval ({row.ci_low:,.0f} to {high} parameters) spans the gap"))
    level = np.log10(trained.n_params.to_numpy(float))
    p = dose.probability(level, np.log10(row.fitted), row.slope, row.level)
    uncertain = trained.assign(p=p)[(p >= design.band[0]) & (p <= design.band[1])]
    for cid, c in uncertain.iloc[np.argsort(np.abs(uncertain.p - 0.5).to_numpy())][:design.points].iterrows():
        arch = f[f.config_id == cid].iloc[0]
        seeds = range(int(c.top) + 1, int(c.top) + 1 + study.seeds)
        out.append(([_config(study, dataset, row.family, arch, s) for s in seeds],
                     f"more seeds where a seed learns with probability {c.p:.0%}"))
    return out


def _between(study, dataset, family, depth, a, b) -> list:
    """The runs (every seed) of the valid knob value nearest the geometric middle of ``a`` and ``b``."""
    middle = np.sqrt(a * b)
    for k in sorted(range(a + 1, b), key=lambda k: (abs(np.log(k / middle)), k)):
        arch = {"widths": [k] * depth} if models.family(family).shaped else {models.family(family).knob: k,
                                                                              **_fixed(study, family)}
        try:
            return [study.config(dataset, family, arch, seed) for seed in range(study.seeds)]
        except MinarchError:
            continue  # a value the family refuses (an embedding width its heads do not divide)
    return []


def _config(study, dataset, family, run_row, seed) -> RunConfig:
    """Another seed of the configuration of a run (its row in the runs table)."""
    fam = models.family(family)
    if fam.shaped:
        arch = {"widths": [int(w) for w in str(run_row.widths).split("-")]}
    else:
        arch = {fam.knob: int(run_row.width), **_fixed(study, family)}
    return study.config(dataset, family, arch, seed)


def _fixed(study, family) -> dict:
    return next(g.fixed for g in study.grids.values() if g.family == family)


def configs_of(log: pd.DataFrame) -> list[RunConfig]:
    """The runs a design's log added, in order."""
    return [RunConfig.from_dict(d) for text in log.config for d in json.loads(text)]
