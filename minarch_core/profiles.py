"""Profiles name the size of a study, as data: which grids, how many seeds and epochs, how much training data.

- ``smoke``: seconds per notebook, for CI.
- ``quick``: the default book, every dataset and analysis on 2 CPU cores in minutes.
- ``paper``: the paper's full grids with 30 seeds, for a GPU or a cluster.

A profile expands into run configs per grid: ``shapes`` (Phase 1: DNN depth x size x step pattern), ``dnn``
(Phase 2 square DNNs), ``cnn`` and ``vit``. Any field can be overridden (``profile.replace(seeds=5)``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from . import models
from .config import RunConfig
from .errors import ConfigError

GRIDS = ("shapes", "dnn", "cnn", "vit")


@dataclass(frozen=True)
class Profile:
    name: str
    seeds: int
    epochs: int
    train_per_class: int | None  # None: the whole training split
    shape_sizes: tuple[int, ...]  # Phase 1: first-layer widths (on the ladder)
    shape_depths: tuple[int, ...]
    dnn_widths: tuple[int, ...]  # Phase 2: square networks
    dnn_depths: tuple[int, ...]
    cnn_channels: tuple[int, ...]
    vit_dims: tuple[int, ...]
    vit: dict = dataclasses.field(default_factory=dict)  # the other ViT knobs, per image size (patch)
    grids: tuple[str, ...] = GRIDS  # what the profile sweeps by default
    val_per_class: int = 500  # validation images per class, carved from the official training set

    def replace(self, **changes) -> Profile:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown profile field(s) {sorted(unknown)}: a profile has "
                              f"{[f.name for f in dataclasses.fields(self)]}")
        return dataclasses.replace(self, **changes)

    def configs(self, dataset: str, grids=None, **training) -> list[RunConfig]:
        """Every run of the chosen grids on ``dataset``, seeds innermost; ``training`` overrides RunConfig fields."""
        grids = tuple(grids or self.grids)
        unknown = set(grids) - set(GRIDS)
        if unknown:
            raise ConfigError(f"unknown grid(s) {sorted(unknown)}: choose from {list(GRIDS)}")
        base = dict(epochs=self.epochs, train_per_class=self.train_per_class, val_per_class=self.val_per_class,
                    **training)
        archs = []
        for grid in grids:
            archs += [("dnn", {"widths": list(w)}) for w in self.arch_grid(grid)] if grid in ("shapes", "dnn") else []
            archs += [("cnn", {"channels": c}) for c in self.cnn_channels] if grid == "cnn" else []
            archs += [("vit", {"dim": d, **vit_knobs(self.vit, dataset)}) for d in self.vit_dims] if grid == "vit" else []
        out, seen = [], set()
        for family, arch in archs:
            for seed in range(self.seeds):
                cfg = RunConfig(dataset, family, arch, seed=seed, **base)
                if cfg.run_id not in seen:  # clamped shape patterns and square nets can coincide: train once
                    seen.add(cfg.run_id)
                    out.append(cfg)
        return out

    def arch_grid(self, grid: str) -> list[tuple[int, ...]]:
        if grid == "shapes":
            return [s.widths for s in models.phase1_shapes(self.shape_depths, self.shape_sizes)]
        return [(w,) * d for d in self.dnn_depths for w in self.dnn_widths]


def vit_knobs(vit: dict, dataset: str) -> dict:
    """ViT settings with the patch size chosen for the image size: by default 7 on 28x28 and 8 on 32x32, the same
    4x4 grid of 16 patches on every dataset (patch 4 on CIFAR-10 would make 64 tokens and cost about 4x more)."""
    knobs = dict(vit)
    patches = knobs.pop("patch_by_size", {28: 7, 32: 8})
    knobs.setdefault("patch", patches[32 if dataset == "cifar10" else 28])
    return knobs


PROFILES = {
    "smoke": Profile(
        "smoke", seeds=2, epochs=2, train_per_class=50,
        shape_sizes=(2, 10, 100), shape_depths=(1, 2),
        dnn_widths=(1, 10, 100), dnn_depths=(1, 2),
        cnn_channels=(1, 4), vit_dims=(8,), vit={"depth": 1, "heads": 2}, val_per_class=50),
    "quick": Profile(
        "quick", seeds=5, epochs=15, train_per_class=1000,
        shape_sizes=(1, 3, 10, 30, 100), shape_depths=(1, 2, 3),
        dnn_widths=(1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 500), dnn_depths=(1, 2, 4),
        cnn_channels=(1, 2, 4, 8, 16, 32), vit_dims=(4, 8, 16, 32), vit={"depth": 2, "heads": 4}),
    "paper": Profile(
        "paper", seeds=30, epochs=20, train_per_class=None,
        shape_sizes=models.LADDER, shape_depths=(1, 2, 3, 4),
        dnn_widths=models.LADDER, dnn_depths=(1, 2, 3, 4),
        cnn_channels=tuple(range(1, 33)), vit_dims=(4, 8, 16, 32, 64, 128, 256), vit={"depth": 2, "heads": 4}),
}


def get(name: str) -> Profile:
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}: choose one of {list(PROFILES)}")
    return PROFILES[name]
