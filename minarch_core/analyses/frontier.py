"""The compression frontier: the smallest model, in bytes, that reaches an accuracy, and how sure that is.

A **variant** is a trained model pruned (one-shot, global L1 magnitude over its family's weight layers) to a sparsity
of the compression grid's ``frontier`` slice (``engine.compression``), its surviving weights then rounded to one of
its precisions (on the slice's one integer grid, symmetric per output channel by default, or a float cast; pruned
weights stay exactly zero, since every grid keeps 0 at 0). Its size is the byte count of ``encoding.encode``
(headers, scales and the cheaper of dense and sparse layouts, per tensor). Its accuracy is measured in two stages.
First the validation split, which all choosing reads, **raced** (``race``, rule and guarantee in ``racing``): within
each family, a variant stops being measured once a no-larger variant is proven more accurate on the images measured
so far, so only variants that could be on the frontier are measured on the whole split (``variants`` measures every
one on it, the reference the tests hold racing to). Then, by ``complete``, the whole test split for the variants the
book reports (``reported``) and for any that ``ask`` chooses later. A variant's test accuracy is the same number
either way, so skipping it for the variants nobody reports changes no answer.

Choices: the frontier is drawn from the stable configurations (regime learning or overfitting) of every family
(``models.FAMILIES``; of the DNNs, the square ones), the grid's ``seeds`` seeds each. ``recommend`` chooses on the
**validation** split, by a one-sided Student-t lower bound on the seeds' mean accuracy at the asked confidence, among
the variants racing let finish, and reports the **test** split: choosing on test accuracy would flatter every
answer.
"""
from __future__ import annotations

import copy
import textwrap
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import stats
from tqdm import tqdm

from ..engine import data, models, train
from ..engine.errors import ConfigError
from ..engine.params import Param
from ..engine.store import Run
from ..engine.compression import DEFAULT, Compression, Slice
from . import encoding, pruning, quantization, racing, recovery
from .common import chance, run_columns, score, square
from .grids import FLOATS, bits_of, precision_of
from .regimes import LEARNS, THRESHOLDS

ASK = {
    "min_accuracy": Param("min_accuracy", float, None, "the accuracy to reach (a fraction)", 0.0, 1.0),
    "confidence": Param("confidence", float, 0.9, "one-sided confidence over seeds", 0.5, 0.999),
    "max_bytes": Param("max_bytes", int, None, "largest stored size in bytes", 1, 10**12, optional=True),
}
KEYS = ["dataset", "config_id", "method", "sparsity", "precision"]
WIDTH = 84  # characters per line of recommend's answer (a page's text column fits 86)


def pairs(grid: Slice) -> list[tuple]:
    """Every (sparsity, precision) of a slice of the compression grid."""
    return [(s, p) for s in grid.sparsities for p in grid.precisions]


def compressed(fresh, pairs_, setting):
    """The (sparsity, precision) variants of a trained model in ``pairs_`` on the integer grid ``setting`` (scheme,
    granularity), ``fresh()`` returning a new copy of it: yields (sparsity, precision, the pruned float model, the
    variant's state dict). The model is pruned once per sparsity."""
    pruned = {}
    for sparsity, precision in pairs_:
        if sparsity not in pruned:
            pruned[sparsity] = pruning.make_permanent(pruning.prune_to(fresh(), sparsity))
        quantized = quantization.quantize_model(copy.deepcopy(pruned[sparsity]), precision, *setting)
        yield sparsity, precision, pruned[sparsity], quantized.state_dict()


def variants(run: Run, grid: Slice = DEFAULT.frontier, device=None, data_root=None) -> pd.DataFrame:
    """One row per (sparsity, precision) of ``grid`` of ``run``'s model: achieved sparsity, stored bytes, and the
    loss and accuracy on the whole validation split; the test split's columns are NaN until ``complete`` measures
    them. Every variant measured whole: what ``race`` is held to."""
    dataset = train.load_data(run.config, device, data_root)
    rows, states = _built(run, dataset, grid)
    measured = score(rows, run.model(dataset), states, {"val": dataset.val}, train.LOSSES[run.config.loss])
    return pd.DataFrame(measured).assign(test_loss=np.nan, test_acc=np.nan)


def _built(run: Run, dataset, grid: Slice) -> tuple[list[dict], list[dict]]:
    """Every variant of ``grid`` of ``run``'s model: its row (what it is, its bytes; not yet measured) and its
    weights."""
    (scheme, granularity), dense_bytes = grid.settings[0], encoding.size(run.model(dataset))
    rows, states = [], []
    for sparsity, precision, pruned, state in compressed(lambda: run.model(dataset), pairs(grid), grid.settings[0]):
        states.append(state)
        rows.append({"run_id": run.run_id, "method": "post-training", "sparsity": sparsity,
                     "achieved": pruning.sparsity_of(pruned), "precision": str(precision),
                     "bits": bits_of(precision), "scheme": scheme, "granularity": granularity,
                     "size_bytes": encoding.size(pruned, precision, scheme=scheme, granularity=granularity),
                     "dense_bytes": dense_bytes})
    return rows, states


def race(runs: list[Run], grid: Slice = DEFAULT.frontier, tolerance: float = racing.TOLERANCE, device=None,
         data_root=None, progress: bool = True) -> pd.DataFrame:
    """``variants`` of every run, with each run's dataset, seed and architecture columns, raced within each family
    (``racing``): a variant stops being measured once a no-larger variant of its family is proven more accurate on
    the validation images measured so far. ``val_images`` says how many images each row's validation columns
    were measured on; ``finished`` rows, the whole split, exactly as ``variants`` measures them."""
    families = {}
    for run in runs:
        families.setdefault(run.config.family, []).append(run)
    if not families:
        raise ConfigError("no stable trained model to compress: sweep the dataset first (minarch sweep)")
    with tqdm(total=0, desc="frontier, racing", unit="model-stage", disable=not progress) as bar:
        return pd.concat([_race(members, grid, tolerance, device, data_root, bar) for members in families.values()],
                         ignore_index=True)


RACE_CACHE_BYTES = 1 << 30  # the variants' weights kept between stages; beyond it, a run's are rebuilt per stage


def _race(runs: list[Run], grid: Slice, tolerance: float, device, data_root, bar) -> pd.DataFrame:
    """``race`` of one family's runs (one dataset)."""
    dataset = train.load_data(runs[0].config, device, data_root)
    loss_fn, n = train.LOSSES[runs[0].config.loss], len(dataset.val)
    bar.total += len(runs) * len(racing.stages(n))
    bar.refresh()
    rows, weights, cached = [], [], 0  # rows[r][j]: run r's variant j (of ``pairs(grid)``)
    for run in runs:  # every variant once: its row, and its weights while they fit the cache
        mine, states = _built(run, dataset, grid)
        rows.append([{**row, **run_columns(run)} for row in mine])
        size = 4 * models.n_params(run.model(dataset)) * len(states)
        weights.append(states if cached + size <= RACE_CACHE_BYTES else None)
        cached += size if weights[-1] is not None else 0
    keys = {}  # a variant: one configuration's seeds at one (sparsity, precision)
    for r, mine in enumerate(rows):
        for j, row in enumerate(mine):
            keys.setdefault((row["config_id"], row["sparsity"], row["precision"]), []).append((r, j))
    groups = list(keys.values())
    group_of = {member: g for g, members in enumerate(groups) for member in members}
    sizes = np.array([max(rows[r][j]["size_bytes"] for r, j in members) for members in groups])
    racing_, measured = np.ones(len(groups), dtype=bool), np.zeros(len(groups), dtype=int)
    loss_sums, right = {}, {member: [] for member in group_of}
    order, start = racing.order(n).to(dataset.val.x.device), 0
    for end in racing.stages(n):
        split = data.Split(dataset.val.x[order[start:end]], dataset.val.y[order[start:end]])
        for r, run in enumerate(runs):
            js = [j for j in range(len(rows[r])) if racing_[group_of[r, j]]]
            if js:
                states = [weights[r][j] for j in js] if weights[r] is not None else \
                    [s for *_, s in compressed(lambda: run.model(dataset), [pairs(grid)[j] for j in js],
                                               grid.settings[0])]
                for j, loss_sum, hit in zip(js, *train.hits(run.model(dataset), states, split, loss_fn)):
                    loss_sums[r, j] = loss_sums.get((r, j), 0.0) + loss_sum
                    right[r, j].append(hit)
            bar.update(1)
        measured[racing_], start = end, end
        if end < n:  # the test, on every image measured so far
            active = np.flatnonzero(racing_)
            p = torch.stack([torch.stack([torch.cat(right[m]) for m in groups[g]]).float().mean(0) for g in active])
            racing_[active[racing.stopped(p, sizes[active], n, len(groups), tolerance)]] = False
    out = []
    for r, mine in enumerate(rows):
        for j, row in enumerate(mine):
            images = int(measured[group_of[r, j]])
            out.append({**row, "val_images": images, "finished": images == n, "val_loss": loss_sums[r, j] / images,
                        "val_acc": torch.cat(right[r, j]).sum().item() / images, "test_loss": np.nan,
                        "test_acc": np.nan})
    return pd.DataFrame(out)


def reported(table: pd.DataFrame) -> pd.DataFrame:
    """The variants (``KEYS``) whose whole-test accuracy the book reports: every family's Pareto set (the frontier
    across families is part of it), the answers to each dataset's ``targets``, and the post-training side of the
    recovery comparison (``recovery.compared``). All are chosen on validation, so none depends on the test split."""
    summary = summarise(table)
    parts = [pareto(summary), recovery.compared(summary)]
    for dataset, rows in table.groupby("dataset"):
        parts.append(answers(rows, targets(summary[summary.dataset == dataset], dataset)))
    return pd.concat([p[KEYS] for p in parts], ignore_index=True).drop_duplicates(ignore_index=True)


def complete(table: pd.DataFrame, store, variants_: pd.DataFrame, device=None, data_root=None,
             progress: bool = True) -> pd.DataFrame:
    """``table`` with the whole test split measured for every seed of the variants in ``variants_`` (rows with the
    ``KEYS`` columns) that lacks it: each run's variants rebuilt from its stored weights exactly as ``variants``
    built them, and evaluated in one pass."""
    wanted = pd.MultiIndex.from_frame(variants_[KEYS].astype({"precision": str}))
    missing = table.test_acc.isna() & (table.method == "post-training")  # the fine-tuned arm measures it at once
    todo = table[missing & table.set_index(KEYS).index.isin(wanted)]
    if todo.empty:
        return table
    out = table.copy()
    try:
        runs = store.runs_of(todo.drop_duplicates("run_id"))
    except KeyError as err:  # a table copied without its store: say what measuring the test split needs
        raise ConfigError(f"the whole test split of these variants is measured from their trained runs, and "
                          f"{err.args[0]}") from err
    for run in tqdm(runs, desc="frontier test split", unit="model", disable=not progress):
        rows = todo[todo.run_id == run.run_id]
        dataset = train.load_data(run.config, device, data_root)
        pairs_ = list(zip(rows.sparsity, rows.precision.map(precision_of)))
        setting = (rows.scheme.iloc[0], rows.granularity.iloc[0])  # as ``variants`` stored it
        states = [state for *_, state in compressed(lambda: run.model(dataset), pairs_, setting)]
        measured = train.evaluate_states(run.model(dataset), states, dataset.test, train.LOSSES[run.config.loss])
        out.loc[rows.index, ["test_loss", "test_acc"]] = np.array(measured, dtype=float)
    return out


def chosen_runs(store, configurations: pd.DataFrame, runs: pd.DataFrame, seeds: int = DEFAULT.seeds) -> list[Run]:
    """The runs the frontier is drawn from: of every stable configuration (of the DNNs, the square ones), the first
    ``seeds`` seeds that did not diverge."""
    stable = square(configurations[configurations.regime.isin(LEARNS)])
    picked = runs[runs.config_id.isin(stable.config_id) & (runs.status == "ok")]
    picked = picked.sort_values("seed").groupby("config_id", sort=False).head(seeds)
    return store.runs_of(picked.sort_values(["family", "n_params", "seed"]))


def summarise(table: pd.DataFrame, confidence: float = ASK["confidence"].default) -> pd.DataFrame:
    """One row per variant of a configuration, its seeds pooled: bytes (the largest seed's), the mean and the
    one-sided lower bound of validation accuracy, and the test split's mean and two-sided interval at
    ``confidence`` (Student t over seeds; NaN bounds with a single seed, NaN throughout where ``complete`` has not
    measured it). ``finished``: measured on the whole validation split (not stopped by racing)."""
    ASK["confidence"].check(confidence)
    arch = [c for c in ("family", "model", "depth", "width", "n_params") if c in table]
    finished = table["finished"].astype("boolean").fillna(True) if "finished" in table else True
    g = table.assign(finished=finished).groupby(KEYS, sort=False)
    setting = [c for c in ("scheme", "granularity") if c in table]
    out = g.agg(**{c: (c, "first") for c in arch + setting}, bits=("bits", "first"), achieved=("achieved", "mean"),
                size_bytes=("size_bytes", "max"), dense_bytes=("dense_bytes", "first"), seeds=("run_id", "count"),
                finished=("finished", "all"), val_mean=("val_acc", "mean"), val_sd=("val_acc", "std"),
                test_mean=("test_acc", "mean"), test_sd=("test_acc", "std")).reset_index()
    one = stats.t.ppf(confidence, out.seeds - 1) / np.sqrt(out.seeds)  # NaN for one seed
    two = stats.t.ppf((1 + confidence) / 2, out.seeds - 1) / np.sqrt(out.seeds)
    out["val_low"] = out.val_mean - one * out.val_sd
    out["test_low"] = out.test_mean - two * out.test_sd
    out["test_high"] = out.test_mean + two * out.test_sd
    out["ratio"] = out.dense_bytes / out.size_bytes
    return out.sort_values(["dataset", "size_bytes"], ignore_index=True)


def pareto(summary: pd.DataFrame, by=("dataset", "family"), accuracy: str = "val_mean") -> pd.DataFrame:
    """The variants no other variant beats (smaller or equal bytes with higher ``accuracy``), within each group of
    ``by``: the frontier, smallest first. Chosen on validation accuracy by default, so that the test accuracy the
    book reports for its points played no part in choosing them. A variant whose accuracy is below its dataset's
    chance + the regimes' ``fail_margin`` has learned nothing of the task (a seed that ends there failed) and is no
    point of the frontier, however small. Variants that racing stopped are beaten by a no-larger one: none is."""
    learned = summary[(summary[accuracy] >= chance(summary) + THRESHOLDS["fail_margin"].default)
                      & summary.get("finished", True)]
    keep = []
    for _, g in learned.groupby(list(by), sort=True):
        best = -np.inf
        for i, row in g.sort_values(["size_bytes", accuracy], ascending=[True, False]).iterrows():
            if row[accuracy] > best:
                keep.append(i)
                best = row[accuracy]
    return summary.loc[keep].sort_values([*by, "size_bytes"], ignore_index=True)


@dataclass(frozen=True)
class Answer:
    """What ``recommend`` found: the chosen variant (or, when nothing met the target, the closest miss)."""
    met: bool
    row: pd.Series
    target: float
    confidence: float
    candidates: int  # variants within the family and byte limits
    family: str | None = None
    max_bytes: int | None = None

    def lines(self, dataset: str, profile: str = "quick", overrides: str = "") -> list[str]:
        """The answer for people; ``overrides`` (e.g. " --seeds 3") names the study as the command line does."""
        r = self.row
        precision = r.precision if r.precision in FLOATS else f"{r.precision}-bit ({r.scheme}, per {r.granularity})"
        pruned = sparsity_text(r.sparsity) + ("" if r.sparsity == 0 else " (global L1)")
        tuned = ", fine-tuned with the rounding in the loop" if r.method == "quantization-aware" else ""
        what = f"{r.model} ({int(r.n_params):,} parameters), {pruned}, weights at {precision}{tuned}"
        accuracy = (f"test accuracy {r.test_mean:.2%} (mean of {int(r.seeds)} seeds; {self.confidence:.0%} "
                    f"interval {r.test_low:.2%}..{r.test_high:.2%})" if not np.isnan(r.test_mean) else
                    "test accuracy not measured yet (tables.recommend measures it)")
        if self.met:
            head = [f"smallest model reaching {self.target:.1%} on {dataset} with {self.confidence:.0%} confidence:",
                    f"  {what}",
                    f"  {int(r.size_bytes):,} bytes stored ({r.ratio:.1f}x smaller than its dense float32 "
                    f"{int(r.dense_bytes):,} bytes)",
                    f"  {accuracy}",
                    f"  chosen on the validation split (lower bound {r.val_low:.2%} >= {self.target:.1%}); the "
                    f"test split is reported, never used to choose",
                    f"  the bound holds for each variant alone; the smallest of the {self.candidates} searched is "
                    f"favoured by luck, so read the test interval too"]
        else:
            head = [f"nothing stored reaches {self.target:.1%} on {dataset} with {self.confidence:.0%} confidence "
                    f"({self.candidates} variants searched). Closest miss:",
                    f"  {what}: {int(r.size_bytes):,} bytes, validation lower bound {r.val_low:.2%}",
                    f"  {accuracy}",
                    f"  to search further, train larger models or more seeds: minarch sweep --dataset {dataset} "
                    f"--profile paper --family {r.family}, then ask again (its frontier is computed then)"]
        head = [textwrap.fill(line, WIDTH, subsequent_indent="    ") for line in head]  # a terminal's width
        limits = (f" --family {self.family}" if self.family else "") + \
            (f" --max-bytes {self.max_bytes}" if self.max_bytes else "")
        return head + [f"  reproduce: minarch recommend --dataset {dataset} --profile {profile}{overrides}",
                       f"    --min-accuracy {self.target:g} --confidence {self.confidence:g}{limits}"]


def recommend(table: pd.DataFrame, min_accuracy: float, family: str | None = None, max_bytes: int | None = None,
              confidence: float = ASK["confidence"].default) -> Answer:
    """The smallest variant whose validation accuracy reaches ``min_accuracy`` with ``confidence`` (its one-sided
    lower bound over seeds), within ``family`` and ``max_bytes``; else the closest miss (the highest lower bound).
    ``table`` holds one dataset's ``variants`` (one row per seed)."""
    ASK["min_accuracy"].check(min_accuracy)
    ASK["max_bytes"].check(max_bytes)
    if table.empty:
        raise ConfigError("the compression frontier is empty: no configuration of the study learns the task; sweep "
                          "larger models (minarch sweep --profile paper)")
    seeds = table.groupby(["config_id", "method", "sparsity", "precision"]).run_id.nunique()
    if seeds.max() < 2:
        raise ConfigError(f"the frontier holds {seeds.max()} seed per configuration: a confidence bound needs at "
                          f"least 2; build it from a study with --seeds 2 or more")
    summary = summarise(table, confidence)
    pool = summary[summary.finished]  # racing stopped the others: a no-larger variant beats each
    if family is not None:
        if family not in set(summary.family):
            raise ConfigError(f"family {family!r} has no stable model in the frontier: choose one of "
                              f"{sorted(set(summary.family))}")
        pool = pool[pool.family == family]
    if max_bytes is not None:
        pool = pool[pool.size_bytes <= max_bytes]
        if pool.empty:
            raise ConfigError(f"no variant is as small as max_bytes={max_bytes:,}: the smallest stored has "
                              f"{int(summary.size_bytes.min()):,} bytes")
    met = pool[pool.val_low >= min_accuracy]
    if len(met):
        best = met.sort_values(["size_bytes", "val_low"], ascending=[True, False]).iloc[0]
        return Answer(True, best, min_accuracy, confidence, len(pool), family, max_bytes)
    closest = pool.sort_values(["val_low", "size_bytes"], ascending=[False, True]).iloc[0]
    return Answer(False, closest, min_accuracy, confidence, len(pool), family, max_bytes)


def targets(summary: pd.DataFrame, dataset: str, levels=(0.5, 0.75, 0.9, 0.97, 1.0)) -> list[float]:
    """Round accuracy targets spread between chance and the best variant's mean validation accuracy (whole
    percents, rounded down): ``levels`` of the way from one to the other."""
    chance, best = data.spec(dataset).chance, float(summary.val_mean.max())
    return sorted({float(np.floor((chance + k * (best - chance)) * 100 + 1e-6)) / 100 for k in levels})


def answers(table: pd.DataFrame, goals, confidence: float = ASK["confidence"].default) -> pd.DataFrame:
    """``recommend`` for each target in ``goals``: one row per target, the chosen variant or the closest miss."""
    rows = []
    for goal in goals:
        answer = recommend(table, goal, confidence=confidence)
        rows.append({"target": goal, "met": "yes" if answer.met else "no (closest)", **answer.row.to_dict()})
    return pd.DataFrame(rows)


def ownership(front: pd.DataFrame) -> str:
    """Which family owns how much of a dataset's frontier (``pareto(summary, by=("dataset",))``), in words: each
    family's points, their range of bytes and accuracy, and the most accurate variant."""
    if front.empty:
        return "No variant learned the task: the frontier is empty."
    f = front.sort_values("size_bytes")
    parts = []
    for family, g in f.groupby("family", sort=False):
        span = (f"at {size_text(g.size_bytes.iloc[0])}" if len(g) == 1 else
                f"from {size_text(g.size_bytes.iloc[0])} to {size_text(g.size_bytes.iloc[-1])}")
        accuracy = (f"{g.test_mean.iloc[0]:.1%}" if len(g) == 1 else
                    f"{g.test_mean.min():.1%} to {g.test_mean.max():.1%}")
        parts.append(f"the **{models.family(family).title}** {len(g)} {'point' if len(g) == 1 else 'points'} {span} "
                     f"({accuracy})")
    best = f.iloc[-1]
    return (f"Across families the frontier has {len(f)} points, smallest first: "
            + ("; ".join(parts[:-1]) + "; and " + parts[-1] if len(parts) > 1 else parts[0])
            + f". Its most accurate variant is {best.model}, {sparsity_text(best.sparsity)}, with "
            f"{precision_text(best.precision)} weights ({best.method}): {size_text(best.size_bytes)}, "
            f"{best.test_mean:.2%} on test.")


def sparsity_text(sparsity: float) -> str:
    """'dense', or 'pruned to 90%'."""
    return "dense" if sparsity == 0 else f"pruned to {sparsity:.0%}"


def owners(table: pd.DataFrame, configs: int = 4) -> pd.DataFrame:
    """The post-training rows of the ``configs`` configurations that own the most points of the dataset's frontier
    (``pareto`` over all families, chosen on validation): the models whose recovery could move it."""
    front = pareto(summarise(table), by=("dataset",))
    return table[table.config_id.isin(front.config_id.value_counts().index[:configs])]


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``summarise`` (or of ``answers``) for a table: the precision in words and the test interval as
    '34.9%–36.5%'."""
    return frame.assign(precision=frame.precision.map(precision_text),
                        interval=frame.test_low.map("{:.1%}".format) + "–" + frame.test_high.map("{:.1%}".format))


def precision_text(precision: str) -> str:
    """'float16', or '4-bit' for an integer grid."""
    return precision if precision in FLOATS else f"{precision}-bit"


def size_text(n: float) -> str:
    """Bytes for people: 697 B, 1.2 kB, 35 kB, 1.3 MB."""
    for unit, step in (("MB", 1e6), ("kB", 1e3)):
        if n >= step:
            value = n / step
            return f"{value:.1f} {unit}" if value < 10 else f"{value:,.0f} {unit}"
    return f"{n:.0f} B"


def near_best(front: pd.DataFrame, within: float = 0.01) -> pd.DataFrame:
    """Per dataset, the smallest variant of its frontier (``pareto(..., by=("dataset",))``) whose mean validation
    accuracy is within ``within`` of the frontier's best (chosen on validation; reported with its test accuracy and
    the best variant's): what near-best accuracy costs in bytes."""
    if not 0 <= within <= 1:
        raise ConfigError(f"within must be a fraction in 0..1, got {within!r}")
    rows = []
    for _, f in front.groupby("dataset", sort=False):
        top = f.loc[f.val_mean.idxmax()]
        pick = f[f.val_mean >= top.val_mean - within].sort_values("size_bytes").iloc[0]
        rows.append({**pick.to_dict(), "best": top.test_mean})
    return pd.DataFrame(rows)


def across(front: pd.DataFrame, within: float = 0.01) -> str:
    """The cross-dataset frontier in words: per dataset, the bytes of near-best accuracy and who owns them."""
    near = near_best(front, within)
    parts = [f"on {data.spec(r.dataset).title}, **{size_text(r.size_bytes)}** ({r.model}, "
             f"{sparsity_text(r.sparsity)}, {precision_text(r.precision)}, "
             f"{r.method}) reach {r.test_mean:.1%} against the best {r.best:.1%}, {r.ratio:.0f}x smaller than that "
             f"model in dense float32" for r in near.itertuples()]
    order = near.sort_values("size_bytes").dataset.map(lambda d: data.spec(d).title).tolist()
    return (f"Within {within:.0%} of each dataset's best stored accuracy (chosen on validation, test reported), "
            + "; ".join(parts) + ". Ordered by the "
            f"bytes that near-best accuracy costs: {', '.join(order)}.")


def settings_text(table: pd.DataFrame, grid: Compression = DEFAULT) -> str:
    """The frontier's settings in words, from the study's compression ``grid`` and from ``table`` (one dataset's
    variants, completed): how many models it compressed and fine-tuned, and how many of its post-training variants
    were measured on the whole test split (for the chapter's first lines)."""
    titles = [models.family(f).title for f in models.FAMILIES if f in set(table.family)]
    post, tuned = table[table.method == "post-training"], table[table.method == "quantization-aware"]
    variants_ = post.groupby(KEYS).test_acc.count()
    front, rec = grid.frontier, grid.recovery
    return (f"**Settings**: {post.run_id.nunique()} trained models ({grid.seeds} seeds per stable configuration of "
            f"the {', '.join(titles[:-1])} and {titles[-1]} grids); sparsities "
            f"{', '.join(f'{s:.0%}' for s in front.sparsities)}; precisions "
            f"{', '.join(precision_text(str(p)) for p in front.precisions)} ({front.settings[0][0]}, per "
            f"{front.settings[0][1]}); recovery: {tuned.run_id.nunique()} models fine-tuned {rec.epochs} epochs at "
            f"{', '.join(map(str, rec.precisions))} bits and sparsities "
            f"{', '.join(f'{s:.0%}' for s in rec.sparsities)}; confidence {ASK['confidence'].default:.0%}; "
            f"the whole test split measured for {(variants_ > 0).sum():,} of the {len(variants_):,} post-training "
            f"variants (those reported) and every fine-tuned one. " + racing_text(post))


def racing_text(post: pd.DataFrame) -> str:
    """What racing saved on the validation split, in words, from the post-training rows ``race`` measured."""
    if "val_images" not in post or post.empty:
        return ""
    whole = post.groupby("dataset").val_images.transform("max")
    finished = post.groupby(KEYS).finished.all()
    return (f"Racing (stages of {', '.join(f'{s:,}' for s in racing.STAGES)} images, then the whole split; "
            f"{racing.ALPHA:.0%} chance per family that any variant stops wrongly) let {finished.sum():,} of the "
            f"{len(finished):,} variants finish and measured {post.val_images.sum() / whole.sum():.0%} of the "
            f"validation image-evaluations that measuring every variant on the whole split takes "
            f"({whole.sum() / post.val_images.sum():.1f}x fewer).")
