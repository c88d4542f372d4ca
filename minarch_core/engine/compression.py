"""The compression grid of a study: which pruned and rounded variants of its trained models the analyses measure.

One record, part of the study (``Profile.compression``) and so of its id: a changed grid names new tables and never
serves old ones. It is a union of named slices, each a product of scopes x (scheme, granularity) settings x
sparsities x precisions, with an optional fine-tuning:

- ``pruning``: global and per-layer L1 magnitude pruning at float32 (the representatives' pruning curves);
- ``quantization``: every precision at sparsity 0, symmetric per tensor and asymmetric per output channel;
- ``frontier``: the joint grid of sparsity and precision the smallest-model search sizes;
- ``recovery``: the frontier's low-bit variants fine-tuned ``epochs`` with the rounding in the loop;
- ``components``: one component group of a model at a time rounded to these precisions;
- ``matched``: global L1 pruning at float32 of every seed of the networks that compare depths at matched size, on a
  finer grid of sparsities than ``pruning`` (the redundancy that the depth claim reads is a sparsity on this grid).

What a slice does not vary is fixed (``FIXED``): pruning curves are measured at float32, the quantization curves and
component sensitivity on unpruned models, only the pruning curves compare scopes (the frontier prunes globally), and
only the pruning curves (fine-tuning after pruning) and the recovery fine-tune. A precision is a float type by name
(``FLOAT_PRECISIONS``) or an integer bit width in 1..16. ``tolerance`` is the accuracy loss that still counts as
"kept" (the pruning redundancy, the quantization tolerance), ``seeds`` how many seeds of each stable configuration
the frontier compresses. ``curve_images`` is how many test images of each class the curve slices (pruning,
quantization, components) are measured on, drawn with ``curve_seed`` and the same for every variant and seed (None:
the whole test split); the frontier always races on validation and completes on the whole test split.
"""
from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass

from .errors import ConfigError

FLOAT_PRECISIONS = ("float32", "bfloat16", "float16")
SCOPES = ("global", "layer")
SCHEMES = ("symmetric", "asymmetric")
GRANULARITIES = ("tensor", "channel")

FIXED = {"pruning": {"precisions": ("float32",), "settings": (("symmetric", "channel"),)},
         "quantization": {"sparsities": (0.0,), "scopes": ("global",), "epochs": 0},
         "frontier": {"scopes": ("global",), "epochs": 0},
         "recovery": {"scopes": ("global",)},
         "components": {"sparsities": (0.0,), "scopes": ("global",), "settings": (("symmetric", "channel"),),
                        "epochs": 0},
         "matched": {"precisions": ("float32",), "scopes": ("global",), "settings": (("symmetric", "channel"),)}}


@dataclass(frozen=True)
class Slice:
    """One named part of the grid: every (scope, setting, sparsity, precision), fine-tuned ``epochs`` if > 0."""
    sparsities: tuple = (0.0,)
    precisions: tuple = ("float32",)
    scopes: tuple = ("global",)
    settings: tuple = (("symmetric", "channel"),)  # (scheme, granularity) of the integer grids
    epochs: int = 0

    def check(self, name: str) -> None:
        """A ConfigError naming the slice's field and what it takes, for any value outside it."""
        where = f"compression grid {name}"
        for s in self.sparsities:
            if not isinstance(s, numbers.Real) or isinstance(s, bool) or not 0 <= s < 1:
                raise ConfigError(f"{where}.sparsities: {s!r} is not a sparsity; each must be a fraction in [0, 1)")
        for p in self.precisions:
            if p not in FLOAT_PRECISIONS and (isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 16):
                raise ConfigError(f"{where}.precisions: unknown precision {p!r}; each must be one of "
                                  f"{list(FLOAT_PRECISIONS)} or an integer bit width in 1..16")
        for scope in self.scopes:
            if scope not in SCOPES:
                raise ConfigError(f"{where}.scopes: unknown pruning scope {scope!r}; choose from {list(SCOPES)}")
        for setting in self.settings:
            if len(setting) != 2 or setting[0] not in SCHEMES or setting[1] not in GRANULARITIES:
                raise ConfigError(f"{where}.settings: {setting!r} is no (scheme, granularity); schemes "
                                  f"{list(SCHEMES)}, granularities {list(GRANULARITIES)}")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 0:
            raise ConfigError(f"{where}.epochs: {self.epochs!r}; fine-tuning epochs are an integer >= 0")
        if not (self.sparsities and self.precisions and self.scopes and self.settings):
            raise ConfigError(f"{where}: every field needs at least one value")

    def only(self, **fields) -> Slice:
        """This slice with some fields replaced (e.g. ``only(scopes=("global",))``)."""
        return dataclasses.replace(self, **fields)


@dataclass(frozen=True)
class Compression:
    pruning: Slice = Slice(sparsities=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99),
                           scopes=SCOPES)
    quantization: Slice = Slice(precisions=(*FLOAT_PRECISIONS, 16, 12, 10, 8, 6, 5, 4, 3, 2),  # most precise first
                                settings=(("symmetric", "tensor"), ("asymmetric", "channel")))
    frontier: Slice = Slice(sparsities=(0.0, 0.5, 0.75, 0.9, 0.95), precisions=("float32", "float16", 8, 6, 4, 3, 2))
    recovery: Slice = Slice(sparsities=(0.0, 0.75, 0.9), precisions=(4, 3, 2), epochs=2)  # where rounding starts to cost
    components: Slice = Slice(precisions=(8, 4, 3, 2))
    matched: Slice = Slice(sparsities=(0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7,
                                       0.75, 0.8, 0.85, 0.9, 0.925, 0.95, 0.97, 0.99))
    seeds: int = 3  # frontier seeds per configuration: enough for an interval, three fifths of the quick cost
    tolerance: float = 0.01
    curve_images: int | None = None  # test images per class the curve slices are measured on; None: all
    curve_seed: int = 0  # which ones (a stratified draw)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Slice):
                value.check(f.name)
                for name, fixed in FIXED[f.name].items():
                    if getattr(value, name) != fixed:
                        raise ConfigError(f"compression grid {f.name}.{name}: the {f.name} slice does not vary "
                                          f"its {name}; it must be {fixed!r}, got {getattr(value, name)!r}")
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise ConfigError(f"compression grid seeds: {self.seeds!r}; the frontier needs an integer >= 1 "
                              f"(>= 2 for a confidence bound)")
        if self.curve_images is not None and (isinstance(self.curve_images, bool) or not isinstance(
                self.curve_images, int) or self.curve_images < 1):
            raise ConfigError(f"compression grid curve_images: {self.curve_images!r}; test images per class for the "
                              f"curves are an integer >= 1, or None for the whole test split")
        if isinstance(self.curve_seed, bool) or not isinstance(self.curve_seed, int) or self.curve_seed < 0:
            raise ConfigError(f"compression grid curve_seed: {self.curve_seed!r}; an integer >= 0")
        if not isinstance(self.tolerance, numbers.Real) or not 0 <= self.tolerance < 1:
            raise ConfigError(f"compression grid tolerance: {self.tolerance!r}; a fraction of accuracy in [0, 1)")
        if any(p in FLOAT_PRECISIONS for p in self.recovery.precisions):
            raise ConfigError("compression grid recovery.precisions: fine-tuning with the rounding in the loop "
                              "takes integer bit widths only")
        if len(self.frontier.settings) != 1 or self.recovery.settings != self.frontier.settings:
            raise ConfigError("compression grid frontier.settings: the frontier stores integer weights on one "
                              "(scheme, granularity), and recovery.settings must be the same one")

    def summary(self) -> list[dict]:
        """The grid in words, one row per slice (the method chapter's table)."""
        rows = []
        for f in dataclasses.fields(self):
            g = getattr(self, f.name)
            if isinstance(g, Slice):
                rows.append({"slice": f.name, "sparsities": ", ".join(f"{s:.0%}" for s in g.sparsities),
                             "precisions": ", ".join(p if isinstance(p, str) else f"{p}-bit" for p in g.precisions),
                             "pruning": ", ".join(g.scopes) if any(g.sparsities) else "none",
                             "integer grids": "; ".join(f"{s}, per {gr}" for s, gr in g.settings),
                             "fine-tuning": f"{g.epochs} epochs" if g.epochs else "none",
                             "measured on": self.measured_on(f.name)})
        return rows

    def measured_on(self, slice_: str) -> str:
        """The images a slice's accuracies are measured on, in words."""
        if slice_ in ("frontier", "recovery"):
            return "validation (raced); the whole test split for the variants reported"
        if self.curve_images is None:
            return "the whole test split"
        return f"{self.curve_images} test images per class (a stratified draw, seed {self.curve_seed})"

    def replace(self, **slices) -> Compression:
        """This grid with some slices or fields replaced; a slice may be given as a dict of its changed fields."""
        return dataclasses.replace(self, **{k: getattr(self, k).only(**v) if isinstance(v, dict) else v
                                            for k, v in slices.items()})


DEFAULT = Compression()
