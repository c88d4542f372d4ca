"""Live progress of long work, also when it runs in other processes: the analysis tables a build computes two at a
time report how far each has got (its phase, done of total, time left), as training does.

Long loops count through ``bar`` (a tqdm bar on a terminal, or nothing). Inside ``to_file(path)``, which a worker
process opens around its task, the same bar instead writes how far it is to ``path`` (a small JSON file, replaced
atomically); a ``Board`` in the parent reads every such file and shows one line per task.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import os
import sys
import threading
import time
from pathlib import Path

from tqdm import tqdm

_target: contextvars.ContextVar[Path | None] = contextvars.ContextVar("progress_file", default=None)


@contextlib.contextmanager
def to_file(path: str | os.PathLike):
    """Within this block, every ``bar`` reports to ``path`` (for the process that started this one)."""
    token = _target.set(Path(path))
    try:
        yield
    finally:
        _target.reset(token)


def bar(phase: str, total: int = 0, unit: str = "it", show: bool = True):
    """A progress bar for ``phase`` of ``total`` ``unit``s (``total`` may grow, as with tqdm): to the progress file
    when one listens, else a tqdm bar when ``show``, else one that shows nothing."""
    path = _target.get()
    if path is not None:
        return _FileBar(path, phase, total, unit)
    return tqdm(total=total, desc=phase, unit=unit, disable=not show, smoothing=0)


class _FileBar:
    """The part of tqdm's interface the loops use (``update``, ``total``, ``refresh``, a context), written to a
    file: at most once a second, and at the start and end of the phase."""

    def __init__(self, path: Path, phase: str, total: int, unit: str):
        self.path, self.phase, self.total, self.unit = path, phase, total, unit
        self.n, self.start, self.written = 0, time.time(), 0.0
        self._write()

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.time() - self.written >= 1 or self.n >= self.total:
            self._write()

    def refresh(self) -> None:
        self._write()

    def close(self) -> None:
        self._write()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()

    def __iter__(self):
        raise TypeError("iterate over your own items and call update()")

    def _write(self) -> None:
        self.written = time.time()
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps({"phase": self.phase, "done": self.n, "total": self.total, "unit": self.unit,
                                   "start": self.start, "now": self.written}))
        os.replace(tmp, self.path)


def read(path: Path) -> dict | None:
    """A task's last report, or None before its first."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def describe(report: dict | None, now: float | None = None) -> str:
    """One report in words: "racing 40/90 model-stages, about 2 min left"."""
    if report is None:
        return "waiting"
    done, total = report["done"], report["total"]
    text = f"{report['phase']} {done:,}/{total:,} {report['unit']}"
    elapsed = (now or time.time()) - report["start"]
    if 0 < done < total:
        left = elapsed * (total - done) / done
        text += f", about {left / 60:.0f} min left" if left >= 90 else f", about {left:.0f} s left"
    return text


class Board:
    """Shows how far each task of ``labels`` (task -> how a reader names it) has got, from their progress files in
    ``folder`` (``<task>.json``): one line rewritten every second on a terminal, else (a log) a line per task every
    ``every`` seconds (none with MINARCH_PROGRESS=0). ``finish(task, seconds)`` prints that task's last line."""

    def __init__(self, folder: Path, labels: dict[str, str], every: float = 60.0, live: bool | None = None):
        self.folder, self.labels, self.every = Path(folder), dict(labels), every
        self.quiet = os.environ.get("MINARCH_PROGRESS", "1") == "0"  # only the tasks' done lines
        self.live = (sys.stdout.isatty() and not self.quiet) if live is None else live
        self.stop, self.lock, self.open = threading.Event(), threading.Lock(), set(labels)

    def file(self, task: str) -> Path:
        return self.folder / f"{task}.json"

    def line(self) -> str:
        """Every running task's report, then how many wait for a worker."""
        now, reports = time.time(), {t: read(self.file(t)) for t in self.labels if t in self.open}
        running = [f"{self.labels[t]}: {describe(r, now)}" for t, r in reports.items() if r is not None]
        waiting = sum(r is None for r in reports.values())
        return " · ".join(running + ([f"{waiting} waiting"] if waiting else []))

    def finish(self, task: str, seconds: float) -> None:
        with self.lock:
            self.open.discard(task)
            self._say(f"{self.labels[task]}: done in {seconds:.1f} s\n")

    def __enter__(self):
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *_):
        self.stop.set()
        self.thread.join()
        if self.live:
            self._say("\r\033[K")

    def _run(self):
        last = time.time()
        while not self.stop.wait(1.0 if self.live else min(self.every, 1.0)):
            with self.lock:
                if self.live:
                    self._say("\r\033[K" + self.line()[:max(20, _width() - 1)])
                elif time.time() - last >= self.every and self.open and not self.quiet:
                    last = time.time()
                    self._say(self.line() + "\n")

    def _say(self, text: str) -> None:
        sys.stdout.write(("\r\033[K" if self.live and text.endswith("\n") else "") + text)
        sys.stdout.flush()


def _width() -> int:
    try:
        return os.get_terminal_size().columns
    except OSError:
        return 120
