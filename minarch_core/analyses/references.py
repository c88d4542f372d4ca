"""Published reference points: tiny models that the frontier figure draws beside this book's own, and the intrinsic
dimensions (Li et al. 2018) that the findings' summary draws beside its minimal sizes.

Each is another architecture (several convolutions with pooling, batch normalisation, augmentation and long
schedules, which neither the paper's families nor the one-convolution hybrids use), so they show what the task
allows, not what these families reach. Their size is
counted as float32: 4 bytes per parameter. A "<" bound is drawn at the bound.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ..engine import data, models


@dataclass(frozen=True)
class Reference:
    dataset: str
    name: str
    params: int
    accuracy: float  # test accuracy as published
    source: str  # where it is published
    note: str = ""

    @property
    def float32_bytes(self) -> int:
        return 4 * self.params


FASHION = "https://github.com/zalandoresearch/fashion-mnist#benchmark"
REFERENCES = (
    Reference("mnist", "Parameter-Efficient-MNIST", 697, 0.9903, "https://github.com/JoshWarn/Parameter-Efficient-MNIST",
              "CNN, augmentation"),
    Reference("mnist", "mnist-minimal-model", 4_862, 0.9907, "https://github.com/ruslangrimov/mnist-minimal-model",
              "CNN with batch normalisation"),
    Reference("cifar10", "cifar10-tiniest", 97_530, 0.944, "https://github.com/xvel/cifar10-tiniest",
              "CNN, augmentation, long schedule"),
    Reference("fashion_mnist", "MLP 256-128-64", 242_762, 0.900, FASHION, "parameters counted from its widths"),
    Reference("fashion_mnist", "2 conv layers, <100k parameters", 100_000, 0.925, FASHION, "an upper bound"),
    Reference("fashion_mnist", "2 conv layers, 113k parameters", 113_000, 0.922, FASHION),
    Reference("fashion_mnist", "DenseNet-BC, 768k parameters", 768_000, 0.954, FASHION, "augmentation"),
    Reference("fashion_mnist", "2 conv + 3 FC, 1.8M parameters", 1_800_000, 0.932, FASHION),
)


def table(dataset: str | None = None) -> pd.DataFrame:
    """The references (of one dataset, or all) as a frame, with their float32 bytes and a short tag (R1, R2 ... per
    dataset, smallest first) that the frontier figure labels them with."""
    rows = [{**asdict(r), "size_bytes": r.float32_bytes} for r in REFERENCES if dataset in (None, r.dataset)]
    out = pd.DataFrame(rows, columns=["dataset", "name", "params", "accuracy", "source", "note", "size_bytes"])
    out = out.sort_values(["dataset", "size_bytes"], ignore_index=True)
    return out.assign(tag="R" + (out.groupby("dataset").cumcount() + 1).astype(str))


# A second count of what a task needs: the intrinsic dimension of Li, Farkhoor, Liu and Yosinski, "Measuring the
# Intrinsic Dimension of Objective Landscapes" (ICLR 2018, arXiv 1804.08838), Table 1: the smallest random subspace
# of a large network's parameters in which training reaches 90 % of that network's accuracy (d_int90). They measured
# MNIST and CIFAR-10, not Fashion-MNIST.
LI_2018 = "https://arxiv.org/abs/1804.08838"
INTRINSIC = (("mnist", "fully connected network", 750), ("mnist", "LeNet", 290),
             ("cifar10", "fully connected network", 9_000), ("cifar10", "LeNet", 2_900))


def intrinsic(dataset: str | None = None) -> pd.DataFrame:
    """The published intrinsic dimensions (d_int90) of Li et al. 2018, of one dataset or all."""
    rows = [{"dataset": d, "network": n, "d_int90": k, "source": LI_2018} for d, n, k in INTRINSIC
            if dataset in (None, d)]
    return pd.DataFrame(rows, columns=["dataset", "network", "d_int90", "source"])


def intrinsic_in_words(minimal: pd.DataFrame) -> str:
    """How the minimal sizes of the DNN and the CNN relate to the intrinsic dimension published for the same kind
    of network on the same dataset (a ratio), for each dataset both count."""
    kinds = {"dnn": "fully connected network", "cnn": "LeNet"}
    lines = []
    for r in minimal[minimal.family.isin(kinds)].itertuples():
        published = intrinsic(r.dataset)
        published = published[published.network == kinds[r.family]]
        if published.empty or np.isnan(r.min_params):
            continue
        k = int(published.d_int90.iloc[0])
        bound = "at most " if r.bound == "at most" else ""
        lines.append(f"on {data.spec(r.dataset).title} the {models.family(r.family).title}'s minimal size, {bound}"
                     f"{r.min_params:,.0f} parameters, is {r.min_params / k:,.1f}x the intrinsic dimension of a "
                     f"{kinds[r.family]} ({k:,})")
    for family, kind in kinds.items():  # do the two counts order the datasets alike?
        m = minimal[(minimal.family == family) & (minimal.bound == "exact")].set_index("dataset").min_params
        k = intrinsic().query("network == @kind").set_index("dataset").d_int90
        both = [d for d in data.by_difficulty() if d in m.index and d in k.index]
        if len(both) == 2:
            alike = (m[both[1]] > m[both[0]]) == (k[both[1]] > k[both[0]])
            lines.append(f"for the {models.family(family).title} the two counts order "
                         f"{data.spec(both[0]).title} and {data.spec(both[1]).title} "
                         + ("alike" if alike else "differently")
                         + f" ({m[both[1]] / m[both[0]]:,.1f}x against {k[both[1]] / k[both[0]]:,.1f}x)")
    text = "; ".join(lines)
    text = text[:1].upper() + text[1:] + "." if text else ""
    unmeasured = [data.spec(d).title for d in data.by_difficulty(minimal.dataset.unique()) if intrinsic(d).empty]
    return text + (f" Li et al. did not measure {' or '.join(unmeasured)}." if unmeasured else "")
