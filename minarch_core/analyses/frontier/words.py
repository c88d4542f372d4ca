"""The frontier in words: sizes, precisions and sparsities for people, the frontier's owners and settings, and
``recommend``'s answer as a terminal prints it."""
from __future__ import annotations

import pandas as pd

from ...engine import data, models
from ...engine.compression import DEFAULT, Compression
from .. import racing
from ..grids import FLOATS
from . import choose
from .answer import sparsity_text

def ownership(front: pd.DataFrame) -> str:
    """Which family owns how much of a dataset's frontier (``pareto(summary, by=("dataset",))``), in words: each
    family's points, their range of bytes and accuracy, and the most accurate variant."""
    if front.empty:
        return "No variant learned the task: the frontier is empty."
    f = front.sort_values("size_bytes")
    parts = []
    for family, g in f.groupby("family", sort=False):
        span = (f"at {size_text(g.size_bytes.iloc[0])}" if len(g) == 1 else
                f"from {size_text(g.size_bytes.iloc[0])} to {size_text(g.size_bytes.iloc[-1])}")
        accuracy = (f"{g.test_mean.iloc[0]:.1%}" if len(g) == 1 else
                    f"{g.test_mean.min():.1%} to {g.test_mean.max():.1%}")
        parts.append(f"the **{models.family(family).title}** {len(g)} {'point' if len(g) == 1 else 'points'} {span} "
                     f"({accuracy})")
    best = f.iloc[-1]
    return (f"Across families the frontier has {len(f)} points, smallest first: "
            + ("; ".join(parts[:-1]) + "; and " + parts[-1] if len(parts) > 1 else parts[0])
            + f". Its most accurate variant is {best.model}, {sparsity_text(best.sparsity)}, with "
            f"{precision_text(best.precision)} weights ({best.method}): {size_text(best.size_bytes)}, "
            f"{best.test_mean:.2%} on test.")



def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``summarise`` (or of ``answers``) for a table: the precision in words and the test interval as
    '34.9%–36.5%'."""
    return frame.assign(precision=frame.precision.map(precision_text),
                        interval=frame.test_low.map("{:.1%}".format) + "–" + frame.test_high.map("{:.1%}".format))



def precision_text(precision: str) -> str:
    """'float16', or '4-bit' for an integer grid."""
    return precision if precision in FLOATS else f"{precision}-bit"



def size_text(n: float) -> str:
    """Bytes for people: 697 B, 1.2 kB, 35 kB, 1.3 MB."""
    for unit, step in (("MB", 1e6), ("kB", 1e3)):
        if n >= step:
            value = n / step
            return f"{value:.1f} {unit}" if value < 10 else f"{value:,.0f} {unit}"
    return f"{n:.0f} B"



def across(front: pd.DataFrame, within: float = 0.01) -> str:
    """The cross-dataset frontier in words: per dataset, the bytes of near-best accuracy and who owns them."""
    near = choose.near_best(front, within)
    parts = [f"on {data.spec(r.dataset).title}, **{size_text(r.size_bytes)}** ({r.model}, "
             f"{sparsity_text(r.sparsity)}, {precision_text(r.precision)}, "
             f"{r.method}) reach {r.test_mean:.1%} against the best {r.best:.1%}, {r.ratio:.0f}x smaller than that "
             f"model in dense float32" for r in near.itertuples()]
    order = near.sort_values("size_bytes").dataset.map(lambda d: data.spec(d).title).tolist()
    return (f"Within {within:.0%} of each dataset's best stored accuracy (chosen on validation, test reported), "
            + "; ".join(parts) + ". Ordered by the "
            f"bytes that near-best accuracy costs: {', '.join(order)}.")



def settings_text(table: pd.DataFrame, grid: Compression = DEFAULT) -> str:
    """The frontier's settings in words, from the study's compression ``grid`` and from ``table`` (one dataset's
    variants, completed): how many models it compressed and fine-tuned, and how many of its post-training variants
    were measured on the whole test split (for the chapter's first lines)."""
    titles = [models.family(f).title for f in models.FAMILIES if f in set(table.family)]
    post, tuned = table[table.method == "post-training"], table[table.method == "quantization-aware"]
    variants_ = post.groupby(choose.KEYS).test_acc.count()
    front, rec = grid.frontier, grid.recovery
    return (f"**Settings**: {post.run_id.nunique()} trained models ({grid.seeds} seeds per stable configuration of "
            f"the {', '.join(titles[:-1])} and {titles[-1]} grids); sparsities "
            f"{', '.join(f'{s:.0%}' for s in front.sparsities)}; precisions "
            f"{', '.join(precision_text(str(p)) for p in front.precisions)} ({front.settings[0][0]}, per "
            f"{front.settings[0][1]}); recovery: {tuned.run_id.nunique()} models fine-tuned {rec.epochs} epochs at "
            f"{', '.join(map(str, rec.precisions))} bits and sparsities "
            f"{', '.join(f'{s:.0%}' for s in rec.sparsities)}; confidence {choose.ASK['confidence'].default:.0%}; "
            f"the whole test split measured for {(variants_ > 0).sum():,} of the {len(variants_):,} post-training "
            f"variants (those reported) and every fine-tuned one. " + racing_text(post))



def racing_text(post: pd.DataFrame) -> str:
    """What racing saved on the validation split, in words, from the post-training rows ``race`` measured."""
    if "val_images" not in post or post.empty:
        return ""
    whole = post.groupby("dataset").val_images.transform("max")
    finished = post.groupby(choose.KEYS).finished.all()
    return (f"Racing (stages of {', '.join(f'{s:,}' for s in racing.STAGES)} images, then the whole split; "
            f"{racing.ALPHA:.0%} chance per family that any variant stops wrongly) let {finished.sum():,} of the "
            f"{len(finished):,} variants finish and measured {post.val_images.sum() / whole.sum():.0%} of the "
            f"validation image-evaluations that measuring every variant on the whole split takes "
            f"({whole.sum() / post.val_images.sum():.1f}x fewer).")



def recovery_text(summary: pd.DataFrame) -> str:
    """How much of the frontier the fine-tuned variants hold, in words: what fine-tuning only the owners' recovery
    grid (no finer rule picks which of their variants to fine-tune) buys."""
    aware = summary[summary.method == "quantization-aware"]
    if aware.empty:
        return "No variant was fine-tuned."
    keys = ["config_id", "sparsity", "precision", "method"]

    def held(front):
        return int(aware.merge(front[keys], on=keys).shape[0])
    family, overall = choose.pareto(summary), choose.pareto(summary, by=("dataset",))
    return (f"Of the {len(aware)} fine-tuned variants ({aware.config_id.nunique()} configurations, every sparsity "
            f"and bit width of the recovery grid), **{held(family)}** are on their family's Pareto set and "
            f"**{held(overall)}** on the frontier across families, which holds {len(overall)} points.")


def transcript(table: pd.DataFrame, answers: pd.DataFrame, dataset: str, profile: str) -> str:
    """``recommend``'s answer to the highest target of ``answers`` (``choose.answers``) it met, else to the last it
    missed, as a terminal shows the command and its answer."""
    met = answers[answers.met == "yes"]
    goal = met.target.max() if len(met) else answers.target.iloc[-1]
    answer = choose.recommend(table, goal).lines(dataset, profile)
    return "```text\n" + "\n".join([f"$ minarch recommend --dataset {dataset} --min-accuracy {goal:g}", *answer]) + \
        "\n```"
