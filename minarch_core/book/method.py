"""The method chapter's tables and sentences, read from the records and constants the code runs on, so that the
chapter only asks for them and no setting is typed twice."""
from __future__ import annotations

import dataclasses

import pandas as pd

from ..analyses import racing, regimes
from ..engine import config, data, models, profiles, sweep, train
from ..engine.compression import Compression
from . import parameters


def datasets(names=None) -> pd.DataFrame:
    """The book's datasets (every registered one when ``names`` is None), easiest first: their shape, classes and
    channel statistics, and the ViT's patches and the seeds a CPU stacks in one step there."""
    rows = []
    for d in map(data.spec, data.by_difficulty(names)):
        c, h, w = d.input_shape
        patch = models.default_patch(d.input_shape)
        vit = config.RunConfig(d.name, "vit", {"dim": 8})
        named = f": {', '.join(d.classes)}" if d.classes and len(d.classes) <= 20 else ""
        rows.append({"dataset": d.title, "difficulty rank": d.difficulty, "classes": f"{d.n_classes}{named}",
                     "image (C×H×W)": f"{c}×{h}×{w}", "inputs": c * h * w,
                     "channel mean": ", ".join(map(str, d.mean)), "channel std": ", ".join(map(str, d.std)),
                     "ViT patch": patch, "ViT patches": (h // patch) * (w // patch),
                     "ViT seeds per CPU step": sweep.seeds_per_program(vit, "cpu", 1)})
    return pd.DataFrame(rows)


def training() -> pd.DataFrame:
    """The training settings every run shares unless its study changes them: ``RunConfig``'s defaults."""
    defaults = {f.name: f.default for f in dataclasses.fields(config.RunConfig)
                if f.default is not dataclasses.MISSING}
    return pd.DataFrame({"setting": list(defaults), "default": [str(v) for v in defaults.values()]})


def shapes(size: int = 10, depths=(1, 2, 3)) -> pd.DataFrame:
    """The Phase-1 shapes of one size: each step pattern and the widths it gives."""
    return pd.DataFrame([{"pattern": s.pattern or "(one layer)", "widths": "-".join(map(str, s.widths))}
                         for s in models.phase1_shapes(depths=depths, sizes=(size,))])


def ladder_words(size: int = 10, depth: int = 3) -> str:
    """The width ladder the Phase-1 shapes step on, introducing ``shapes(size)``."""
    return (f"The width ladder: {', '.join(map(str, models.LADDER))}. The shapes of size {size} up to depth "
            f"{depth}:")


def _span(study: profiles.Profile, family: str, dataset: str) -> str:
    """The parameters ``study``'s grids of ``family`` span on ``dataset``."""
    grids = [name for name, grid in study.grids.items() if grid.family == family]
    sizes = [sweep.footprint(cfg).params for cfg in study.configs(dataset, grids)] if grids else []
    return f"{min(sizes):,} to {max(sizes):,}" if sizes else "not in the profile"


def hybrids(study: profiles.Profile, names=None) -> pd.DataFrame:
    """One row per dataset (``names``, default every registered one) and hybrid: its stem's map, and the parameters
    its grids and its parents' grids span."""
    rows = []
    for d in map(data.spec, data.by_difficulty(names)):
        h, w = models.stem_map(d.input_shape)
        for name in models.hybrids():
            family = models.family(name)
            pool = models.normalise_arch(name, {}, d.input_shape)["pool"]
            side = models.stem_side(d.input_shape, pool)
            rows.append({"dataset": d.title, "family": family.title,
                         "stem": f"{h}×{w} → pool {pool} → {side[0]}×{side[1]}",
                         "parameters": _span(study, name, d.name),
                         "parents": "; ".join(f"{models.family(p).title} {_span(study, p, d.name)}"
                                              for p in family.parents)})
    return pd.DataFrame(rows)


def profiles_table() -> pd.DataFrame:
    """Every profile side by side, one row per field and grid (``Profile.summary``)."""
    return (pd.DataFrame({name: p.summary() for name, p in profiles.PROFILES.items()})
            .rename_axis("field").reset_index())


def sensitivity_ranges() -> str:
    """The values each threshold takes when the book tests how its estimates move (``regimes.SENSITIVITY``)."""
    return "Sensitivity ranges: " + "; ".join(f"`{name}` {', '.join(f'{v:g}' for v in values)}"
                                              for name, values in regimes.SENSITIVITY.items()) + "."


def racing_words(grid: Compression) -> str:
    """How racing stops variants, and what the grid keeps: the constants ``racing`` and ``grid`` hold."""
    return (f"Racing tests after {', '.join(f'{n:,}' for n in racing.STAGES)} images and the whole split, against "
            f"the {racing.CANDIDATES} most accurate no-larger variants so far, with a {racing.ALPHA:.0%} chance per "
            f"dataset and family that any variant stops wrongly. The frontier compresses {grid.seeds} seeds per "
            f"stable configuration; a loss of accuracy up to {grid.tolerance:.0%} counts as kept (pruning "
            f"redundancy, quantization tolerance). The grid is part of the study, and of its id: a changed grid names "
            f"new tables. History rows are measured on at most {train.MONITOR_PER_CLASS} images per class of each "
            f"split (training semantics version {config.SEMANTICS}).")


def chapter_parameters() -> pd.DataFrame:
    """Every chapter parameter: its default, what it takes, what it means and which chapters take it."""
    return pd.DataFrame([{"parameter": p.name, "default": repr(p.default), "takes": p.allowed(), "meaning": p.help,
                          "chapters": ", ".join(c.name for c in parameters.CHAPTERS.values()
                                                if p.name in c.parameters)}
                         for p in parameters.PARAMETERS.values()])
