"""What every chapter notebook does first: check its papermill parameters, then know its dataset, profile, store
and figure folder. A wrong parameter stops the notebook here, with the parameter's name and the fix."""
from __future__ import annotations

import numbers
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import plots, profiles, regimes, settings, sweep
from .data import DATASETS, spec as dataset_spec
from .errors import ConfigError
from .profiles import Profile
from .store import Store

# name: (accepted types, what it means); None among the types means "optional"
PARAMETERS = {
    "dataset": ((str,), f"one of {sorted(DATASETS)}"),
    "profile": ((str,), f"one of {list(profiles.PROFILES)}"),
    "seeds": ((int, None), "seeds per configuration (overrides the profile)"),
    "epochs": ((int, None), "training epochs (overrides the profile)"),
    "train_per_class": ((int, None), "training images per class (overrides the profile)"),
    "device": ((str, None), "auto, cpu, cuda or cuda:N; None reads MINARCH_DEVICE"),
    "results": ((str, None), "run store folder (default: MINARCH_RESULTS or ./results)"),
    "data": ((str, None), "data root (default: MINARCH_DATA or ./data)"),
    "workers": ((int,), "parallel training processes"),
    "renderer": ((str,), "'default' in JupyterLab, 'book' when building the book"),
    "figures": ((str, None), "folder for SVG/PNG copies of the figures (none when empty)"),
    "datasets": ((str,), "comma-separated datasets of the findings chapter"),
    "build_info": ((str,), "the build-info.json that make book wrote (reproducing chapter)"),
    "benchmark": ((str,), "the output of make benchmark to print (reproducing chapter)"),
}


class ParameterError(ConfigError):
    """A notebook parameter has the wrong type or value."""


def check(name: str, value):
    """``value`` if it has the parameter's type, else a ParameterError naming the parameter and the fix."""
    types, meaning = PARAMETERS[name]
    if value is None and None in types:
        return None
    if int in types and isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if str in types and isinstance(value, str):
        return value
    kinds = " or ".join("None" if t is None else t.__name__ for t in types)
    raise ParameterError(f"notebook parameter {name!r} must be {kinds} ({meaning}), got {value!r} "
                         f"({type(value).__name__}): pass e.g. -p {name} <value> to papermill")


@dataclass
class Chapter:
    dataset: str
    profile: Profile
    store: Store
    device: str | None
    workers: int
    figures: Path | None

    def configs(self, grids=None):
        return self.profile.configs(self.dataset, grids)

    def sweep(self, grids=None) -> pd.DataFrame:
        """Train what the store lacks of this chapter's grids (nothing when it holds them all); their table."""
        configs = self.configs(grids)
        if self.workers > 1 and any(self.store.get(c) is None for c in configs):
            with sweep.process_pool(self.workers) as pool:
                return sweep.run(configs, self.store, executor=pool, device=self.device, progress=False)
        return sweep.run(configs, self.store, device=self.device, progress=False)

    def features(self, grids=None) -> pd.DataFrame:
        """Per-run features (regimes.run_features) of this chapter's runs; they must have been trained."""
        configs = self.configs(grids)
        table = self.store.table(configs=configs)
        if len(table) < len(configs):
            raise ConfigError(f"{len(configs) - len(table)} of the {len(configs)} runs of profile "
                              f"{self.profile.name!r} on {self.dataset} are not in {self.store.root}: execute the "
                              f"sweep chapter first (or make book)")
        return regimes.run_features(table, self.store.histories(configs=configs))

    def figure(self, chart, name: str, folder: str | None = None):
        """Save SVG/PNG copies of ``chart`` (when a figure folder is set) under ``folder`` (default: the dataset),
        and return it for display."""
        if self.figures is not None:
            plots.save(chart, self.figures / (folder or self.dataset) / name)
        return chart

    def save(self, name: str, frame: pd.DataFrame) -> pd.DataFrame:
        """Keep an analysis table for later chapters (the summary reads every dataset's)."""
        path = self._table_path(self.dataset, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
        return frame

    def load(self, name: str, dataset: str | None = None) -> pd.DataFrame:
        path = self._table_path(dataset or self.dataset, name)
        if not path.exists():
            raise ConfigError(f"no {name} table for {dataset or self.dataset} (profile {self.profile.name!r}) at "
                              f"{path}: execute that dataset's {name} chapter first (or make book)")
        return pd.read_parquet(path)

    def _table_path(self, dataset: str, name: str) -> Path:
        return self.store.root / dataset / "analyses" / f"{self.profile.name}-{name}.parquet"


def open_chapter(dataset="mnist", profile="quick", seeds=None, epochs=None, train_per_class=None, device="auto",
                 results=None, data=None, workers=1, renderer="default", figures=None) -> Chapter:
    """Check every parameter, apply the settings, and return the chapter's context."""
    given = dict(dataset=dataset, profile=profile, seeds=seeds, epochs=epochs, train_per_class=train_per_class,
                 device=device, results=results, data=data, workers=workers, renderer=renderer, figures=figures)
    p = {name: check(name, value) for name, value in given.items()}
    dataset_spec(p["dataset"])
    overrides = {k: p[k] for k in ("seeds", "epochs", "train_per_class") if p[k] is not None}
    prof = profiles.get(p["profile"]).replace(**overrides)
    if p["data"]:
        os.environ["MINARCH_DATA"] = p["data"]  # the chapter's analyses load data through the setting
    settings.device(p["device"])  # fails here, not mid-chapter, when CUDA is asked for and absent
    if p["workers"] < 1:
        raise ParameterError(f"notebook parameter 'workers' must be >= 1, got {p['workers']}")
    plots.use_renderer(p["renderer"])
    return Chapter(p["dataset"], prof, Store(p["results"]), p["device"], p["workers"],
                   Path(p["figures"]) if p["figures"] else None)
