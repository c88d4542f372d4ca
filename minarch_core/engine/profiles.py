"""Profiles name the size of a study, as data: which grids, how many seeds and epochs, how much training data.

- ``smoke``: seconds per notebook, for CI.
- ``quick``: the default book, every dataset and analysis on 2 CPU cores in minutes.
- ``paper``: the paper's full grids with 30 seeds, for a GPU or a cluster.

A profile is a set of named grids, each a model family and the values of the knob that family sweeps (``Grid``):
``shapes`` (Phase 1: DNN depth x size x step pattern), ``dnn`` (Phase 2 square DNNs), ``cnn``, ``vit`` and the two
hybrids, ``convmlp`` and ``convvit`` (their other knobs at the family's defaults). Any field can be overridden
(``profile.replace(seeds=5)``); a profile with its overrides is a **study**, and
``study_id`` names the analysis tables it produces, so two studies never overwrite each other's. The compression
grid the analyses measure (``engine.compression``) is part of the study, and of its id.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

from . import compression as compression_, models
from .config import TRAIN_PRECISIONS, RunConfig
from .errors import ConfigError
from .params import Param, check_fields

# the fields a notebook, the CLI or Python may override, with their ranges (checked wherever they come from)
OVERRIDES = {
    "seeds": Param("seeds", int, None, "seeds per configuration", 1, 1000, optional=True),
    "epochs": Param("epochs", int, None, "training epochs", 1, 10_000, optional=True),
    "train_per_class": Param("train_per_class", int, None, "training images per class (None: the whole split)",
                             1, 1_000_000, optional=True),
    "val_per_class": Param("val_per_class", int, None, "validation images per class", 1, 1_000_000, optional=True),
}


DESIGN = {p.name: p for p in (
    Param("budget", float, 0.10, "the design's training, as a share of the training time of the study's own runs "
          "on the dataset", 0.001, 10),
    Param("rounds", int, 3, "rounds of the design (each reads what the earlier ones trained)", 1, 20),
    Param("target", float, 2.0, "a minimal size is settled once its interval's high / low ratio is at most this",
          1.01, 1000),
    Param("low", float, 0.2, "more seeds where the fitted probability of learning is at least this", 0.001, 0.999),
    Param("high", float, 0.9, "... and at most this", 0.001, 0.999),
    Param("points", int, 2, "new knob values, and configurations given more seeds, per family and round", 1, 20),
)}


@dataclass(frozen=True)
class Design:
    """A sequential design that adds runs where a minimal size is still open (``analyses.design``)."""
    budget: float = DESIGN["budget"].default
    rounds: int = DESIGN["rounds"].default
    target: float = DESIGN["target"].default
    low: float = DESIGN["low"].default
    high: float = DESIGN["high"].default
    points: int = DESIGN["points"].default

    def __post_init__(self):
        check_fields(self, DESIGN, "design")
        if self.low >= self.high:
            raise ConfigError(f"design: low ({self.low}) must be below high ({self.high}): the band of fitted "
                              f"probabilities where seeds are added")

    @property
    def band(self) -> tuple[float, float]:
        return self.low, self.high


@dataclass(frozen=True)
class Grid:
    """One grid of a profile: a model family and the values of its sweep knob; the other knobs fixed."""
    family: str
    values: tuple
    fixed: dict = field(default_factory=dict)

    def archs(self) -> list[dict]:
        knob = models.family(self.family).knob
        return [{knob: list(v) if isinstance(v, tuple) else v, **self.fixed} for v in self.values]


def shapes(depths, sizes=models.LADDER) -> Grid:
    """Phase 1: every (size, step pattern) network of the given depths (480 with the paper's defaults)."""
    return Grid("dnn", tuple(s.widths for s in models.phase1_shapes(depths, sizes)))


def square(widths, depths) -> Grid:
    """Phase 2: DNNs of equal widths."""
    return Grid("dnn", tuple((w,) * d for d in depths for w in widths))


@dataclass(frozen=True)
class Profile:
    name: str
    seeds: int
    epochs: int
    train_per_class: int | None  # None: the whole training split
    grids: dict  # grid name -> Grid, in the order they are swept
    val_per_class: int = 500  # validation images per class, carved from the official training set
    compression: compression_.Compression = compression_.DEFAULT  # the variants the analyses measure
    train_precision: str = "fp32"  # every run's training arithmetic (``RunConfig.train_precision``)
    design: Design | None = None  # runs added where a minimal size is still open (``analyses.design``)

    def __post_init__(self):
        for name in ("seeds", "epochs", "val_per_class"):
            if getattr(self, name) is None:
                raise ConfigError(f"profile {self.name!r} needs {name}: {OVERRIDES[name].allowed()}")
        check_fields(self, OVERRIDES, f"profile {self.name!r}:")
        for grid in self.grids.values():
            models.family(grid.family)
        if self.train_precision not in TRAIN_PRECISIONS:
            raise ConfigError(f"profile {self.name!r}: unknown train_precision {self.train_precision!r}: choose one "
                              f"of {list(TRAIN_PRECISIONS)}")
        if self.design is not None and not isinstance(self.design, Design):
            raise ConfigError(f"profile {self.name!r}: design must be an engine.profiles.Design or None, got "
                              f"{type(self.design).__name__}")
        if not isinstance(self.compression, compression_.Compression):
            raise ConfigError(f"profile {self.name!r}: compression must be an engine.compression.Compression, "
                              f"got {type(self.compression).__name__}")

    def replace(self, **changes) -> Profile:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown profile field(s) {sorted(unknown)}: a profile has "
                              f"{[f.name for f in dataclasses.fields(self)]}")
        return dataclasses.replace(self, **changes)

    @property
    def study_id(self) -> str:
        """The profile's name and a hash of everything it trains and measures (its compression grid included): what
        names the analysis tables of this study."""
        canonical = json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"))
        return f"{self.name}-{hashlib.sha256(canonical.encode()).hexdigest()[:10]}"

    def in_words(self) -> str:
        """Seeds, epochs and training data in a phrase: what the chapters say a study trains."""
        images = ("the whole training split" if self.train_per_class is None else
                  f"{self.train_per_class:,} training images per class")
        return f"{self.seeds} seeds, {self.epochs} epochs, {images}"

    def summary(self) -> dict:
        """The profile in words, one entry per field and grid (the method chapter's table)."""
        out = {"seeds": self.seeds, "epochs": self.epochs, "val_per_class": self.val_per_class,
               "train_per_class": "all" if self.train_per_class is None else self.train_per_class,
               "train_precision": self.train_precision,
               "design": "none" if self.design is None else
               (f"up to {self.design.budget:.0%} more training per dataset, {self.design.rounds} rounds, until each "
                f"minimal size's interval is within {self.design.target:g}x")}
        for name, grid in self.grids.items():
            knob = models.family(grid.family).knob
            values = sorted({v[0] if isinstance(v, tuple) else v for v in grid.values})
            depths = sorted({len(v) for v in grid.values if isinstance(v, tuple)})
            out[f"grid {name}"] = (f"{len(grid.values)} {models.family(grid.family).title}s, {knob} {values[0]}..{values[-1]}"
                                   + (f", depth {depths[0]}..{depths[-1]}" if depths else "")
                                   + "".join(f", {k} {v}" for k, v in grid.fixed.items()))
        return out

    def config(self, dataset: str, family: str, arch: dict, seed: int, **training) -> RunConfig:
        """One run of the study: its training settings (``training`` overrides RunConfig fields)."""
        base = dict(epochs=self.epochs, train_per_class=self.train_per_class, val_per_class=self.val_per_class,
                    train_precision=self.train_precision)
        return RunConfig(dataset, family, arch, seed=seed, **{**base, **training})

    def configs(self, dataset: str, grids=None, **training) -> list[RunConfig]:
        """Every run of the chosen grids on ``dataset``, seeds innermost; ``training`` overrides RunConfig fields."""
        grids = tuple(grids or self.grids)
        unknown = set(grids) - set(self.grids)
        if unknown:
            raise ConfigError(f"unknown grid(s) {sorted(unknown)} in profile {self.name!r}: choose from "
                              f"{list(self.grids)}")
        out, seen = [], set()
        for grid in grids:
            for arch in self.grids[grid].archs():
                for seed in range(self.seeds):
                    cfg = self.config(dataset, self.grids[grid].family, arch, seed, **training)
                    if cfg.run_id not in seen:  # clamped shape patterns and square nets can coincide: train once
                        seen.add(cfg.run_id)
                        out.append(cfg)
        return out


PROFILES = {p.name: p for p in (
    Profile("smoke", seeds=2, epochs=2, train_per_class=50, val_per_class=50, grids={
        "shapes": shapes(depths=(1, 2), sizes=(2, 10, 100)),
        "dnn": square(widths=(1, 10, 100), depths=(1, 2)),
        "cnn": Grid("cnn", (1, 4)),
        "vit": Grid("vit", (8,), {"depth": 1, "heads": 2}),
        "convmlp": Grid("convmlp", (16,)),
        "convvit": Grid("convvit", (16,))}),
    Profile("quick", seeds=5, epochs=15, train_per_class=1000, grids={
        "shapes": shapes(depths=(1, 2, 3), sizes=(1, 3, 10, 30, 100)),
        "dnn": square(widths=(1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 500), depths=(1, 2, 4)),
        "cnn": Grid("cnn", (1, 2, 4, 8, 16, 32)),
        "vit": Grid("vit", (4, 8, 16, 32), {"depth": 2, "heads": 4}),
        "convmlp": Grid("convmlp", (1, 4, 16)),
        "convvit": Grid("convvit", (4, 16))},
        compression=compression_.DEFAULT.replace(curve_images=200),  # the curves on 200 test images per class
        design=Design()),
    Profile("paper", seeds=30, epochs=20, train_per_class=None, grids={
        "shapes": shapes(depths=(1, 2, 3, 4)),
        "dnn": square(widths=models.LADDER, depths=(1, 2, 3, 4)),
        "cnn": Grid("cnn", tuple(range(1, 33))),
        "vit": Grid("vit", (4, 8, 16, 32, 64, 128, 256), {"depth": 2, "heads": 4}),
        "convmlp": Grid("convmlp", (1, 2, 4, 8, 16, 32)),
        "convvit": Grid("convvit", (4, 8, 16, 32, 64, 128))},
        design=Design()),
)}


def grid_names() -> list[str]:
    """Every grid name a profile uses (what ``minarch sweep --family`` accepts)."""
    return list(dict.fromkeys(g for p in PROFILES.values() for g in p.grids))


def add_grid(profile: str, name: str, grid: Grid) -> Profile:
    """Add a grid to a profile (from a plugin, with ``models.register`` for its family); the profile's study id
    changes with it, so its analysis tables are its own."""
    models.family(grid.family)
    if name in get(profile).grids:
        raise ConfigError(f"profile {profile!r} has a grid {name!r} already: give the new grid another name")
    PROFILES[profile] = get(profile).replace(grids={**get(profile).grids, name: grid})
    return PROFILES[profile]


def get(name: str) -> Profile:
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}: choose one of {list(PROFILES)}")
    return PROFILES[name]


def study(name: str, **overrides) -> Profile:
    """A profile with overrides (those that are None are the profile's own): the study a chapter or sweep runs."""
    for key, value in overrides.items():
        if key not in OVERRIDES:
            raise ConfigError(f"cannot override {key!r}: a study overrides {list(OVERRIDES)}")
        OVERRIDES[key].check(value)
    return get(name).replace(**{k: v for k, v in overrides.items() if v is not None})
