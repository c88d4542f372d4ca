"""Tables for people: a few named columns, formatted numbers and a caption; long tables folded away, and the full
table offered as a download beside the figures."""
from __future__ import annotations

import html

import pandas as pd
from IPython.display import HTML

from ..analyses.frontier import precision_text, sparsity_text
from ..engine import data, models

PERCENT, COUNT, ACCURACY = "{:.0%}", "{:,.0f}", "{:.1%}"  # the formats the chapters use


def show(frame: pd.DataFrame, columns: dict | None, caption: str, download: str | None = None,
         fold_after: int = 12, empty: str | None = None) -> HTML:
    """``frame``'s ``columns`` ({column: (label, format or None)}; None: every column as it is named) as an HTML
    table with ``caption``, families and datasets by their titles; folded into a closed section when longer than
    ``fold_after`` rows; with a link to the full table when ``download`` is given; the sentence ``empty`` instead of
    a table with no rows, when given."""
    if frame.empty and empty is not None:
        return HTML(f"<p>{html.escape(empty)}</p>")
    columns = {c: (c, None) for c in frame.columns} if columns is None else columns
    missing = [c for c in columns if c not in frame]
    if missing:
        raise KeyError(f"columns {missing} are not in the table: it has {list(frame.columns)}")
    shown = readable(frame[list(columns)]).rename(columns={c: label for c, (label, _) in columns.items()})
    formats = {label: fmt for label, fmt in columns.values() if fmt}
    styler = shown.style.format(formats, na_rep="–").hide(axis="index").set_caption(html.escape(caption))
    body = styler.set_table_attributes('class="minarch-table"').to_html()
    link = f' <a href="{html.escape(download)}" download>Download the full table (CSV)</a>.' if download else ""
    if len(frame) > fold_after:
        body = (f"<details><summary>{html.escape(caption)} ({len(frame)} rows): show</summary>{body}</details>")
    return HTML(body + (f"<p class='minarch-download'>{link.strip()}</p>" if link else ""))


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its ``family`` and ``dataset`` keys shown by their titles (the names the figures use)."""
    titles = {"family": {name: f.title for name, f in models.FAMILIES.items()},
              "dataset": {name: data.spec(name).title for name in data.DATASETS}}
    return frame.assign(**{c: frame[c].map(lambda v, m=m: m.get(v, v)) for c, m in titles.items() if c in frame})


def archive(path, titles: list[str]) -> HTML:
    """The link to a study's archive (``Store.export``), from the reproducing page, with what it holds."""
    name = html.escape(path.name)
    return HTML(f"<p><a href='../figures/reproducing/{name}' download>Download <code>{name}</code></a> "
                f"({path.stat().st_size / 2**20:.1f} MiB): <code>runs.parquet</code>, <code>histories.parquet</code>, "
                f"<code>study.json</code>, <code>&lt;dataset&gt;/&lt;table&gt;.parquet</code> for "
                f"{html.escape(', '.join(titles))}, and the tables across them (<code>&lt;dataset&gt;+&lt;dataset&gt;"
                f"/findings.parquet</code>).</p>")


def downloads(links: list, why_none: str = "") -> HTML:
    """The exported models as downloads, one line each: (the targets it answers, the export's card, the zip's
    link)."""
    if not links:
        return HTML(f"<p>No model exported: {html.escape(why_none)}.</p>")
    items = []
    for targets, card, link in links:
        items.append(f"<li>{', '.join(f'{t:.0%}' for t in targets)}: <a href='{html.escape(link)}' download>"
                     f"{html.escape(card['model'])}, {sparsity_text(card['sparsity'])}, "
                     f"{precision_text(card['precision'])}, {html.escape(card['recovery'])}</a>: "
                     f"{card['payload_bytes']:,} bytes of weights (<code>model.onnx</code>, "
                     f"<code>model.minarch</code>, <code>card.json</code>, <code>card.md</code>)</li>")
    items = "".join(items)
    return HTML(f"<ul class='minarch-download'>{items}</ul>")


def claims(claims_: pd.DataFrame, study: str, datasets: list[str]) -> HTML:
    """The findings table: one row per part of each claim (the paper's statement once, above its parts), this
    book's estimate, the verdict and a link to the chapter whose figure shows it. A part of one dataset links to
    that dataset's chapter; a part across datasets (no dataset) to the first dataset's."""
    def link(row) -> str:
        dataset = row.dataset if isinstance(row.dataset, str) and row.dataset else datasets[0]
        page = row.figure if row.figure in ("method", "findings") else f"{dataset}/{row.figure}"
        return f"<a href='{html.escape(page)}.html'>{html.escape(row.figure)}</a>"

    def held(row) -> str:
        settings = getattr(row, "settings", float("nan"))
        return "" if settings != settings else f"{row.stable:.0f} of {settings:.0f}"

    first = ~claims_.claim.duplicated()
    rows = "".join(
        f"<tr><td>{f'<b>{html.escape(r.claim)}</b><br><i>the paper: {html.escape(r.paper)}</i>' if new else ''}"
        f"</td><td>{html.escape(r.part)}</td><td>{html.escape(r.text)}</td><td><b>{html.escape(r.verdict)}</b>"
        + (f"<br><small>matters beyond {html.escape(r.margin)}</small>" if getattr(r, "margin", "") else "")
        + f"</td><td>{held(r)}</td><td>{link(r)}</td></tr>" for r, new in zip(claims_.itertuples(), first))
    return HTML(f"<table class='minarch-table'><caption>The paper's claims, and the hybrids its future work proposes, "
                f"against the <code>{html.escape(study)}"
                f"</code> profile ({', '.join(data.spec(d).title for d in datasets)})</caption><thead><tr><th>claim</th>"
                f"<th>part</th><th>this book (95% interval)</th><th>verdict</th><th>holds under the threshold settings</th>"
                f"<th>figure</th></tr></thead>"
                f"<tbody>{rows}</tbody></table>")
