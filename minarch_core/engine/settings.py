"""Where minarch finds data, keeps caches and stores results, and which device it trains on.

Every location is a setting with an environment variable, so notebooks, the CLI and workers on other machines agree
without passing paths around:

- ``MINARCH_DATA``: the data root (default ``data/`` of the project root). May be read-only; nothing is written there
  except a download the user asked for.
- ``MINARCH_CACHE``: a writable cache for unpacked archives and fast array files (default ``~/.cache/minarch``).
- ``MINARCH_RESULTS``: the run store (default ``results/`` of the project root).
- ``MINARCH_BUNDLE_MEMORY``: GiB of training state one bundle of runs may take (default 2; ``engine.sweep``).
- ``MINARCH_DEVICE``: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``. On CUDA, matrix
  products and convolutions run in full float32 (TF32 off), the arithmetic a CPU run does.
- ``MINARCH_PLUGINS``: modules that register families or grids of one's own (``models.register``,
  ``profiles.add_grid``), comma-separated, each a dotted module name or a ``.py`` file. Importing the engine
  imports them, so that chapters' kernels, sweep workers and the CLI all know the same families.
"""
from __future__ import annotations

import contextlib
import ctypes
import importlib
import importlib.util
import os
import sys
from pathlib import Path

import torch

from .errors import ConfigError


def project_root(start: str | os.PathLike | None = None) -> Path:
    """The checkout that ``start`` (default: the working folder) lies in, or ``start`` itself outside any."""
    here = Path(start if start is not None else os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "minarch_core").is_dir():
            return folder
    return here


def resolve(path: str | os.PathLike) -> Path:
    """``path`` as a project file: absolute paths as they are, relative ones from the project root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else project_root() / path


def data_root(root: str | os.PathLike | None = None) -> Path:
    if root is not None:
        return Path(root).expanduser()
    return Path(os.environ["MINARCH_DATA"]).expanduser() if os.environ.get("MINARCH_DATA") else resolve("data")


def use_data_root(root: str | os.PathLike | None) -> None:
    """Make ``root``, given explicitly (``--data``, a chapter's ``data``), this process's data root and its
    children's: every lookup of a dataset by name (one's own are found there) then agrees with what is loaded."""
    if root is not None:
        os.environ["MINARCH_DATA"] = str(Path(root).expanduser().resolve())


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "minarch"
    path = Path(os.environ.get("MINARCH_CACHE", default)).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_root(root: str | os.PathLike | None = None) -> Path:
    if root is not None:
        return Path(root).expanduser()
    return Path(os.environ["MINARCH_RESULTS"]).expanduser() if os.environ.get("MINARCH_RESULTS") else resolve("results")


BUNDLE_MEMORY_GIB = 2.0  # a bundle's weights, gradients, optimiser state and activations: a 2-core laptop's share


def bundle_memory(gib: float | str | None = None) -> int:
    """Bytes of training state a bundle of runs may take (``gib``, else MINARCH_BUNDLE_MEMORY, else 2 GiB)."""
    value = gib if gib is not None else os.environ.get("MINARCH_BUNDLE_MEMORY") or BUNDLE_MEMORY_GIB
    try:
        gib = float(value)
    except (TypeError, ValueError):
        gib = float("nan")
    if not 2**-10 <= gib <= 2**20:  # NaN fails too
        raise ConfigError(f"MINARCH_BUNDLE_MEMORY (--bundle-memory) must be a number of GiB in 0.001..1048576, got "
                          f"{value!r}")
    return int(gib * 2**30)


def device(name: str | torch.device | None = None) -> torch.device:
    """Resolve a device setting; asking for CUDA on a machine without it is an error, not a silent fallback."""
    name = str(name if name is not None else os.environ.get("MINARCH_DEVICE", "auto"))
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"unknown device {name!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for but CUDA is not available here: use 'cpu' or 'auto'")
    if dev.type == "cuda":  # full float32, as on a CPU: TF32 would change what a run computes
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    return dev


_WARNED_BF16 = []


def autocast(precision: str, dev: torch.device):
    """The autocast context a run's ``train_precision`` asks for on ``dev``: bfloat16 for "bf16" (weights,
    gradients and optimiser state stay float32; cross-entropy runs in float32), none for "fp32". A CPU without
    bfloat16 instructions (avx512_bf16 or AMX) still runs it, slower: said once per process."""
    if precision != "bf16":
        return contextlib.nullcontext()
    if dev.type == "cpu" and not cpu_has_bf16() and not _WARNED_BF16:
        _WARNED_BF16.append(True)
        print("minarch: warning: this CPU has no bfloat16 instructions (avx512_bf16 or AMX), so bf16 training runs "
              "slower than fp32 here: switch it off with train_precision='fp32' (minarch sweep --train-precision "
              "fp32)", file=sys.stderr)
    return torch.autocast(dev.type, dtype=torch.bfloat16, cache_enabled=False)  # no cache: CUDA graphs capture it


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (Linux's /proc/cpuinfo flags; elsewhere: assumed not)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def keep_freed_memory() -> bool:
    """Have glibc's allocator keep freed blocks of up to 32 MiB for reuse rather than give them back to the OS.
    A CPU training step allocates and frees activations of megabytes; past glibc's threshold each was a fresh
    mapping whose pages fault in on first touch, about a quarter of a 32-channel CNN's step on 2 cores. The
    arithmetic is untouched; elsewhere (macOS, musl) nothing happens. True when glibc took both settings."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    mmap_threshold, trim_threshold = -3, -1  # glibc's M_MMAP_THRESHOLD and M_TRIM_THRESHOLD
    return bool(libc.mallopt(mmap_threshold, 32 * 2**20)  # the ceiling of glibc's own sliding threshold
                and libc.mallopt(trim_threshold, 2**30))


def load_plugins(names: str | None = None) -> list:
    """Import each plugin module of ``names`` (default MINARCH_PLUGINS) once; a ``.py`` path is imported by file."""
    loaded = []
    for name in filter(None, (n.strip() for n in (names if names is not None else
                                                   os.environ.get("MINARCH_PLUGINS", "")).split(","))):
        if name.endswith(".py"):
            path = Path(name).expanduser().resolve()
            key = f"minarch_plugin_{abs(hash(str(path)))}"
            if key not in sys.modules:
                if not path.is_file():
                    raise ConfigError(f"MINARCH_PLUGINS names {name}, which is not a Python file: give an existing "
                                      f".py path or a dotted module name")
                spec = importlib.util.spec_from_file_location(key, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[key] = module
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[key]
                    raise
            loaded.append(sys.modules[key])
        else:
            try:
                loaded.append(importlib.import_module(name))
            except ModuleNotFoundError as err:
                raise ConfigError(f"MINARCH_PLUGINS names module {name!r}, which cannot be imported ({err}): put "
                                  f"it on PYTHONPATH or give a .py path") from None
    return loaded
