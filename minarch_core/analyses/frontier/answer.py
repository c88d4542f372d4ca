"""``recommend``'s answer, as a terminal prints it: a module of its own so that choosing imports the words of its
answer and the frontier's other words import choosing, without a circle."""
from __future__ import annotations

import textwrap
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..grids import FLOATS

WIDTH = 84  # characters per line of recommend's answer (a page's text column fits 86)


@dataclass(frozen=True)
class Answer:
    """What ``recommend`` found: the chosen variant (or, when nothing met the target, the closest miss)."""
    met: bool
    row: pd.Series
    target: float
    confidence: float
    candidates: int  # variants within the family and byte limits
    family: str | None = None
    max_bytes: int | None = None

    def lines(self, dataset: str, profile: str = "quick", overrides: str = "") -> list[str]:
        """The answer for people; ``overrides`` (e.g. " --seeds 3") names the study as the command line does."""
        r = self.row
        precision = r.precision if r.precision in FLOATS else f"{r.precision}-bit ({r.scheme}, per {r.granularity})"
        pruned = sparsity_text(r.sparsity) + ("" if r.sparsity == 0 else " (global L1)")
        tuned = ", fine-tuned with the rounding in the loop" if r.method == "quantization-aware" else ""
        what = f"{r.model} ({int(r.n_params):,} parameters), {pruned}, weights at {precision}{tuned}"
        accuracy = (f"test accuracy {r.test_mean:.2%} (mean of {int(r.seeds)} seeds; {self.confidence:.0%} "
                    f"interval {r.test_low:.2%}..{r.test_high:.2%})" if not np.isnan(r.test_mean) else
                    "test accuracy not measured yet (tables.recommend measures it)")
        if self.met:
            head = [f"the smallest variant whose own {self.confidence:.0%} lower bound (over its seeds, on the "
                    f"validation split) reaches {self.target:.1%} on {dataset}:",
                    f"  {what}",
                    f"  {int(r.size_bytes):,} bytes stored ({r.ratio:.1f}x smaller than its dense float32 "
                    f"{int(r.dense_bytes):,} bytes)",
                    f"  {accuracy}",
                    f"  chosen on the validation split (lower bound {r.val_low:.2%} >= {self.target:.1%}); the "
                    f"test split is reported, never used to choose",
                    f"  the bound holds for each variant alone, not for the smallest of the {self.candidates} "
                    f"searched (chosen as the smallest that passes, it is favoured by luck): read the test interval "
                    f"too"]
        else:
            head = [f"no stored variant's own {self.confidence:.0%} lower bound reaches {self.target:.1%} on "
                    f"{dataset} ({self.candidates} variants searched). Closest miss:",
                    f"  {what}: {int(r.size_bytes):,} bytes, validation lower bound {r.val_low:.2%}",
                    f"  {accuracy}",
                    f"  to search further, train larger models or more seeds: minarch sweep --dataset {dataset} "
                    f"--profile paper --family {r.family}, then ask again (its frontier is computed then)"]
        head = [textwrap.fill(line, WIDTH, subsequent_indent="    ") for line in head]  # a terminal's width
        limits = (f" --family {self.family}" if self.family else "") + \
            (f" --max-bytes {self.max_bytes}" if self.max_bytes else "")
        return head + [f"  reproduce: minarch recommend --dataset {dataset} --profile {profile}{overrides}",
                       f"    --min-accuracy {self.target:g} --confidence {self.confidence:g}{limits}"]


def sparsity_text(sparsity: float) -> str:
    """'dense', or 'pruned to 90%'."""
    return "dense" if sparsity == 0 else f"pruned to {sparsity:.0%}"
