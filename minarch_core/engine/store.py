"""The run store: one folder per run, named by the run id, written atomically; asking again returns it.

Layout: ``<root>/<dataset>/<run id>/`` holding ``config.json`` (the normalised config), ``summary.json`` (status,
parameter count, final metrics on the whole splits, the best epoch by the monitored validation accuracy, versions),
``history.parquet`` (one row per epoch, measured on the monitor subsets) and ``model.pt`` (the
final state dict). A run is written into a temporary folder and renamed into place in one step, so a reader never
sees half a run and two workers that trained the same run keep exactly one copy. A record that fails its checks
(a missing or truncated file, a config not hashing to its id) is moved aside to ``<root>/<dataset>/.corrupt/`` and trained again.

The analyses' tables live apart, in ``<root>/studies/<study id>/<dataset>/<table>.parquet`` (``Tables``): outside
the run namespace, and named by the study (profile plus overrides) that made them.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import platform
import shutil
import time
import uuid
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from . import data, models, settings
from .config import RunConfig
from .errors import ConfigError, StoreError
from .train import Result, build_model

FORMAT = 1  # layout version of the store; a store of another version is refused, never mixed
MARKER = "minarch-store.json"
FILES = ("config.json", "summary.json", "history.parquet", "model.pt")
RUN_ID = "[0-9a-f]" * 20  # the glob of a run folder's name: a run id and nothing else
STUDIES = data.STUDIES  # the folder of the analysis tables (a name no dataset may take)


@dataclass
class Run:
    path: Path
    config: RunConfig
    summary: dict

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def history(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / "history.parquet")

    def state_dict(self) -> dict:
        return torch.load(self.path / "model.pt", map_location="cpu", weights_only=True)

    @functools.cached_property
    def _weights(self) -> dict:  # read once: the analyses build a run's model anew for every variant
        return self.state_dict()

    def model(self, dataset) -> torch.nn.Module:
        """A fresh copy of the trained model on ``dataset``'s device; the stored weights are never touched."""
        model = build_model(self.config, dataset)
        model.load_state_dict(self._weights)
        return model.to(dataset.train.x.device)


class Store:
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = settings.results_root(root)
        marker = self.root / MARKER
        if marker.exists():
            found = json.loads(marker.read_text()).get("format")
            if found != FORMAT:
                raise StoreError(f"{self.root} is a run store of format {found}, this minarch reads format {FORMAT}: "
                                 f"point MINARCH_RESULTS (or --results) at a new folder, or use the minarch "
                                 f"version that wrote it")

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def path(self, cfg: RunConfig) -> Path:
        return self.root / cfg.dataset / cfg.run_id

    def get(self, cfg: RunConfig) -> Run | None:
        """The stored run of ``cfg``, or None when it has not been trained (or its record was corrupt)."""
        path = self.path(cfg)
        return self._read(path) if path.exists() else None

    def put(self, cfg: RunConfig, result: Result, device: str = "") -> Run:
        """Store a trained run atomically; if another worker stored it first, theirs is kept and returned."""
        final = self.path(cfg)
        tmp = self.root / cfg.dataset / ".tmp" / f"{cfg.run_id}.{uuid.uuid4().hex}"
        try:
            tmp.mkdir(parents=True)
            self._mark()
            (tmp / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1, sort_keys=True))
            (tmp / "summary.json").write_text(json.dumps(summarise(cfg, result, device), indent=1))
            result.history.to_parquet(tmp / "history.parquet", index=False)
            torch.save(result.state_dict, tmp / "model.pt")
            os.rename(tmp, final)
        except OSError as err:
            shutil.rmtree(tmp, ignore_errors=True)
            if final.exists():  # another worker won the race: one copy, theirs
                return self.get(cfg) or self.put(cfg, result, device)
            raise StoreError(f"cannot write run {cfg.run_id} to {final.parent} ({err.strerror or err}): make the "
                             f"results root writable and give it free space, or choose another with "
                             f"MINARCH_RESULTS / --results; the store is unchanged") from err
        return Run(final, cfg, json.loads((final / "summary.json").read_text()))

    def runs_of(self, frame: pd.DataFrame) -> list[Run]:
        """The runs named by a frame's ``dataset`` and ``run_id`` columns (e.g. ``regimes.representatives``)."""
        runs = [self._read(self.root / d / r) if (self.root / d / r).exists() else None
                for d, r in frame[["dataset", "run_id"]].itertuples(index=False)]
        missing = [r for r, run in zip(frame.run_id, runs) if run is None]
        if missing:
            raise KeyError(f"runs {missing} are not in the store {self.root}: run the sweep that makes them first")
        return runs

    def runs(self, dataset: str | None = None) -> Iterator[Run]:
        names = [data.spec(dataset).name] if dataset else sorted(data.DATASETS)
        for folder in (self.root / name for name in names):
            for path in sorted(folder.glob(RUN_ID)):
                run = self._read(path)
                if run is not None:
                    yield run

    def table(self, dataset: str | None = None, configs=None) -> pd.DataFrame:
        """One row per run (all of ``dataset``'s, or those of ``configs`` that are stored): config columns, derived
        architecture columns and the summary's metrics."""
        runs = self.runs(dataset) if configs is None else filter(None, map(self.get, configs))
        return pd.DataFrame([row(run) for run in runs])

    def histories(self, dataset: str | None = None, configs=None) -> pd.DataFrame:
        """Every epoch of every run (of ``dataset`` or of ``configs``), long format, with a ``run_id`` column."""
        runs = self.runs(dataset) if configs is None else filter(None, map(self.get, configs))
        frames = [run.history.assign(run_id=run.run_id) for run in runs]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def export(self, study, datasets, folder: str | os.PathLike) -> Path:
        """Everything a study computed, as ``<folder>/<study id>.zip``: ``runs.parquet`` (one row per run of the
        study's configs on ``datasets``), ``histories.parquet`` (every epoch of those runs), ``study.json`` and every
        analysis table (``<dataset>/<table>.parquet``; not the fine-tuned weights some keep beside them, which
        ``Tables.weights`` reads). What the book offers for download."""
        configs = [c for d in datasets for c in study.configs(d)]
        path = Path(folder) / f"{study.study_id}.zip"
        path.parent.mkdir(parents=True, exist_ok=True)
        tables = self.tables(study).folder
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, frame in (("runs", self.table(configs=configs)), ("histories", self.histories(configs=configs))):
                archive.writestr(f"{name}.parquet", frame.to_parquet(index=False))
            for file in sorted(tables.rglob("*")):
                if file.is_file() and not file.name.startswith(".") and file.suffix in (".parquet", ".json"):
                    archive.write(file, file.relative_to(tables).as_posix())
        os.replace(tmp, path)
        return path

    def tables(self, study) -> Tables:
        """The analysis tables of a study (a ``profiles.Profile`` with its overrides); its folder, named by
        ``study.study_id``, also holds ``study.json``, the profile that the id hashes."""
        return Tables(self.root / STUDIES / study.study_id, dataclasses.asdict(study))

    def _mark(self) -> None:
        if not (self.root / MARKER).exists():
            _write_atomic(self.root / MARKER, json.dumps({"format": FORMAT}))

    def _read(self, path: Path) -> Run | None:
        try:
            missing = [f for f in FILES if not (path / f).is_file()]
            if missing:
                raise ValueError(f"missing {missing}")
            cfg = RunConfig.from_dict(json.loads((path / "config.json").read_text()))
            if cfg.run_id != path.name:
                raise ValueError(f"its config hashes to {cfg.run_id}, not to its folder name")
            pq.read_metadata(path / "history.parquet")  # a truncated file has no footer: found here, not mid-analysis
            if not zipfile.is_zipfile(path / "model.pt"):  # torch.save writes a zip whose directory sits at the end
                raise ValueError("model.pt is truncated or not a torch checkpoint")
            return Run(path, cfg, json.loads((path / "summary.json").read_text()))
        except (ValueError, TypeError, ConfigError, OSError, pa.ArrowException) as err:
            self._set_aside(path, err)
            return None

    def _set_aside(self, path: Path, err: Exception) -> None:
        aside = path.parent / ".corrupt" / f"{path.name}.{time.strftime('%Y%m%dT%H%M%S')}.{uuid.uuid4().hex[:6]}"
        aside.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return  # another reader set it aside already
        warnings.warn(f"corrupt run record {path} ({err}): moved to {aside}; it will be trained again on demand",
                      stacklevel=3)


def summarise(cfg: RunConfig, result: Result, device: str = "") -> dict:
    h = result.history
    last = h.iloc[-1]
    trained = h[h.epoch > 0]
    best = trained.loc[trained.val_acc.idxmax()] if len(trained) and trained.val_acc.notna().any() else last
    return {
        "status": result.status, "n_params": result.n_params, "epochs_run": int(last.epoch),
        **{k: float(v) for k, v in result.final.items()},  # the whole splits, measured once at the end
        "best_epoch": int(best.epoch), "best_val_acc": float(best.val_acc), "test_acc_at_best": float(best.test_acc),
        "time_s": float(last.time_s), "device": device, "torch": torch.__version__, "python": platform.python_version(),
    }


def row(run: Run) -> dict:
    cfg = run.config.to_dict()
    arch = cfg.pop("arch")
    out = {"run_id": run.run_id, "config_id": run.config.replace(seed=0).run_id, **cfg,
           **models.describe(cfg["family"], arch)}
    return {**out, **run.summary}


class Tables:
    """The analysis tables of one study, one Parquet file per dataset and table, each written atomically, with the
    fingerprint of what it was computed from beside it (``<table>.fingerprint``; ``analyses.tables``)."""

    def __init__(self, folder: Path, study: dict):
        self.folder, self.study = Path(folder), study

    def path(self, dataset: str | tuple[str, ...], name: str) -> Path:
        """Where a table of ``dataset`` lives; a table across datasets (a tuple), in a folder named by them all."""
        names = [dataset] if isinstance(dataset, str) else list(dataset)
        return self.folder / "+".join(data.spec(d).name for d in names) / f"{name}.parquet"

    def across(self, dataset: str, name: str) -> list[Path]:
        """Every stored table ``name`` across datasets that include ``dataset``."""
        return [p for p in self.folder.glob(f"*/{name}.parquet") if data.spec(dataset).name in p.parent.name.split("+")]

    def save(self, dataset: str, name: str, frame: pd.DataFrame, fingerprint: str | None = None,
             weights: dict | None = None) -> pd.DataFrame:
        """Write the table (and ``weights``, the state dicts of its fine-tuned models by name, beside it as
        ``<table>.weights.pt``; None leaves those stored as they are), then its fingerprint (none: the table is
        kept, but never taken as up to date); a kill before the fingerprint leaves a table without one, computed
        again when next asked for."""
        path = self.path(dataset, name)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not (self.folder / "study.json").exists():
                _write_atomic(self.folder / "study.json", json.dumps(self.study, indent=1))
            path.with_suffix(".fingerprint").unlink(missing_ok=True)
            if weights is not None:
                self._save_weights(path.with_suffix(".weights.pt"), weights)
            frame.to_parquet(tmp, index=False)
            os.replace(tmp, path)
            if fingerprint is not None:
                _write_atomic(path.with_suffix(".fingerprint"), fingerprint)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"cannot write the analysis table {path} ({err.strerror or err}): make the results root "
                             f"writable and give it free space") from err
        return frame

    def fingerprint(self, dataset: str, name: str) -> str | None:
        """The fingerprint the table was stored with (None: no table, or none kept)."""
        path = self.path(dataset, name).with_suffix(".fingerprint")
        return path.read_text() if path.exists() and self.path(dataset, name).exists() else None

    def weights(self, dataset: str, name: str) -> dict:
        """The fine-tuned models' state dicts stored with a table, by name ({} when it has none)."""
        path = self.path(dataset, name).with_suffix(".weights.pt")
        return torch.load(path, map_location="cpu", weights_only=True) if path.exists() else {}

    @staticmethod
    def _save_weights(path: Path, weights: dict) -> None:
        if not weights:
            path.unlink(missing_ok=True)
            return
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        torch.save(weights, tmp)
        os.replace(tmp, path)

    def load(self, dataset: str, name: str) -> pd.DataFrame:
        path = self.path(dataset, name)
        if not path.exists():
            raise ConfigError(f"no {name} table for {dataset} in study {self.folder.name} ({path}): execute that "
                              f"dataset's chapters of this study first (or make book)")
        return pd.read_parquet(path)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(text)
    os.replace(tmp, path)
