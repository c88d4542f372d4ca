"""The benchmarks' printed outputs for people: their "== targets ==" sections as one table (the manual's speed table
and the reproducing chapter's), and the full output folded away one click from it."""
from __future__ import annotations

import html
import re

TARGET = re.compile(r"^(?P<label>\S.*?)\s+(?P<value>-|[-\d.]+|nan) \(target (?P<target>[^)]+)\): (?P<verdict>.+)$")


def targets(text: str) -> list[dict]:
    """The rows of a benchmark's targets section: label, value, target and verdict, as printed."""
    section = text.split("== targets", 1)[1].split("\n", 1)[1] if "== targets" in text else ""
    return [m.groupdict() for m in map(TARGET.match, section.splitlines()) if m]


def where(text: str) -> str:
    """'<machine>, <date>, commit <c>' from a benchmark's first lines."""
    head = re.search(r", (?P<date>\d{4}-\d\d-\d\d)[^,]*, commit (?P<commit>\S+)", text)
    machine = re.search(r"^(?:machine|device): (.+)$", text, re.M)
    return (f"{machine.group(1).split(',')[0] if machine else 'unknown machine'}, {head['date']}, commit "
            f"{head['commit']}") if head else "not measured"


def table(cpu: str, gpu: str) -> str:
    """Every target of both outputs (``speed.py``'s, ``gpu.py``'s) as a Markdown table, with where each was
    measured."""
    rows = ["| measure | value | target | verdict | measured on |", "|---|---|---|---|---|"]
    for text, source in ((cpu, "speed.py"), (gpu, "gpu.py")):
        for r in targets(text):
            rows.append(f"| {r['label']} | {r['value']} | {r['target']} | {r['verdict']} | "
                        f"`{source}`: {where(text)} |")
    return "\n".join(rows)


def folded(text: str, summary: str, opened: bool = False) -> str:
    """``text`` as printed (its tables keep their columns: it scrolls sideways rather than wrap), in a section
    closed unless ``opened``."""
    return (f"<details{' open' if opened else ''}><summary>{html.escape(summary)}</summary>"
            f"<pre style='white-space: pre; overflow-x: auto; font-size: 0.8em'>{html.escape(text)}</pre></details>")
