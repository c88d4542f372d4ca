"""Published tiny models: the reference points the frontier figure draws beside this book's own models.

Each is another architecture (several convolutions with pooling, batch normalisation, augmentation and long
schedules, which neither the paper's families nor the one-convolution hybrids use), so they show what the task
allows, not what these families reach. Their size is
counted as float32: 4 bytes per parameter. A "<" bound is drawn at the bound.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd


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
