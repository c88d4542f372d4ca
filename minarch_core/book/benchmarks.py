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


HEAD = re.compile(r", (?P<date>\d{4}-\d\d-\d\d)[^,]*, commit (?P<commit>\S+)")  # a benchmark's first line


def where(text: str) -> str:
    """'<machine>, <date>, commit <c>' from a benchmark's first lines."""
    head = HEAD.search(text)
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


def output(text: str, script: str, built: str, missing: str) -> str:
    """One benchmark's section of the reproducing chapter, as HTML: when and on which commit ``script`` measured
    (against the commit the book was ``built`` from), its targets table and its whole output folded; ``missing``
    (what to run) when there is no output."""
    measured = HEAD.search(text) if script in text else None
    if not measured:
        return f"<p>{html.escape(missing)}</p>"
    same = measured["commit"] == built.split("+")[0]
    when = (f"These figures were measured on commit <code>{html.escape(measured['commit'])}</code> on "
            f"{html.escape(measured['date'])}; this book was built from commit <code>{html.escape(built)}</code>"
            + (", the same code." if same else ": the benchmark predates this build's code, so run it again to "
               "measure this commit."))
    rows = targets(text)
    table = ("<table class='minarch-table'><thead><tr><th>measure</th><th>value</th><th>target</th><th>verdict</th>"
             "</tr></thead><tbody>" + "".join(
                 f"<tr><td>{html.escape(r['label'])}</td><td>{html.escape(r['value'])}</td>"
                 f"<td>{html.escape(r['target'])}</td><td>{html.escape(r['verdict'])}</td></tr>" for r in rows)
             + "</tbody></table>") if rows else ""
    return f"<p>{when}</p>{table}{folded(text, f'The whole output of {script}')}"


def replay(text: str, summary: str, missing: str) -> str:
    """A diagnostic benchmark's output (``phases.py``, ``racing.py``) open on the page, its last line, the verdict,
    said again below the scrolling box; ``missing`` (what to run) when there is none."""
    if not text.strip():
        return f"<p>{html.escape(missing)}</p>"
    verdict = text.strip().splitlines()[-1].strip()
    return folded(text, summary, opened=True) + f"<p>In its words: {html.escape(verdict)}.</p>"
