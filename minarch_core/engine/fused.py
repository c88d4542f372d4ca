"""Many models of one family as one module: the members of a training bundle, fused.

A fused module takes the members' shared input and returns every member's logits at once, ``(batch, members,
classes)``. Each of its parameters' elements belongs to exactly one member, or is padding that stays exactly zero,
so a loss summed over the members gives each member its own gradient and an elementwise optimiser (Adam, AdamW,
SGD) its own update, as if it trained alone (up to float rounding: a fused product sums in another order).
``members(state)`` takes a fused state apart again into each member's own state dict, keyed as the member's model.

- DNN (``FusedMLP``): the first layer of every member is one matrix product on the shared input; each deeper layer
  one batched product per bucket of members whose layer has the same (padded) shape, their inputs gathered by row
  (activations are kept units x batch, so a gather copies whole rows); the classifiers likewise.
- CNN (``FusedCNN``): one convolution with every member's channels; each channel's slice of its member's linear head
  as one batched product over channels, summed into its member's logits.
- Families without a fused form train one architecture at a time, their seeds stacked. The ViT is one: padding
  different widths to one is exact only with LayerNorms masked per member, and on a CPU it costs more arithmetic
  than it saves calls (padded to the largest width, a grid's small dims do the work of as many large ones). CNN
  bundles fused on a CPU are no faster than their members one at a time (their steps are bound by memory traffic,
  which fusing does not reduce), so a CPU trains CNNs one architecture at a time (``Family.cpu_fuses``); DNN
  bundles pay (``benchmarks/latest.txt`` has the measured ratios). The hybrids (Conv+MLP,
  Conv+ViT) have no fused form either, the stated fallback: their stems are the CNN's kind of memory-bound
  convolution, and the Conv+ViT's blocks the ViT's, so each architecture trains alone (the Conv+ViT's seeds stacked
  like the ViT's, the Conv+MLP's one by one like the CNN's: ``Family.cpu_stacks_seeds``).

Prior art: HFTA (arXiv 2102.02344) fuses identical models into batched operators; ParallelMLPs (MDPI AI 4(1):2)
fuses MLPs of different widths into one, as ``FusedMLP`` does.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PAD_UNITS = 64  # deeper DNN layers narrower than this are zero-padded to it (FusedMLP)


class Fused(nn.Module):
    """What every fused module shares: where each member's tensors lie in the fused parameters, and the index
    tensors its forward pass uses (constants: they follow the module to a device, never to the meta device)."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.size = len(members)
        self.places: list[dict] = [{} for _ in members]  # member -> its state key -> (fused name, index, fold)
        self.index: dict[str, torch.Tensor] = {}
        self.widest = 0  # values per image of its widest activation (train.eval_chunk sizes evaluation chunks by it)
        self.minarch_input_shape = getattr(members[0], "minarch_input_shape", None)

    def place(self, member: int, key: str, name: str, index, shape=None, fold=None) -> None:
        """Member ``member``'s tensor ``key`` is ``fold(fused[name][index])`` (default: reshaped to ``shape``)."""
        self.places[member][key] = (name, index, fold or (lambda t, shape=tuple(shape): t.reshape(shape)))

    def members(self, state: dict) -> list[dict]:
        """Each member's own state dict (detached CPU copies) from a fused state dict (this module's own, or one
        stacked seed's ``{name: tensor}``)."""
        return [{key: fold(state[name][index]).detach().cpu().clone() for key, (name, index, fold) in places.items()}
                for places in self.places]

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        for name, t in self.index.items():
            moved = fn(t)
            if moved.device.type != "meta":  # a skeleton on the meta device still indexes real tensors
                self.index[name] = moved
        return self


class FusedMLP(Fused):
    """DNNs (``models.mlp``: Flatten, [Linear, ReLU]..., Linear) of any depths and widths on one input.

    Deeper layers narrower than ``PAD_UNITS`` are padded with zeros to it, so that small layers of many shapes share a
    few buckets (a bucket's product costs about the same whether its layers are 3 or 64 wide, and each bucket costs
    calls). The padding is exactly neutral: padded inputs are gathered from a constant zero row (never a parameter,
    so no gradient reaches it, not even a diverged member's NaN), padded outputs are never gathered, so every padded
    weight's gradient is exactly zero and elementwise optimisers keep it zero."""

    def __init__(self, members: list[nn.Sequential]):
        super().__init__(members)
        layers = [_linears(net) for net in members]  # per member: (state key prefix, Linear), classifier last
        first = [ls[0][1] for ls in layers]
        self.first_weight = nn.Parameter(torch.cat([m.weight.detach() for m in first]))
        self.first_bias = nn.Parameter(torch.cat([m.bias.detach() for m in first]))
        rows, start = {}, 0  # member -> its units' rows in the current layer's activations
        for i, m in enumerate(first):
            own = slice(start, start + m.out_features)
            self.place(i, f"{layers[i][0][0]}.weight", "first_weight", own, m.weight.shape)
            self.place(i, f"{layers[i][0][0]}.bias", "first_bias", own, m.bias.shape)
            rows[i] = torch.arange(start, start + m.out_features)
            start += m.out_features
        stacked = dict(rows)  # member -> its last units' rows in every layer's activations stacked
        self.steps: list[list[str]] = []  # per deeper layer, its buckets; self.index[f"step{n}"] their input rows
        offset = 0  # where the current layer starts in the stacked activations; each layer ends with a zero row
        for step in range(1, max(map(len, layers)) - 1):
            live = [i for i, ls in enumerate(layers) if len(ls) - 1 > step]
            names, inputs, offset, zero, start = [], [], offset + start + 1, start, 0
            shape = lambda i: tuple(map(_padded, _shape(layers[i][step][1])))  # noqa: E731
            for b, ((n_in, n_out), group) in enumerate(_buckets(live, shape).items()):
                names.append(f"hidden{step}_{b}")
                self._bucket(names[-1], [layers[i][step] for i in group], group, n_in, n_out)
                for i in group:
                    inputs.append(_pad(rows[i], n_in, zero))
                    rows[i] = torch.arange(start, start + layers[i][step][1].out_features)
                    stacked[i] = offset + rows[i]
                    start += n_out
            self.steps.append(names)
            self.index[f"step{step}"] = torch.cat(inputs)
        names, inputs, order, zero = [], [], [], offset + start  # the last layer's zero row
        for b, group in enumerate(_buckets(range(self.size), lambda i: _padded(layers[i][-1][1].in_features)).values()):
            names.append(f"head_{b}")
            n_in = _padded(layers[group[0]][-1][1].in_features)
            self._bucket(names[-1], [layers[i][-1] for i in group], group, n_in, layers[group[0]][-1][1].out_features)
            inputs += [_pad(stacked[i], n_in, zero) for i in group]
            order += group
        self.heads = names
        self.index["heads"] = torch.cat(inputs)
        self.index["order"] = torch.tensor([order.index(i) for i in range(self.size)])  # head order -> member order
        # the first layer: chunks sized by it ran fastest (counting every layer's rows stacked gave chunks a quarter
        # the size, and slower passes)
        self.widest = len(self.first_bias) + 1

    def _bucket(self, name: str, linears: list[tuple[str, nn.Linear]], group: list[int], n_in: int, n_out: int):
        """``group``'s members' layers as one (k, n_out, n_in) weight and (k, n_out, 1) bias, zero-padded."""
        weight = linears[0][1].weight.new_zeros(len(group), n_out, n_in)
        bias = weight.new_zeros(len(group), n_out, 1)
        for slot, (i, (key, m)) in enumerate(zip(group, linears)):
            weight[slot, :m.out_features, :m.in_features] = m.weight.detach()
            bias[slot, :m.out_features, 0] = m.bias.detach()
            self.place(i, f"{key}.weight", f"{name}_weight", (slot, slice(0, m.out_features), slice(0, m.in_features)),
                       m.weight.shape)
            self.place(i, f"{key}.bias", f"{name}_bias", (slot, slice(0, m.out_features), 0), m.bias.shape)
        self.register_parameter(f"{name}_weight", nn.Parameter(weight))
        self.register_parameter(f"{name}_bias", nn.Parameter(bias))

    def _products(self, names: list[str], inp: torch.Tensor, rows: torch.Tensor) -> list[torch.Tensor]:
        """The buckets ``names`` on their members' ``rows`` of ``inp`` (units x batch): a (k, out, batch) product
        per bucket. The rows are gathered at once and split, not sliced: a gather's or a slice's backward writes a
        zeroed copy of its whole input, a split's only its parts."""
        weights = [getattr(self, f"{name}_weight") for name in names]
        parts = inp.index_select(0, rows).split([w.shape[0] * w.shape[2] for w in weights])
        return [torch.baddbmm(getattr(self, f"{name}_bias"), w, part.view(w.shape[0], w.shape[2], -1))
                for name, w, part in zip(names, weights, parts)]

    def forward(self, x):
        zero = x.new_zeros(1, len(x))  # the padding's source: a constant, outside the autograd graph
        h = torch.addmm(self.first_bias[:, None], self.first_weight, x.flatten(1).T)  # (units, batch)
        layers = [torch.cat([h, zero]).relu()]
        for step, names in enumerate(self.steps, 1):
            outs = [out.flatten(0, 1) for out in self._products(names, layers[-1], self.index[f"step{step}"])]
            layers.append(torch.cat([*outs, zero]).relu())
        logits = torch.cat(self._products(self.heads, torch.cat(layers), self.index["heads"]))
        return logits.index_select(0, self.index["order"]).permute(2, 0, 1)  # (batch, members, classes)


class FusedCNN(Fused):
    """CNNs (``models.cnn``: Conv2d, ReLU, Flatten, Linear) of any channels on one input."""

    def __init__(self, members: list[nn.Sequential]):
        super().__init__(members)
        parts = [[(name, m) for name, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
                 for net in members]
        convs, heads = [p[0][1] for p in parts], [p[1][1] for p in parts]
        self.classes = heads[0].out_features
        self.conv_weight = nn.Parameter(torch.cat([c.weight.detach() for c in convs]))
        self.conv_bias = nn.Parameter(torch.cat([c.bias.detach() for c in convs]))
        # a head's weight (classes, channels x positions) as one (positions, classes) block per channel
        self.head_weight = nn.Parameter(torch.cat([h.weight.detach().view(self.classes, c.out_channels, -1)
                                                   .permute(1, 2, 0) for c, h in zip(convs, heads)]))
        self.head_bias = nn.Parameter(torch.stack([h.bias.detach() for h in heads]))
        start, owner = 0, []
        for i, ((conv, c), (head, h)) in enumerate(parts):
            own = slice(start, start + c.out_channels)
            self.place(i, f"{conv}.weight", "conv_weight", own, c.weight.shape)
            self.place(i, f"{conv}.bias", "conv_bias", own, c.bias.shape)
            self.place(i, f"{head}.weight", "head_weight", own, fold=lambda t: t.permute(2, 0, 1).flatten(1))
            self.place(i, f"{head}.bias", "head_bias", i, h.bias.shape)
            owner += [i] * c.out_channels
            start += c.out_channels
        self.index["owner"] = torch.tensor(owner)
        self.widest = start * self.head_weight.shape[1]

    def forward(self, x):
        # channel-major (channels, batch, positions) after the convolution, so that the head's product and the
        # backward passes run on contiguous rows (relu's backward on the transposed gradient was far slower)
        h = F.conv2d(x, self.conv_weight, self.conv_bias).transpose(0, 1).contiguous().relu_().flatten(2)
        per_channel = torch.bmm(h, self.head_weight)  # (channels, batch, classes)
        logits = per_channel.new_zeros(self.size, len(x), self.classes).index_add(0, self.index["owner"], per_channel)
        return (logits + self.head_bias[:, None]).transpose(0, 1)  # (batch, members, classes)


def fuse(nets: list[nn.Module], fused: type | None) -> nn.Module:
    """One program for ``nets`` (models of one family on one input): the model itself when it is one, else the
    family's fused module ``fused``."""
    if len(nets) == 1:
        return nets[0]
    if fused is None:
        raise ValueError("these models have no fused form: train them one architecture at a time")
    return fused(nets)


def split(program: nn.Module, state: dict) -> list[dict]:
    """The members' own state dicts (detached CPU copies) from a program's state (``fuse``'s program)."""
    if isinstance(program, Fused):
        return program.members(state)
    return [{k: v.detach().cpu().clone() for k, v in state.items()}]


def _linears(net: nn.Module) -> list[tuple[str, nn.Linear]]:
    return [(name, m) for name, m in net.named_modules() if isinstance(m, nn.Linear)]


def _shape(m: nn.Linear) -> tuple[int, int]:
    return m.in_features, m.out_features


def _padded(units: int) -> int:
    return max(units, PAD_UNITS)


def _pad(rows: torch.Tensor, n: int, zero: int) -> torch.Tensor:
    """``rows`` followed by the zero row's index up to ``n`` rows."""
    return torch.cat([rows, torch.full((n - len(rows),), zero, dtype=rows.dtype)])


def _buckets(members, key) -> dict:
    """Members grouped by ``key``, groups in order of first appearance, members in order within each."""
    out: dict = {}
    for i in members:
        out.setdefault(key(i), []).append(i)
    return out
