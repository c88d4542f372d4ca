"""A run is its config: dataset, architecture, seed and training settings. Its id is a hash of the normalised config.

Defaults live in one place (the dataclass fields here, and the builders' keyword defaults for architectures), and
normalisation fills them in, so spelling a default out or leaving it implicit gives the same run id, while any
change that alters training gives a new one. Where the code changes what a config trains, ``SEMANTICS`` is bumped
and every id changes with it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import numbers
from dataclasses import dataclass, field

from . import data, models
from .errors import ConfigError

SEMANTICS = 2  # version of the training semantics; part of every run id (2: per-epoch rows on monitor subsets)
OPTIMIZERS = ("adam", "adamw", "sgd")  # plain SGD has no momentum
LOSSES = ("cross_entropy", "mse")
TRAIN_PRECISIONS = ("fp32", "bf16")  # bf16: the training step and per-epoch monitor under bfloat16 autocast


@dataclass(frozen=True)
class RunConfig:
    dataset: str
    family: str
    arch: dict = field(default_factory=dict)
    seed: int = 0
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    loss: str = "cross_entropy"
    train_per_class: int | None = None  # a stratified training subset; None trains on the whole training split
    val_per_class: int = 500  # validation images per class carved from the official training set
    subset_seed: int = 0
    train_precision: str = "fp32"  # the arithmetic of training; weights, gradients, optimiser and finals stay fp32
    semantics: int = SEMANTICS
    data_version: str | None = None  # a dataset of one's own: its arrays' hash (set from its record)

    def __post_init__(self):
        dataset = data.spec(self.dataset)
        shape = dataset.input_shape
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen: normalise once, here)
        if self.data_version is None:
            set_("data_version", dataset.version)
        set_("arch", models.normalise_arch(self.family, self.arch, shape))
        for name, low in (("seed", 0), ("epochs", 0), ("batch_size", 1), ("val_per_class", 1), ("subset_seed", 0),
                          ("semantics", 1)):
            set_(name, _int(name, getattr(self, name), low))
        if self.train_per_class is not None:
            set_("train_per_class", _int("train_per_class", self.train_per_class, 1))
        for name in ("lr", "weight_decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < float("inf"):
                raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
            set_(name, float(value))
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}: choose one of {list(OPTIMIZERS)}")
        if self.loss not in LOSSES:
            raise ConfigError(f"unknown loss {self.loss!r}: choose one of {list(LOSSES)}")
        if self.train_precision not in TRAIN_PRECISIONS:
            raise ConfigError(f"unknown train_precision {self.train_precision!r}: choose one of "
                              f"{list(TRAIN_PRECISIONS)}")
        if self.semantics != SEMANTICS:
            raise ConfigError(f"config has training semantics {self.semantics}, this code trains semantics "
                              f"{SEMANTICS}: results made by another version cannot be reproduced here")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown run setting(s) {sorted(unknown)}: a run config takes "
                              f"{[f.name for f in dataclasses.fields(cls)]}")
        return cls(**d)

    @property
    def run_id(self) -> str:
        """A hash of the config; fp32 training, the reference, leaves ``train_precision`` out, and a built-in
        dataset its ``data_version`` (none), so that the runs trained before those fields existed keep their ids."""
        identity = {k: v for k, v in self.to_dict().items()
                    if not (k == "train_precision" and v == "fp32") and not (k == "data_version" and v is None)}
        canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:20]

    def replace(self, **changes) -> RunConfig:
        return dataclasses.replace(self, **changes)


def _int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)
