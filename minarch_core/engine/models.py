"""The model families of the paper and two hybrids of them, the Phase-1 shape generator, and architecture
normalisation.

A **family** is one record (``Family``): its builder, the limits of its knobs, the knob a sweep varies, how it
describes itself in a table, whether a CPU stacks its seeds, its fused form and its weight layers. Adding a family
is adding a record to ``FAMILIES`` (and a grid to a profile); a family whose record names a fused module
(``engine.fused``) trains many architectures as one program, any other one architecture at a time. Every
architecture is a family name plus a small dict of knobs (``arch``); the builder's keyword defaults are the one
place where architecture defaults live, and ``normalise_arch`` fills them in and validates, so that a run's identity
never depends on whether a default was spelled out.
"""
from __future__ import annotations

import functools
import inspect
import itertools
import json
import math
import numbers
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from . import fused
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


class Transformer(nn.Module):
    """A pre-norm transformer classifier over the tokens its ``embed`` makes of an image: class token, learned
    positions, encoder blocks, LayerNorm, linear head. The ViT and the conv + attention hybrid differ only in
    ``embed``."""

    def __init__(self, embed: nn.Module, tokens: int, n_classes, *, dim, depth, heads, mlp_ratio):
        super().__init__()
        self.embed = embed
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*(Block(dim, heads, mlp_ratio) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_classes)

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos  # shape[0]: traced, not fixed
        return self.head(self.norm(self.blocks(x))[:, 0])


class ViT(Transformer):
    """A standard pre-norm Vision Transformer: patch embedding, class token, learned positions, encoder blocks.

    The default patch (None, ``default_patch``) is a quarter of the image side where that divides it: the same 4x4
    grid of 16 patches (7 on 28x28, 8 on 32x32, 10 on 40x40); else the largest divisor of both sides below it."""

    def __init__(self, input_shape, n_classes, *, dim=32, depth=2, heads=4, patch=None, mlp_ratio=2):
        c, h, w = input_shape
        patch = patch or default_patch(input_shape)
        if h % patch or w % patch:
            divisors = [k for k in range(1, min(h, w) + 1) if h % k == 0 and w % k == 0]
            raise ConfigError(f"ViT patch size {patch} does not divide the {h}x{w} image: choose the knob 'patch' "
                              f"among the divisors of both sides {divisors}, or leave it unset "
                              f"({default_patch(input_shape)} here)")
        super().__init__(nn.Conv2d(c, dim, patch, stride=patch), (h // patch) * (w // patch), n_classes, dim=dim,
                         depth=depth, heads=heads, mlp_ratio=mlp_ratio)


def default_patch(input_shape) -> int:
    """A quarter of the image side, or the largest divisor of both sides below it: the patches always tile the
    image, in a grid of about 4x4."""
    h, w = input_shape[-2:]
    return next(k for k in range(max(1, min(h, w) // 4), 0, -1) if h % k == 0 and w % k == 0)


def stem(channels_in: int, channels: int, pool: int) -> list[nn.Module]:
    """The hybrids' convolutional stem: a 3x3 convolution of stride 2 (padding 1: the image side halved, rounded
    up), ReLU, then ``pool`` x ``pool`` max-pooling. Stride 2 quarters the stem's arithmetic at full resolution."""
    return [nn.Conv2d(channels_in, channels, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(pool)]


def stem_map(input_shape) -> tuple[int, int]:
    """What the stem's convolution leaves of the image, (height, width): each side halved, rounded up."""
    return tuple((s + 1) // 2 for s in input_shape[-2:])


def stem_side(input_shape, pool: int) -> tuple[int, int]:
    """The stem's feature map, (height, width), after the pooling (floored, as ``MaxPool2d`` does)."""
    return tuple(s // pool for s in stem_map(input_shape))


def default_pool(input_shape, side: int) -> int:
    """The smallest pool after which the stem's feature map is at most ``side`` x ``side`` positions."""
    return max(stem_map(input_shape)) // (side + 1) + 1


MLP_SIDE, TOKEN_SIDE = 8, 4  # the hybrids' default maps: conv + MLP at most 8x8 positions, conv + attention at most
# 4x4 tokens, the ViT's own 16 patches (7x7 and 4x4 on 28x28 images, 8x8 and 4x4 on 32x32)


def conv_mlp(input_shape, n_classes, *, channels=4, pool=None, ratio=4) -> nn.Sequential:
    """Conv + MLP hybrid: the stem (``channels`` filters, ``pool`` x ``pool`` max-pooling) -> flatten -> Linear to
    ``ratio`` x ``channels`` hidden units -> ReLU -> linear classifier. The head widens with the stem (as a ViT's
    MLP with its width), so that one knob spans sizes. One flat Sequential, so that evaluation shares its layers."""
    pool = pool or default_pool(input_shape, MLP_SIDE)
    hidden = ratio * channels
    return nn.Sequential(*stem(input_shape[0], channels, pool), nn.Flatten(),
                         nn.Linear(channels * math.prod(stem_side(input_shape, pool)), hidden), nn.ReLU(),
                         nn.Linear(hidden, n_classes))


class ConvViT(Transformer):
    """Conv + attention hybrid: the stem (``dim`` filters, ``pool`` x ``pool`` max-pooling) replaces the ViT's patch
    embedding; each position of its feature map is a token."""

    def __init__(self, input_shape, n_classes, *, dim=16, depth=1, heads=2, pool=None, mlp_ratio=2):
        pool = pool or default_pool(input_shape, TOKEN_SIDE)
        super().__init__(nn.Sequential(*stem(input_shape[0], dim, pool)), math.prod(stem_side(input_shape, pool)),
                         n_classes, dim=dim, depth=depth, heads=heads, mlp_ratio=mlp_ratio)


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


def linear_and_conv(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """(module, "weight") of every Linear and Conv2d in model order; the last is the classifier."""
    return [(m, "weight") for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def layer_components(model: nn.Module) -> dict[str, list[str]]:
    """The weight layers by place: first, middle (all between, when there are any) and last (the classifier), as
    parameter names (weights only; biases stay as they are)."""
    names = {id(p): n for n, p in model.named_parameters()}
    layers = [names[id(getattr(m, attr))] for m, attr in weight_layers(model)]
    groups = {"first layer": layers[:1], "middle layers": layers[1:-1], "last layer": layers[-1:]}
    return {k: v for k, v in groups.items() if v} if len(layers) > 1 else {"only layer": layers}


def transformer_components(model: nn.Module, embedding: str = "patch embedding") -> dict[str, list[str]]:
    """A transformer's component groups, as parameter names: the weight matrices of its ``embedding`` (the ViT's
    patch embedding, the hybrid's convolutional stem), the attention's qkv and output projections, the MLPs and the
    head; the positions, class token and LayerNorms as one group."""
    groups: dict[str, list[str]] = {embedding: [], "attention qkv": [], "attention projection": [],
                                    "MLP": [], "head": [], "positions and norms": []}
    for name, p in model.named_parameters():
        matrix = name.endswith("weight") and p.dim() > 1
        group = (embedding if name.startswith("embed.") else "attention qkv" if ".qkv." in name else
                 "attention projection" if ".proj." in name else "MLP" if ".mlp." in name else
                 "head" if name.startswith("head.") else "positions and norms")
        if matrix or group == "positions and norms":
            groups[group].append(name)
    return groups


def stem_mlp_components(model: nn.Module) -> dict[str, list[str]]:
    """The conv + MLP hybrid's groups, as weight names: its convolutional stem, its MLP's hidden layer, its
    classifier."""
    names = {id(p): n for n, p in model.named_parameters()}
    first, *middle, last = [names[id(getattr(m, attr))] for m, attr in weight_layers(model)]
    return {"convolutional stem": [first], "MLP hidden layer": middle, "classifier": [last]}


def weight_layers(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """What pruning and quantization act on, as the model's family declares it (``build`` tags the model with
    its family; an untagged module gets every Linear and Conv2d weight)."""
    name = getattr(model, "minarch_family", None)
    return (family(name).weight_layers if name else linear_and_conv)(model)


# -- the families ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Family:
    """One model family: everything the engine, the analyses and the book need to know of it."""
    name: str  # the key in configs and run ids
    title: str  # how tables and figures name it
    builder: Callable  # (input_shape, n_classes, **knobs) -> nn.Module; its keyword defaults are the defaults
    limits: dict  # knob -> (low, high) of its integer values, so that nonsense fails before any training
    knob: str  # the knob a profile's grid varies
    describe: Callable[[dict], dict]  # arch -> uniform table columns: depth, width and the family's own
    label: Callable[[dict], str]  # arch -> a short readable model name for tables and tooltips
    cpu_stacks_seeds: bool  # on a CPU, one architecture's seeds train faster stacked (vmap) than one by one
    fused: type | None = None  # the module that trains many architectures of the family as one (engine.fused)
    cpu_fuses: bool = True  # on a CPU, a fused bundle trains faster than its architectures one at a time
    weight_layers: Callable[[nn.Module], list] = linear_and_conv  # what pruning and quantization act on
    components: Callable[[nn.Module], dict] = layer_components  # parameter groups whose precision is probed apart
    resolve: Callable[[dict, tuple], dict] = field(default=lambda arch, input_shape: arch)  # input-shaped defaults
    validate: Callable[[dict], None] = field(default=lambda arch: None)  # checks across knobs
    shaped: bool = False  # its knob lists hidden widths: its networks have a Phase-1 shape and depth counts layers
    parents: tuple[str, ...] = ()  # the families a hybrid combines (the findings compare it with them)

    def defaults(self) -> dict:
        return {k: p.default for k, p in inspect.signature(self.builder).parameters.items()
                if p.kind is p.KEYWORD_ONLY}


def _check_heads(arch):
    if arch["dim"] % arch["heads"]:  # caught with the config, not when a worker builds it
        raise ConfigError(f"dim {arch['dim']} is not divisible by heads {arch['heads']}: pick dim as a multiple of "
                          f"heads")


def _pooled(side: int):
    """A hybrid's ``resolve``: its pool from the image (at most ``side`` x ``side`` positions), refused where it
    leaves no position of the stem's map."""
    def resolve(arch, input_shape):
        pool, (h, w) = arch["pool"] or default_pool(input_shape, side), stem_map(input_shape)
        if isinstance(pool, numbers.Integral) and not 1 <= pool <= min(h, w):
            raise ConfigError(f"pool {pool} downsamples the stem's {h}x{w} map of a {input_shape[-2]}x"
                              f"{input_shape[-1]} image below one position: pick pool in 1..{min(h, w)}")
        return {**arch, "pool": pool}
    return resolve


FAMILIES = {f.name: f for f in (
    Family("dnn", "DNN", mlp, {"widths": (1, 100_000)}, "widths",
           describe=lambda a: {"depth": len(a["widths"]), "width": a["widths"][0],
                               "widths": "-".join(map(str, a["widths"])), "shape": shape_of(a["widths"])},
           label=lambda a: "DNN " + "-".join(map(str, a["widths"])), cpu_stacks_seeds=True, fused=fused.FusedMLP,
           shaped=True),
    Family("cnn", "CNN", cnn, {"channels": (1, 4096)}, "channels",
           describe=lambda a: {"depth": 1, "width": a["channels"], "channels": a["channels"]},
           label=lambda a: f"CNN {a['channels']} ch", cpu_stacks_seeds=False, fused=fused.FusedCNN,
           cpu_fuses=False),
    Family("vit", "ViT", ViT, {"dim": (1, 4096), "depth": (1, 64), "heads": (1, 64), "patch": (1, 64),
                               "mlp_ratio": (1, 16)}, "dim",
           describe=lambda a: {"depth": a["depth"], "width": a["dim"], "dim": a["dim"], "heads": a["heads"],
                               "patch": a["patch"], "mlp_ratio": a["mlp_ratio"]},
           label=lambda a: f"ViT dim {a['dim']} × {a['depth']}", cpu_stacks_seeds=True,
           components=transformer_components, validate=_check_heads,
           resolve=lambda a, shape: {**a, "patch": a["patch"] or default_patch(shape)}),
    Family("convmlp", "Conv+MLP", conv_mlp, {"channels": (1, 4096), "pool": (1, 64), "ratio": (1, 64)},
           "channels", describe=lambda a: {"depth": 1, "width": a["channels"], "channels": a["channels"],
                                           "pool": a["pool"], "ratio": a["ratio"]},
           label=lambda a: f"Conv+MLP {a['channels']} ch → {a['ratio'] * a['channels']}", cpu_stacks_seeds=False,
           components=stem_mlp_components, resolve=_pooled(MLP_SIDE), parents=("cnn", "dnn")),
    Family("convvit", "Conv+ViT", ConvViT, {"dim": (1, 4096), "depth": (1, 64), "heads": (1, 64), "pool": (1, 64),
                                            "mlp_ratio": (1, 16)}, "dim",
           describe=lambda a: {"depth": a["depth"], "width": a["dim"], "dim": a["dim"], "heads": a["heads"],
                               "pool": a["pool"], "mlp_ratio": a["mlp_ratio"]},
           label=lambda a: f"Conv+ViT dim {a['dim']} × {a['depth']}", cpu_stacks_seeds=True,
           components=functools.partial(transformer_components, embedding="convolutional stem"),
           resolve=_pooled(TOKEN_SIDE), validate=_check_heads, parents=("cnn", "vit")),
)}


def register(record: Family) -> Family:
    """Add a family of one's own (from a plugin, ``settings.load_plugins``); its grids go in with
    ``profiles.add_grid``."""
    if record.name in FAMILIES:
        raise ConfigError(f"family {record.name!r} exists already: give the new family another name")
    FAMILIES[record.name] = record
    return record


def shaped() -> list[str]:
    """The families whose networks have a Phase-1 shape (``Family.shaped``): what the shape and depth analyses
    (Phase 1, pruning by depth at matched size) are about."""
    return [name for name, f in FAMILIES.items() if f.shaped]


def hybrids() -> list[str]:
    """The families that combine others (``Family.parents``)."""
    return [name for name, f in FAMILIES.items() if f.parents]


def components(model: nn.Module) -> dict[str, list[str]]:
    """``model``'s parameter groups as its family declares them (``build`` tags the family)."""
    name = getattr(model, "minarch_family", None)
    return (family(name).components if name else layer_components)(model)


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise ConfigError(f"unknown family {name!r}: choose one of {sorted(FAMILIES)}")
    return FAMILIES[name]


def normalise_arch(family_name: str, arch: dict | None, input_shape=None) -> dict:
    """The architecture with every default filled in (those that depend on the image too, given its
    ``input_shape``), types checked and ranges validated."""
    fam = family(family_name)
    defaults = fam.defaults()
    unknown = set(arch or {}) - set(defaults)
    if unknown:
        raise ConfigError(f"unknown {family_name} setting(s) {sorted(unknown)}: {family_name} takes {sorted(defaults)}")
    out = {**defaults, **(arch or {})}
    if input_shape is not None:
        out = fam.resolve(out, tuple(input_shape))
    for key, value in out.items():
        if value is None and defaults[key] is None:
            continue  # resolved from the image when the model is built
        low, high = fam.limits[key]
        many = isinstance(defaults[key], (tuple, list))
        if many and (isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") or not value):
            raise ConfigError(f"{family_name} {key} must be a non-empty list of integers, got {value!r}")
        for v in (value if many else [value]):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or not low <= v <= high:
                raise ConfigError(f"{family_name} {key} must be integer(s) in {low}..{high}, got {value!r}")
        out[key] = [int(v) for v in value] if many else int(value)
    fam.validate(out)
    return dict(sorted(out.items()))


def build(family_name: str, arch: dict, input_shape, n_classes: int) -> nn.Module:
    model = family(family_name).builder(tuple(input_shape), n_classes, **normalise_arch(family_name, arch, input_shape))
    model.minarch_family = family_name  # so that weight_layers finds the family's declaration
    model.minarch_input_shape = tuple(input_shape)  # so that the trainer can size its evaluation chunks
    return model


def describe(family_name: str, arch: dict) -> dict:
    """The uniform architecture columns of a table row: family, model (a readable name), depth, width and the
    family's own knobs."""
    fam = family(family_name)
    return {"family": family_name, "model": fam.label(arch), **fam.describe(arch)}


def n_params(model: nn.Module) -> int:
    """Learnable parameters, biases included."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@dataclass(frozen=True)
class Footprint:
    """What one image costs an architecture: what bundles are sized and their wall time shared by."""
    params: int  # learnable parameters
    flops: int  # forward FLOPs per image
    activations: int  # values per image that the layers output (what a training step keeps for its backward)


@functools.cache
def footprint(family_name: str, arch_json: str, input_shape: tuple, n_classes: int) -> Footprint:
    """An architecture's ``Footprint`` (``arch_json``: its arch as sorted JSON), traced on the meta device: no memory,
    no arithmetic. FLOPs are counted by ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode
    with torch.device("meta"):
        model = build(family_name, json.loads(arch_json), input_shape, n_classes)
        values = [0]
        hooks = [m.register_forward_hook(lambda m, i, out: values.append(out.numel()))
                 for m in model.modules() if not list(m.children()) and not isinstance(m, (nn.Flatten, nn.Identity))]
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.empty(1, *input_shape))
        for hook in hooks:
            hook.remove()
    return Footprint(n_params(model), counter.get_total_flops(), sum(values))


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


def arch_columns() -> tuple[str, ...]:
    """The columns that describe an architecture in every table of runs, configurations and analyses: the
    uniform ones, then every family's own knobs."""
    own = (k for f in FAMILIES.values() for k in f.describe(f.resolve(f.defaults(), (1, 28, 28))))
    return ("family", "model", "depth", "width", *dict.fromkeys(k for k in own if k not in ("depth", "width")),
            "n_params")
