"""Measuring the frontier's variants: each trained model pruned and rounded to every (sparsity, precision) of the
grid's ``frontier`` slice, sized by the encoding, raced on the validation split (``race``) and completed on the test
split for the variants reported (``complete``)."""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch

from ...engine import data, models, train
from ...engine import progress as progress_
from ...engine.compression import DEFAULT, Slice
from ...engine.errors import ConfigError
from ...engine.store import Run
from .. import encoding, pruning, quantization, racing
from ..common import run_columns, score, square
from ..grids import bits_of, precision_of
from ..regimes import LEARNS
from .choose import KEYS

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
    cfg = runs[0].config  # every run's validation split: val_per_class of each class
    stages = len(racing.stages(cfg.val_per_class * data.spec(cfg.dataset).n_classes))
    with progress_.bar("frontier, racing", len(runs) * stages, "model-stages", show=progress) as bar:
        return pd.concat([_race(members, grid, tolerance, device, data_root, bar) for members in families.values()],
                         ignore_index=True)



RACE_CACHE_BYTES = 1 << 30  # the variants' weights kept between stages; beyond it, a run's are rebuilt per stage



def _race(runs: list[Run], grid: Slice, tolerance: float, device, data_root, bar) -> pd.DataFrame:
    """``race`` of one family's runs (one dataset)."""
    dataset = train.load_data(runs[0].config, device, data_root)
    loss_fn, n = train.LOSSES[runs[0].config.loss], len(dataset.val)
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
    with progress_.bar("frontier test split", len(runs), "models", show=progress) as bar:
        for run in runs:
            rows = todo[todo.run_id == run.run_id]
            dataset = train.load_data(run.config, device, data_root)
            pairs_ = list(zip(rows.sparsity, rows.precision.map(precision_of)))
            setting = (rows.scheme.iloc[0], rows.granularity.iloc[0])  # as ``variants`` stored it
            states = [state for *_, state in compressed(lambda: run.model(dataset), pairs_, setting)]
            measured = train.evaluate_states(run.model(dataset), states, dataset.test,
                                             train.LOSSES[run.config.loss])
            out.loc[rows.index, ["test_loss", "test_acc"]] = np.array(measured, dtype=float)
            bar.update()
    return out



def chosen_runs(store, configurations: pd.DataFrame, runs: pd.DataFrame, seeds: int = DEFAULT.seeds) -> list[Run]:
    """The runs the frontier is drawn from: of every stable configuration (of the DNNs, the square ones), the first
    ``seeds`` seeds that did not diverge."""
    stable = square(configurations[configurations.regime.isin(LEARNS)])
    picked = runs[runs.config_id.isin(stable.config_id) & (runs.status == "ok")]
    picked = picked.sort_values("seed").groupby("config_id", sort=False).head(seeds)
    return store.runs_of(picked.sort_values(["family", "n_params", "seed"]))

