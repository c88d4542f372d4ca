"""Datasets as in-memory tensors: read once through torchvision (or one array file), normalised once, split once.

A dataset is read from the data root (``settings.data_root``): either ``<root>/<name>.npz`` with arrays ``x_train``
(N,H,W,C uint8), ``y_train``, ``x_test``, ``y_test``, or torchvision's own files (``MNIST/raw/*.gz``...). The data
root may be read-only: archives are verified in place and unpacked into the cache (``settings.cache_dir``), which
also keeps an uncompressed array file per dataset so that later loads take a fraction of a second.

A dataset of one's own needs no record: ``<root>/<name>.npz`` or a folder in torchvision's ``ImageFolder`` layout
(``<root>/<name>/train/<class>/*.png`` and ``<root>/<name>/test/<class>/*.png``) is found by its name
(``available``, ``spec``), and its record is read from the data: class names, image shape, channel statistics, and
the arrays' hash (``DatasetSpec.version``), which every run of it carries, so a changed folder never serves old runs.
"""
from __future__ import annotations

import functools
import hashlib
import os
import re
import socket
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision.datasets as tvd
from filelock import FileLock
from torchvision.datasets.utils import check_integrity

from . import settings
from .errors import ConfigError, DataCorruptError, DataMissingError


@dataclass(frozen=True)
class DatasetSpec:
    """Everything minarch knows of a dataset; adding one is adding a record (``register``)."""
    name: str  # the key in file names, run ids and URLs: lower case, digits and '_'
    title: str  # how the book names it
    difficulty: int  # rank, easiest first: the order of the book's parts and of the cross-dataset claims
    mean: tuple[float, ...]  # per-channel statistics of the training set, the published values
    std: tuple[float, ...]
    input_shape: tuple[int, int, int]  # channels, height, width of one image (array files are checked against it)
    n_classes: int = 10
    reader: type | None = None  # the torchvision dataset class that knows the files; None: only <name>.npz
    npz_sha256: dict[str, str] | None = None  # reference checksums of the arrays' raw bytes, where published
    official: tuple[int, int] | None = None  # images in the published training and test splits (to price a sweep
    # where the files are absent: benchmarks/gpu.py)
    classes: tuple[str, ...] | None = None  # the classes' names, where the data names them (an ImageFolder's folders)
    version: str | None = None  # a dataset of one's own: its arrays' hash, part of every run of it (RunConfig)

    def __post_init__(self):
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name) or self.name in RESERVED:
            raise ConfigError(f"dataset name {self.name!r} must be lower-case letters, digits and '_' (starting with "
                              f"a letter) and not one of {sorted(RESERVED)}")
        if len(self.input_shape) != 3 or len(self.mean) != self.input_shape[0] or len(self.std) != self.input_shape[0]:
            raise ConfigError(f"dataset {self.name!r}: input_shape must be (channels, height, width) with one mean and "
                              f"std per channel, got {self.input_shape}, {self.mean}, {self.std}")
        if self.n_classes < 2:
            raise ConfigError(f"dataset {self.name!r} needs at least 2 classes, got {self.n_classes}")

    @property
    def chance(self) -> float:
        """The accuracy of guessing (balanced classes)."""
        return 1 / self.n_classes

    def archives(self) -> list[tuple[str, str]]:
        """(path relative to the data root, md5) of each file torchvision reads (none without a reader)."""
        if self.reader is None:
            return []
        if hasattr(self.reader, "resources"):  # MNIST family
            return [(f"{self.reader.__name__}/raw/{fn}", md5) for fn, md5 in self.reader.resources]
        return [(self.reader.filename, self.reader.tgz_md5)]  # CIFAR-10

    def how_to_get(self, root: Path) -> str:
        npz = f"put {root / (self.name + '.npz')} (arrays x_train, y_train, x_test, y_test) there"
        if self.reader is None:
            return npz + " (set MINARCH_DATA to the folder that holds it)"
        files = [str(root / rel) for rel, _ in self.archives()]
        return (f"{npz}, or torchvision's files {files} (set MINARCH_DATA to the folder that holds them), or run "
                f"once with internet access and a writable data root so that torchvision downloads them")


STUDIES = "studies"  # the results root's folder of analysis tables (engine.store), so never a dataset's name
RESERVED = {STUDIES}  # folder names of the results root that are not datasets
DATASETS: dict[str, DatasetSpec] = {}


def register(s: DatasetSpec) -> DatasetSpec:
    """Make a dataset known to every part of minarch: sweeps, chapters, the book's contents, the CLI."""
    DATASETS[s.name] = s
    return s


for _spec in (
    DatasetSpec("mnist", "MNIST", 1, (0.1307,), (0.3081,), (1, 28, 28), reader=tvd.MNIST,
                official=(60_000, 10_000)),
    DatasetSpec("fashion_mnist", "Fashion-MNIST", 2, (0.2860,), (0.3530,), (1, 28, 28),
                reader=tvd.FashionMNIST, official=(60_000, 10_000)),
    DatasetSpec(
        "cifar10", "CIFAR-10", 3, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), (3, 32, 32),
        reader=tvd.CIFAR10, official=(50_000, 10_000),
        npz_sha256={  # ../shared/data/README.md: the same images as the original batches, rows sorted by class
            "x_train": "61bea91e73ac2b02dfb856e685981dce64abe13d4e780aa98a1ac1e7c056d03b",
            "y_train": "a29f2a5ffc141bb1c9e1af453e9a5ef8c316b2f675f8cea1d849d220d33a14fb",
            "x_test": "52a9dc125982c0440d5eed87474b2f521e96c45a98df08e4329aa42c692b9d9d",
            "y_test": "a054c239a40ee7f2a5745e7e4bc11a51e9cb40c98134b602c1068e6a207487c6",
        }),
):
    register(_spec)


def by_difficulty(names=None) -> list[str]:
    """Dataset names (all, or those given) from the easiest to the hardest."""
    names = list(DATASETS) if names is None else list(dict.fromkeys(spec(n).name for n in names))
    return sorted(names, key=lambda n: (DATASETS[n].difficulty, n))


ARRAYS = ("x_train", "y_train", "x_test", "y_test")
SPLIT_SEED = 0  # the validation split is the same for every run and every profile


def spec(name: str, root: str | os.PathLike | None = None) -> DatasetSpec:
    """The record of dataset ``name``: a registered one, or one of one's own found in the data root (read once,
    then registered)."""
    if name not in DATASETS:
        if name not in available(root):
            raise ConfigError(f"unknown dataset {name!r}: choose one of {sorted(available(root))}, or put {name}.npz or an "
                              f"ImageFolder {name}/train/<class>/, {name}/test/<class>/ in the data root "
                              f"{settings.data_root(root)}")
        register(own(name, root))
    return DATASETS[name]


def available(root: str | os.PathLike | None = None) -> list[str]:
    """Every dataset a run may name: the registered ones, then the data root's own (``<name>.npz`` files and
    ``<name>/train`` folders whose name is a dataset name and no registered dataset's)."""
    root = settings.data_root(root)
    found = set()
    if root.is_dir():
        for path in root.iterdir():
            name = path.stem if path.suffix == ".npz" and path.is_file() else path.name if (path / "train").is_dir() \
                else None
            if name and re.fullmatch(r"[a-z][a-z0-9_]*", name) and name not in RESERVED:
                found.add(name)
    return list(DATASETS) + sorted(found - set(DATASETS))


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # (N, C, H, W) float32, normalised
    y: torch.Tensor  # (N,) int64

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device) -> Split:
        return Split(self.x.to(device), self.y.to(device))

    def rows(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x[idx], y[idx])`` for an index tensor of any shape (one minibatch, or one per stacked seed), gathered
        by ``index_select`` over the flattened rows: the same values, several times faster than advanced indexing on
        a CPU, where gathering the minibatches had cost more than the small models' own arithmetic."""
        flat = idx.reshape(-1)
        x = self.x.reshape(len(self), -1).index_select(0, flat).view(*idx.shape, *self.x.shape[1:])
        return x, self.y.index_select(0, flat).view(idx.shape)


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    val: Split
    test: Split
    n_classes: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])

    def to(self, device) -> Dataset:
        device = torch.device(device)
        if self.train.x.device == device:
            return self
        return Dataset(self.name, self.train.to(device), self.val.to(device), self.test.to(device), self.n_classes)

    def monitor(self, per_class: int) -> Dataset:
        """Every split cut to at most ``per_class`` images of each class (a split that small already stays whole),
        the same images for every run: what a history's per-epoch rows are measured on, a fraction of the cost of
        the whole splits."""
        if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
            raise ConfigError(f"monitor per_class must be an integer >= 1, got {per_class!r}")
        return Dataset(self.name, *(_cut(getattr(self, s), per_class) for s in ("train", "val", "test")),
                       n_classes=self.n_classes)


def _cut(split: Split, per_class: int) -> Split:
    y = split.y.cpu().numpy()
    counts = np.bincount(y)
    if counts.max() <= per_class:
        return split
    idx = torch.from_numpy(stratified_indices(y, min(per_class, int(counts[counts > 0].min())), SPLIT_SEED))
    idx = idx.to(split.x.device)
    return Split(split.x[idx], split.y[idx])


def load(name: str, *, val_per_class: int = 500, train_per_class: int | None = None, subset_seed: int = 0,
         root: str | os.PathLike | None = None, device="cpu") -> Dataset:
    """The dataset split into train / validation / test, normalised, on ``device``.

    The validation set (``val_per_class`` images of each class) is carved from the official training set with a
    fixed seed; ``train_per_class`` draws a stratified subset of the remaining training images (all when None),
    deterministically from ``subset_seed``. The test set is always the full official one.
    """
    return _load_cpu(name, val_per_class, train_per_class, subset_seed, str(settings.data_root(root))).to(device)


@functools.lru_cache(maxsize=4)
def _load_cpu(name, val_per_class, train_per_class, subset_seed, root) -> Dataset:
    s = spec(name, root)
    x_train, y_train, x_test, y_test = arrays(name, root)
    counts = np.bincount(y_train, minlength=s.n_classes)
    fits = int(counts.min()) - val_per_class  # training images of the smallest class once validation took its share
    if fits < 1 or (train_per_class is not None and train_per_class > fits):
        c = int(counts.argmin())
        raise ConfigError(f"dataset {name!r}: class {c} ({(s.classes or range(s.n_classes))[c]}) has "
                          f"{counts.min():,} training images; the validation split takes {val_per_class} per class"
                          + (f", so the largest train_per_class that fits is {fits}" if fits >= 1 else
                             ", which leaves none to train on: add images or choose a profile with a smaller "
                             "val_per_class"))
    val_idx = stratified_indices(y_train, val_per_class, SPLIT_SEED)
    pool = np.setdiff1d(np.arange(len(y_train)), val_idx)
    if train_per_class is None:
        train_idx = pool
    else:
        train_idx = pool[stratified_indices(y_train[pool], train_per_class, subset_seed)]
    normalise = _normaliser(s)
    split = lambda x, y: Split(normalise(x), torch.from_numpy(y.astype(np.int64)))  # noqa: E731
    return Dataset(name, split(x_train[train_idx], y_train[train_idx]), split(x_train[val_idx], y_train[val_idx]),
                   split(x_test, y_test), n_classes=s.n_classes)


def _normaliser(s: DatasetSpec):
    mean = torch.tensor(s.mean).view(1, -1, 1, 1)
    std = torch.tensor(s.std).view(1, -1, 1, 1)

    def normalise(x: np.ndarray) -> torch.Tensor:  # (N,H,W,C) uint8 -> (N,C,H,W) float32, in one pass of memory
        x = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).contiguous()
        out = torch.empty(x.shape, dtype=torch.float32).copy_(x)
        return out.mul_(1 / (255 * std)).sub_(mean / std)
    return normalise


def stratified_indices(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices of ``per_class`` random examples of each class, deterministic from ``seed``, in sorted order.

    Independent of the order of the rows' classes (the CIFAR-10 array file is sorted by class), since each class's
    examples are drawn by its own permutation.
    """
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        if per_class > len(members):
            raise ConfigError(f"asked for {per_class} examples of class {c} but only {len(members)} are available: "
                              f"lower the per-class count")
        picked.append(members[rng.permutation(len(members))[:per_class]])
    return np.sort(np.concatenate(picked))


# -- reading the files ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=3)
def arrays(name: str, root: str | os.PathLike | None = None) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_test, y_test) as uint8 arrays, images (N,H,W,C); from the cache when it is current."""
    s, root = spec(name, root), settings.data_root(root)
    if s.version is not None:
        return _own_arrays(name, root)[0]
    if (root / name / "train").is_dir():
        raise ConfigError(f"{root / name} is an image folder named like the built-in dataset {name!r}: rename it "
                          f"(the built-in {name} reads {s.how_to_get(root).split(' (')[0]})")
    npz = root / f"{name}.npz"
    sources = [npz] if npz.exists() else [root / rel for rel, _ in s.archives()]
    return _cached(name, _fingerprint(sources), lambda: _read_npz(s, npz) if npz.exists()
                   else _read_torchvision(s, root))[0]


def _cached(name: str, fingerprint: str, read, extra=lambda out: {}) -> tuple[tuple[np.ndarray, ...], dict]:
    """The arrays of ``name`` from the cache while ``fingerprint`` (of its sources) holds, else ``read()`` and
    cached, with ``extra(arrays)`` (numpy values) beside them; (arrays, extra)."""
    cached = settings.cache_dir() / "arrays" / f"{name}.npz"
    out = _read_cache(cached, fingerprint)
    if out is None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{cached}.lock"):  # one process builds the cache; sweep workers starting together wait
            out = _read_cache(cached, fingerprint)
            if out is None:
                arrays_ = read()
                _write_cache(cached, dict(zip(ARRAYS, arrays_), fingerprint=np.array(fingerprint), **extra(arrays_)))
                out = _read_cache(cached, fingerprint)
    return out


def _read_cache(path: Path, fingerprint: str) -> tuple[tuple[np.ndarray, ...], dict] | None:
    try:
        with np.load(path) as f:
            if str(f["fingerprint"]) == fingerprint:
                return tuple(f[k] for k in ARRAYS), {k: f[k] for k in f.files if k not in (*ARRAYS, "fingerprint")}
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        pass  # absent, stale or damaged: the cache is ours to rebuild
    return None


def _fingerprint(paths: list[Path]) -> str:
    parts = []
    for p in paths:
        st = p.stat() if p.exists() else None
        parts.append(f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}" if st else f"{p}:missing")
    return "|".join(parts)


def _write_cache(path: Path, arrays_: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays_)
    os.replace(tmp, path)


def _read_npz(s: DatasetSpec, path: Path) -> tuple[np.ndarray, ...]:
    try:
        with np.load(path) as f:
            missing = [k for k in ARRAYS if k not in f.files]
            if missing:
                raise DataCorruptError(f"{path} lacks the arrays {missing}: it must hold {list(ARRAYS)}")
            out = tuple(np.asarray(f[k]) for k in ARRAYS)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise DataCorruptError(f"{path} cannot be read ({err}): the file is truncated or damaged; "
                               f"replace it with a good copy") from err
    x_train, y_train, x_test, y_test = out
    c, h, w = s.input_shape
    if (x_train.dtype != np.uint8 or x_train.shape[1:] != (h, w, c) or x_test.shape[1:] != (h, w, c)
            or len(x_train) != len(y_train) or len(x_test) != len(y_test)):
        raise DataCorruptError(f"{path}: expected x_* as (N,{h},{w},{c}) uint8 ({s.name} images) with one label per "
                               f"image, got x_train {x_train.dtype}{x_train.shape}, y_train {y_train.shape}, "
                               f"x_test {x_test.shape}, y_test {y_test.shape}")
    labels = np.concatenate([y_train, y_test])
    if len(labels) and (labels.min() < 0 or labels.max() >= s.n_classes):
        raise DataCorruptError(f"{path}: labels must lie in 0..{s.n_classes - 1} ({s.name} has {s.n_classes} classes), "
                               f"found {labels.min()}..{labels.max()}")
    for key, want in (s.npz_sha256 or {}).items():
        got = hashlib.sha256(np.ascontiguousarray(dict(zip(ARRAYS, out))[key]).tobytes()).hexdigest()
        if got != want:
            raise DataCorruptError(f"{path}: array {key} has SHA-256 {got}, expected {want}; the file is damaged, "
                                   f"replace it with a good copy")
    return out


def _read_torchvision(s: DatasetSpec, root: Path) -> tuple[np.ndarray, ...]:
    if s.reader is None:
        raise DataMissingError(f"dataset {s.name!r} is missing from the data root {root}: {s.how_to_get(root)}")
    archives = s.archives()
    if any(not (root / rel).exists() for rel, _ in archives):
        _download(s, root)
    for rel, md5 in archives:
        if not check_integrity(str(root / rel), md5):
            raise DataCorruptError(f"{root / rel} fails its MD5 checksum (expected {md5}): the file is truncated or "
                                   f"damaged; delete it and download again, or replace it with a good copy")
    # Unpack into the cache, never into the data root: link the verified archives there and let torchvision work.
    staging = settings.cache_dir() / "torchvision"
    for rel, _ in archives:
        link = staging / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            if link.is_symlink():
                link.unlink()
            link.symlink_to((root / rel).resolve())
    parts = [s.reader(str(staging), train=train, download=True) for train in (True, False)]
    out = []
    for ds in parts:
        x = ds.data.numpy() if isinstance(ds.data, torch.Tensor) else np.asarray(ds.data)
        y = ds.targets.numpy() if isinstance(ds.targets, torch.Tensor) else np.asarray(ds.targets)
        out += [x[..., None] if x.ndim == 3 else x, y.astype(np.uint8)]
    return tuple(out)


def _download(s: DatasetSpec, root: Path) -> None:
    missing = [str(root / rel) for rel, _ in s.archives() if not (root / rel).exists()]
    problem = f"dataset {s.name!r} is missing from the data root {root} (no {root / (s.name + '.npz')}, no {missing})"
    if not network_available():
        raise DataMissingError(f"{problem} and the network is unreachable: {s.how_to_get(root)}")
    try:
        root.mkdir(parents=True, exist_ok=True)
        s.reader(str(root), train=True, download=True)
    except (OSError, RuntimeError) as err:
        raise DataMissingError(f"{problem} and downloading failed ({str(err).splitlines()[0]}): "
                               f"{s.how_to_get(root)}") from err


def network_available(host: str = "ossci-datasets.s3.amazonaws.com", timeout: float = 3.0) -> bool:
    """A quick reachability probe, so that a machine without internet gets an error at once instead of a hang."""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


# -- datasets of one's own ------------------------------------------------------------------------------------------

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
OWN_DIFFICULTY = 100  # a dataset of one's own comes after the built-in ones in the book


def own(name: str, root: str | os.PathLike | None = None) -> DatasetSpec:
    """The record of a dataset of one's own, read from its data (``_own_arrays``)."""
    root = settings.data_root(root)
    (x_train, y_train, x_test, _), meta = _own_arrays(name, root)
    values = x_train.reshape(-1, x_train.shape[-1]).astype(np.float64) / 255
    h, w, c = x_train.shape[1:]
    classes = tuple(str(k) for k in meta["classes"])
    return DatasetSpec(name, name, OWN_DIFFICULTY, tuple(round(float(v), 4) for v in values.mean(0)),
                       tuple(round(float(v), 4) for v in values.std(0)), (c, h, w), n_classes=len(classes),
                       classes=classes, version=str(meta["version"]))


def _own_arrays(name: str, root: Path) -> tuple[tuple[np.ndarray, ...], dict]:
    """(x_train, y_train, x_test, y_test) of a dataset of one's own as uint8 images (N,H,W,C) with labels 0..K-1,
    and {classes, version, source}; checked, then cached while its files are unchanged."""
    npz, folder = root / f"{name}.npz", root / name
    if npz.exists():
        sources, read, source = [npz], lambda: _checked_npz(npz), "array file"
    elif (folder / "train").is_dir():
        sources = sorted(p for p in folder.rglob("*") if p.is_file())
        read, source = lambda: _read_folder(folder), "image folder"
    else:
        raise DataMissingError(f"dataset {name!r} is not in the data root {root}: put {npz} or an ImageFolder "
                               f"{folder}/train/<class>/ and {folder}/test/<class>/ there")
    meta = {}

    def extra(out):
        names = meta.get("classes") or [str(k) for k in range(int(max(out[1].max(), out[3].max())) + 1)]
        digest = hashlib.sha256()
        for a in out:
            digest.update(np.ascontiguousarray(a).tobytes())
        h, w, c = out[0].shape[1:]  # said once, when first read
        print(f"dataset {name!r} ({source}): {len(names)} classes ({', '.join(names[:10])}"
              f"{', ...' if len(names) > 10 else ''}), {h}x{w}, {c} channel(s), {len(out[1]):,} training and "
              f"{len(out[3]):,} test images; cached until its files change", file=sys.stderr)
        return {"classes": np.array(names), "version": np.array(digest.hexdigest()[:16]), "source": np.array(source)}

    def read_keeping_names():
        out, names = read()
        meta["classes"] = names
        return _canonical(*out)

    listing = hashlib.sha256(_fingerprint(sources).encode()).hexdigest()
    out, kept = _cached(name, f"own:{listing}", read_keeping_names, extra)
    return out, {k: (v.tolist() if v.ndim else v.item()) for k, v in kept.items()}


def _canonical(x_train, y_train, x_test, y_test) -> tuple[np.ndarray, ...]:
    """Each split's images in one order whatever order the files gave them (by class, then by their bytes' hash):
    the same images, as an array file or a folder, make the same arrays, the same hash and the same runs."""
    out = []
    for x, y in ((x_train, y_train), (x_test, y_test)):
        keys = [hashlib.sha256(np.ascontiguousarray(img).tobytes()).hexdigest() for img in x]
        order = sorted(range(len(y)), key=lambda i: (int(y[i]), keys[i]))
        out += [x[order], y[order]]
    return tuple(out)


def _checked_npz(path: Path) -> tuple[tuple[np.ndarray, ...], None]:
    """An array file of one's own, checked and converted to uint8 (N,H,W,C); its classes are its labels."""
    try:
        with np.load(path) as f:
            missing = [k for k in ARRAYS if k not in f.files]
            if missing:
                raise DataCorruptError(f"{path} lacks the arrays {missing}: it must hold {list(ARRAYS)}")
            x_train, y_train, x_test, y_test = (np.asarray(f[k]) for k in ARRAYS)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise DataCorruptError(f"{path} cannot be read ({err}): replace it with a good copy") from err
    x_train, x_test = (_as_images(x, f"{path}: {k}") for x, k in ((x_train, "x_train"), (x_test, "x_test")))
    for x, y, k in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if y.ndim != 1 or len(y) != len(x):
            raise DataCorruptError(f"{path}: y_{k} must hold one label per image of x_{k} ({len(x)}), got shape "
                                   f"{y.shape}")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataCorruptError(f"{path}: x_train's images are {x_train.shape[1:]} (H,W,C) but x_test's "
                               f"{x_test.shape[1:]}: train and test must have one shape and channel count")
    y_train, y_test = _labels(y_train, y_test, f"{path}: y_train and y_test")
    return (x_train, y_train, x_test, y_test), None


def _as_images(x: np.ndarray, where: str) -> np.ndarray:
    """Images as (N,H,W,C) uint8: grey (N,H,W) gains a channel; floats in [0, 1] or [0, 255] are scaled."""
    x = x[..., None] if x.ndim == 3 else x
    if x.ndim != 4 or x.shape[-1] not in (1, 3) or min(x.shape[1:3]) < 4:
        raise DataCorruptError(f"{where} must be images (N,H,W) or (N,H,W,C) with C 1 or 3 and sides of 4 or more, "
                               f"got shape {x.shape}")
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise DataCorruptError(f"{where} must be uint8 or real numbers, got {x.dtype}")
    if not np.isfinite(x).all():
        raise DataCorruptError(f"{where} holds NaN or infinite values: clean them before training")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 255:
        raise DataCorruptError(f"{where} lies in {lo:g}..{hi:g}: images must lie in [0, 1] or [0, 255]")
    return np.round(x * (255 if hi <= 1 else 1)).astype(np.uint8)


def _labels(y_train: np.ndarray, y_test: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Labels as uint8 0..K-1, every class present in training: refused otherwise, saying which."""
    both = np.concatenate([y_train, y_test])
    if not np.issubdtype(both.dtype, np.integer) and not (np.isfinite(both).all() and (both == np.round(both)).all()):
        raise DataCorruptError(f"{where} must be integers 0..K-1, got {both.dtype} values such as {both[:3]}")
    both = both.astype(np.int64)
    k = int(both.max()) + 1 if len(both) else 0
    missing = sorted(set(range(k)) - set(np.unique(y_train.astype(np.int64)).tolist()))
    if len(both) and both.min() < 0 or missing or k < 2 or k > 255:
        raise DataCorruptError(f"{where} must be integers 0..K-1 with every class in training and 2 <= K <= 255: "
                               f"found {both.min() if len(both) else '-'}..{k - 1}"
                               + (f", no training image of class(es) {missing}" if missing else ""))
    return y_train.astype(np.uint8), y_test.astype(np.uint8)


def _read_folder(folder: Path) -> tuple[tuple[np.ndarray, ...], list[str]]:
    """An ImageFolder of one's own (``train/<class>/``, ``test/<class>/``) as arrays; classes in sorted order,
    grey images kept grey unless some are colour (then all RGB)."""
    from PIL import Image
    split = {}
    for part in ("train", "test"):
        where = folder / part
        if not where.is_dir():
            raise DataMissingError(f"{folder} has no {part}/ folder: an ImageFolder holds train/<class>/ and "
                                   f"test/<class>/")
        split[part] = {c.name: sorted(p for p in c.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
                       for c in sorted(where.iterdir()) if c.is_dir()}
    train, test = split["train"], split["test"]
    if set(train) != set(test):
        raise DataCorruptError(f"{folder}: train/ and test/ name different classes: only in train/ "
                               f"{sorted(set(train) - set(test))}, only in test/ {sorted(set(test) - set(train))}")
    if len(train) < 2:
        raise DataCorruptError(f"{folder}/train holds {len(train)} class folder(s): a task needs at least 2")
    empty = [f"{part}/{c}" for part, s in split.items() for c, files in s.items() if not files]
    if empty:
        raise DataCorruptError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in {empty}")
    files = [(p, k) for s in (train, test) for k, c in enumerate(sorted(train)) for p in s[c]]
    looks = []
    for p, _ in files:
        with Image.open(p) as im:
            looks.append((im.mode, im.size))
    mode = "L" if all(m in ("L", "1", "I;16", "I") for m, _ in looks) else "RGB"
    sizes = [s for _, s in looks]
    size = max(set(sizes), key=sizes.count)  # the size most images have: the odd ones are the others
    odd = next(((p, s) for (p, _), s in zip(files, sizes) if s != size), None)
    if odd is not None:
        raise DataCorruptError(f"{odd[0]} is {odd[1][0]}x{odd[1][1]} but {sizes.count(size)} of the {len(files)} images "
                               f"are {size[0]}x{size[1]}: every image of a dataset must have one size (resize them)")
    x = np.stack([_pixels(p, mode) for p, _ in files])
    y = np.array([k for _, k in files], dtype=np.uint8)
    n = sum(len(v) for v in train.values())
    x = x[..., None] if x.ndim == 3 else x
    return (x[:n], y[:n], x[n:], y[n:]), sorted(train)


def _pixels(path: Path, mode: str) -> np.ndarray:
    from PIL import Image
    with Image.open(path) as im:
        return np.asarray(im.convert(mode), dtype=np.uint8)
