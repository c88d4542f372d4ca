"""A throwaway family, registered the way a user adds one from outside the package (``MINARCH_PLUGINS``): average
pooling, then a linear classifier, with a grid in the smoke profile. The manual shows this file's code
(book/using/extending.md; tests/test_manual.py keeps them equal)."""
from torch import nn

from minarch_core.engine import models, profiles


def pooled(input_shape, n_classes, *, pool=2):
    c, h, w = input_shape
    features = c * (h // pool) * (w // pool)
    return nn.Sequential(nn.AvgPool2d(pool), nn.Flatten(),
                         nn.Linear(features, n_classes))


models.register(models.Family(
    "pooled", "Pooled", pooled, {"pool": (1, 28)}, "pool",
    describe=lambda a: {"depth": 1, "width": a["pool"], "pool": a["pool"]},
    label=lambda a: f"Pooled /{a['pool']}", cpu_stacks_seeds=True))
profiles.add_grid("smoke", "pooled", profiles.Grid("pooled", (1, 2)))
