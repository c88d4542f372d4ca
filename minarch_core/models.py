"""The three model families of the paper, the Phase-1 shape generator, and architecture normalisation.

Every architecture is a family name plus a small dict of knobs (``arch``). The builder functions' keyword defaults
are the one place where architecture defaults live; ``normalise_arch`` fills them in and validates, so that a run's
identity never depends on whether a default was spelled out.
"""
from __future__ import annotations

import inspect
import itertools
import math
import numbers
from dataclasses import dataclass

import torch
from torch import nn

from .errors import ConfigError

LADDER = (1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 500, 1000)  # the paper's 12 widths
STEPS = {"+": 1, "-": -1, "=": 0}  # increase / decrease / keep the width between consecutive layers


def mlp(input_shape, n_classes, *, widths=(100,)) -> nn.Sequential:
    """Flatten -> [Linear -> ReLU] per hidden width -> Linear."""
    sizes = [math.prod(input_shape), *widths]
    layers: list[nn.Module] = [nn.Flatten()]
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(sizes[-1], n_classes))


def cnn(input_shape, n_classes, *, channels=8) -> nn.Sequential:
    """One 3x3 convolution (stride 1, no padding) -> ReLU -> flatten -> linear classifier."""
    c, h, w = input_shape
    return nn.Sequential(nn.Conv2d(c, channels, 3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(channels * (h - 2) * (w - 2), n_classes))


class ViT(nn.Module):
    """A standard pre-norm Vision Transformer: patch embedding, class token, learned positions, encoder blocks."""

    def __init__(self, input_shape, n_classes, *, dim=32, depth=2, heads=4, patch=7, mlp_ratio=2):
        super().__init__()
        c, h, w = input_shape
        if h % patch or w % patch:
            raise ConfigError(f"ViT patch size {patch} does not divide the {h}x{w} image: pick a divisor "
                              f"(e.g. 7 or 14 for 28x28, 4 or 8 for 32x32)")
        self.embed = nn.Conv2d(c, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, (h // patch) * (w // patch) + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*(Block(dim, heads, mlp_ratio) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_classes)

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(len(x), -1, -1), x], dim=1) + self.pos
        return self.head(self.norm(self.blocks(x))[:, 0])


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        # spelled out, so that vmap can batch it; q is scaled before the product, which is cheaper on small heads
        attention = ((q * (d // self.heads) ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
        x = x + self.proj((attention @ v).transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.norm2(x))


BUILDERS = {"dnn": mlp, "cnn": cnn, "vit": ViT}
LIMITS = {  # (low, high) of each integer knob, so that nonsense fails before any training
    "widths": (1, 100_000), "channels": (1, 4096), "dim": (1, 4096), "depth": (1, 64), "heads": (1, 64),
    "patch": (1, 64), "mlp_ratio": (1, 16),
}


def normalise_arch(family: str, arch: dict | None) -> dict:
    """The architecture with every default filled in, types checked and ranges validated."""
    if family not in BUILDERS:
        raise ConfigError(f"unknown family {family!r}: choose one of {sorted(BUILDERS)}")
    defaults = {k: p.default for k, p in inspect.signature(BUILDERS[family]).parameters.items()
                if p.kind is p.KEYWORD_ONLY}
    unknown = set(arch or {}) - set(defaults)
    if unknown:
        raise ConfigError(f"unknown {family} setting(s) {sorted(unknown)}: {family} takes {sorted(defaults)}")
    out = {**defaults, **(arch or {})}
    for key, value in out.items():
        low, high = LIMITS[key]
        values = value if key == "widths" else [value]
        if key == "widths" and (isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") or not value):
            raise ConfigError(f"dnn widths must be a non-empty list of integers, got {value!r}")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or not low <= v <= high:
                raise ConfigError(f"{family} {key} must be integer(s) in {low}..{high}, got {value!r}")
        out[key] = [int(v) for v in values] if key == "widths" else int(value)
    if family == "vit" and out["dim"] % out["heads"]:  # caught with the config, not when a worker builds it
        raise ConfigError(f"ViT dim {out['dim']} is not divisible by heads {out['heads']}: pick dim as a multiple "
                          f"of heads")
    return dict(sorted(out.items()))


def build(family: str, arch: dict, input_shape, n_classes: int) -> nn.Module:
    return BUILDERS[family](tuple(input_shape), n_classes, **normalise_arch(family, arch))


def n_params(model: nn.Module) -> int:
    """Learnable parameters, biases included."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# -- the design grids ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Shape:
    """One Phase-1 configuration: the size (first width) and the step pattern, e.g. '+-' for up then down."""
    size: int
    pattern: str
    widths: tuple[int, ...]

    @property
    def depth(self) -> int:
        return len(self.widths)


def pattern_widths(size: int, pattern: str, ladder=LADDER) -> tuple[int, ...]:
    """Widths of a network whose first layer has ``size`` units and which then moves one rung up ('+'), down ('-')
    or stays ('=') on the width ladder per layer, clamped at the ladder's ends."""
    if size not in ladder:
        raise ConfigError(f"size {size} is not on the width ladder {ladder}")
    i, widths = ladder.index(size), [size]
    for step in pattern:
        if step not in STEPS:
            raise ConfigError(f"pattern step {step!r} is not one of {list(STEPS)}")
        i = min(max(i + STEPS[step], 0), len(ladder) - 1)
        widths.append(ladder[i])
    return tuple(widths)


def phase1_shapes(depths=(1, 2, 3, 4), sizes=LADDER, ladder=LADDER) -> list[Shape]:
    """Every (size, pattern) of the Phase-1 sweep: 3^(L-1) patterns per depth L; 480 with the defaults.

    Patterns that clamp at the ladder's ends can give the same widths as another pattern; the sweep trains each
    distinct network once and the analyses map them back through this list.
    """
    return [Shape(size, "".join(p), pattern_widths(size, "".join(p), ladder))
            for depth in depths for p in itertools.product(STEPS, repeat=depth - 1) for size in sizes]


def shape_of(widths) -> str:
    """The shape class of a width list: equal, increasing, decreasing (monotone, not all equal) or mixed."""
    widths = list(widths)
    up = all(a <= b for a, b in zip(widths, widths[1:]))
    down = all(a >= b for a, b in zip(widths, widths[1:]))
    return "equal" if up and down else "increasing" if up else "decreasing" if down else "mixed"
