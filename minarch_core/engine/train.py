"""Train runs: a bundle of configurations (architectures and seeds) as one program over tensors on the device.

Seeded and reproducible: ``cfg.seed`` fixes the initialisation (drawn on the CPU, so CPU and CUDA runs start from
the same weights) and the order of the training examples in every epoch. The history has one row per epoch, epoch 0
being the untrained model, with loss and accuracy on the train, validation and test splits, each measured by a
clean evaluation pass over a fixed stratified subset of that split (``MONITOR_PER_CLASS`` images per class; the
same images every epoch and every run). The trained model is then evaluated once on the whole splits: ``final``,
which is what a run's accuracies are. A run whose loss turns NaN or infinite stops and is recorded as ``diverged``.

Bundles: configs that share every setting of the training loop (dataset, data subset, batch size, epochs,
optimiser, learning rate, loss) see the same minibatches whenever they share a seed, because a run's order is drawn
from its seed alone. So the architectures of one seed train as one program, their family's fused module
(``engine.fused``), and the seeds' programs stack along a leading axis (``torch.func.stack_module_state`` +
``vmap``), each on its own minibatch. Adam, AdamW and SGD act on each element alone and the loss is a sum over
seeds and members, so every run gets exactly the updates it would get trained alone (up to float rounding;
``tests/test_train.py`` and ``tests/test_fused.py`` check this against the plain single-model loop, ``train_epoch``
and ``evaluate``, which pruning's fine-tuning also uses).
"""
from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from . import data as data_, fused, models, settings
from .config import RunConfig
from .errors import ConfigError

EVAL_BATCH = 4096  # rows per evaluation pass, shared by the seeds of a batch
STACK_BYTES = 256 * 2**20  # weights of the variants evaluated together, at most
CUDA_GRAPHS = True  # on CUDA, replay a captured graph of each training step (same arithmetic, one launch)
GRAPH_WARMUP = 3  # eager steps before the capture
CPU_EVAL_BYTES = 4 * 2**20  # on a CPU, an evaluation chunk's widest activation (all seeds) stays about this small
MONITOR_PER_CLASS = 200  # images per class of each split that the per-epoch history rows are measured on
METRICS = tuple(f"{split}_{m}" for split in ("train", "val", "test") for m in ("loss", "acc"))


@dataclass
class Result:
    history: pd.DataFrame
    state_dict: dict
    status: str  # "ok" or "diverged"
    n_params: int
    final: dict  # METRICS of the trained model on the whole splits (a diverged run: its last history row)


def cross_entropy(logits, y):
    """The mean cross-entropy of a model's ``logits`` (batch, classes); of a fused program's (batch, members,
    classes), each member's own over the batch: (members,)."""
    if logits.dim() == 2:
        return F.cross_entropy(logits, y)
    return F.cross_entropy(logits.transpose(1, 2), y[:, None].expand(-1, logits.shape[1]), reduction="none").mean(0)


def mse_loss(logits, y):
    """Squared error between the logits and one-hot targets (Hui & Belkin, 2021); per member as ``cross_entropy``."""
    target = F.one_hot(y, logits.shape[-1]).to(logits.dtype)
    if logits.dim() == 2:
        return F.mse_loss(logits, target)
    return (logits - target[:, None]).pow(2).mean((0, 2))


LOSSES = {"cross_entropy": cross_entropy, "mse": mse_loss}
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


def load_data(cfg: RunConfig, device=None, root=None) -> data_.Dataset:
    return data_.load(cfg.dataset, val_per_class=cfg.val_per_class, train_per_class=cfg.train_per_class,
                      subset_seed=cfg.subset_seed, root=root, device=settings.device(device))


def build_model(cfg: RunConfig, dataset: data_.Dataset) -> torch.nn.Module:
    """The untrained model of ``cfg``: the same weights on every device, drawn from ``cfg.seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return models.build(cfg.family, cfg.arch, dataset.input_shape, dataset.n_classes)


def train(cfg: RunConfig, dataset: data_.Dataset | None = None, device=None) -> Result:
    """Train one run (a bundle of one)."""
    return train_bundle([cfg], dataset, device)[0]


def arch_key(cfg: RunConfig) -> str:
    return json.dumps(cfg.arch, sort_keys=True)


def check_bundle(cfgs: list[RunConfig]) -> tuple[list[str], list[int]]:
    """A bundle's architectures and seeds, in order of first appearance. It holds configs of one family that share
    every setting of the training loop, every architecture with every seed once, and several architectures only
    where the family has a fused form; anything else is a ConfigError that says so."""
    first = cfgs[0]
    if any(c.family != first.family or c.replace(arch=first.arch, seed=first.seed) != first for c in cfgs):
        raise ConfigError("a bundle trains configs of one family that differ only in architecture and seed: "
                          "group the others apart (sweep.bundles does)")
    archs, seeds = list(dict.fromkeys(map(arch_key, cfgs))), list(dict.fromkeys(c.seed for c in cfgs))
    if len({(arch_key(c), c.seed) for c in cfgs}) != len(cfgs) or len(cfgs) != len(archs) * len(seeds):
        raise ConfigError(f"a bundle trains every one of its {len(archs)} architectures with every one of its "
                          f"{len(seeds)} seeds once, but was given {len(cfgs)} configs: group them by seed set")
    if len(archs) > 1 and models.family(first.family).fused is None:
        raise ConfigError(f"family {first.family!r} has no fused form: bundle one architecture at a time")
    return archs, seeds


def train_bundle(cfgs: list[RunConfig], dataset: data_.Dataset | None = None, device=None) -> list[Result]:
    """Train a bundle (``check_bundle``) as one program; one ``Result`` per config, in order, as if each ran alone.

    ``time_s`` in a history is the run's share of the bundle's wall time: the wall time divided among its seeds,
    and among a seed's architectures by their forward FLOPs (what a run would cost alone, but for the per-call
    overheads the bundle shares). History rows are measured on ``dataset.monitor(MONITOR_PER_CLASS)``; ``final`` on
    the whole splits. A run that diverges stops there; the others go on undisturbed (no parameter element is shared).
    """
    archs, seeds = check_bundle(cfgs)
    first = cfgs[0]
    device = settings.device(device)
    dataset = (dataset or load_data(first, device)).to(device)
    if first.train_precision != "fp32" and len(seeds) > 1:  # seeds stacked through vmap drift from their solo runs
        # under bf16 (weights 1e-2 to 4e-2 apart after two epochs, where fused architectures agree exactly): so
        # bf16 seeds train one program each, every run as alone
        done = {}
        for seed in seeds:
            part = [c for c in cfgs if c.seed == seed]
            done.update({(arch_key(c), seed): r for c, r in zip(part, train_bundle(part, dataset, device))})
        return [done[arch_key(c), c.seed] for c in cfgs]
    cell = {(arch_key(c), c.seed): c for c in cfgs}
    nets = [[build_model(cell[a, s], dataset) for a in archs] for s in seeds]
    programs = [fused.fuse(row, models.family(first.family).fused) for row in nets]
    flops = [models.footprint(first.family, a, dataset.input_shape, dataset.n_classes).flops for a in archs]
    share = [f / sum(flops) / len(seeds) for f in flops]
    stack = Stack(programs, device, precision=first.train_precision)
    opt = optimizer(first, stack.params.values())
    loss_fn, orders = LOSSES[first.loss], [torch.Generator().manual_seed(s) for s in seeds]
    monitor = dataset.monitor(MONITOR_PER_CLASS)
    start = time.perf_counter()
    histories = [[[{**row, "time_s": 0.0}] for row in rows] for rows in stack.evaluate(monitor, loss_fn, epoch=0)]
    states = [[None] * len(archs) for _ in seeds]
    live = {(s, m) for s in range(len(seeds)) for m in range(len(archs))}
    for epoch in range(1, first.epochs + 1):
        stack.train_epoch(opt, loss_fn, dataset.train, first.batch_size, orders)
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # the epoch's queued GPU work belongs to its time
        elapsed = time.perf_counter() - start
        for s, rows in enumerate(stack.evaluate(monitor, loss_fn, epoch)):
            diverged = [m for m, row in enumerate(rows) if (s, m) in live and not math.isfinite(row["train_loss"])]
            for m, row in enumerate(rows):
                if (s, m) in live:
                    histories[s][m].append({**row, "time_s": elapsed * share[m]})
            if diverged:  # these runs end here, the others go on
                members = fused.split(programs[s], stack.state_dict(s))
                for m in diverged:
                    states[s][m] = members[m]
                    live.discard((s, m))
        if not live:
            break
    finals = [[{k: h[-1][k] for k in METRICS} for h in rows] for rows in histories]
    if live:
        for s, rows in enumerate(stack.evaluate(dataset, loss_fn, epoch=-1)):
            members = fused.split(programs[s], stack.state_dict(s))
            for m, row in enumerate(rows):
                if (s, m) in live:
                    states[s][m], finals[s][m] = members[m], {k: row[k] for k in METRICS}
    sizes = [models.n_params(net) for net in nets[0]]
    results = {}
    for s, seed in enumerate(seeds):
        for m, a in enumerate(archs):
            results[a, seed] = Result(pd.DataFrame(histories[s][m]), states[s][m],
                                      "ok" if (s, m) in live else "diverged", sizes[m], finals[s][m])
    return [results[arch_key(c), c.seed] for c in cfgs]


class Stack:
    """The programs of several seeds (each a model, or a fused module of a bundle's architectures; or the
    fine-tuned variants of one model) stacked along a leading axis and called through ``vmap``. A stack of one is
    called directly: vmap cost a single program 20-60 % of its step on a CPU."""

    def __init__(self, nets: list[torch.nn.Module], device, weights=None, precision: str = "fp32"):
        """``weights`` (optional) maps the stacked parameters to the weights the forward pass uses: quantization-aware
        fine-tuning rounds them there, in the autograd graph. ``precision``: the training steps' and the history
        rows' arithmetic (``RunConfig.train_precision``); a final evaluation (epoch -1) is float32 always."""
        self.keys, self.weights, self.precision = list(nets[0].state_dict()), weights, precision
        self.device = torch.device(device)
        params, buffers = stack_module_state([n.to(device) for n in nets])
        self.params, self.buffers, self.size = params, buffers, len(nets)
        skeleton = copy.deepcopy(nets[0]).to("meta")

        def loss_and_logits(p, b, x, y, loss_fn):
            """Each member's loss (members,) and logits (batch, members, classes): a model is a program of one."""
            logits = functional_call(skeleton, (p, b), (x,))
            if logits.dim() == 2:
                return loss_fn(logits, y)[None], logits[:, None]
            return loss_fn(logits, y), logits

        if self.size == 1:
            def one(p, b, x, y, loss_fn, shared):
                first = lambda t: {k: v[0] for k, v in t.items()}  # noqa: E731
                loss, logits = loss_and_logits(first(p), first(b), x if shared else x[0], y if shared else y[0],
                                               loss_fn)
                return loss[None], logits[None]
            self._step = lambda p, b, x, y, loss_fn: one(p, b, x, y, loss_fn, False)
            self._eval = lambda p, b, x, y, loss_fn: one(p, b, x, y, loss_fn, True)
        else:
            self._step = vmap(loss_and_logits, in_dims=(0, 0, 0, 0, None))  # each seed its own minibatch
            self._eval = vmap(loss_and_logits, in_dims=(0, 0, None, None, None))  # every program the same rows
        self.chunk = eval_chunk(skeleton, self.size, torch.device(device))
        self._graphs, self._warm = {}, 0  # the captured training steps (CUDA), by what they depend on

    def train_epoch(self, opt, loss_fn, split: data_.Split, batch_size: int,
                    orders: list[torch.Generator] | torch.Generator) -> None:
        """One pass over ``split`` per program, each in the order its own generator draws, or all in the one order
        of a single generator (the same minibatches, gathered once); minibatches are slices. On CUDA, full
        minibatches replay a captured graph of the whole step (``_replay``)."""
        if isinstance(orders, torch.Generator):
            perms = torch.randperm(len(split), generator=orders).to(split.x.device)
        else:
            perms = torch.stack([torch.randperm(len(split), generator=g) for g in orders]).to(split.x.device)
        for i in range(0, len(split), batch_size):
            idx = perms[..., i:i + batch_size]
            x, y = split.rows(idx)
            if idx.shape[-1] < batch_size or not self._replay(opt, loss_fn, x, y):  # a partial minibatch: eager
                self._eager_step(opt, loss_fn, x, y)

    def _losses(self, x, y, loss_fn) -> torch.Tensor:
        """Each program's members' losses (programs, members) on its minibatch (``y`` with the stack's leading axis)
        or on the shared one."""
        params = self.weights(self.params) if self.weights else self.params
        with settings.autocast(self.precision, self.device):
            return (self._step if y.dim() == 2 else self._eval)(params, self.buffers, x, y, loss_fn)[0].float()

    def _eager_step(self, opt, loss_fn, x, y) -> None:
        losses = self._losses(x, y, loss_fn)
        opt.zero_grad(set_to_none=True)
        losses.sum().backward()  # the sum's gradient for each member's weights is that member's own gradient
        opt.step()

    def _replay(self, opt, loss_fn, x, y) -> bool:
        """Run this step as a replay of a CUDA graph of the whole step (forward, backward, optimiser: one launch
        instead of hundreds; the per-step launch overhead bounded small models on a GPU), one graph per minibatch
        shape and loss. The first ``GRAPH_WARMUP`` steps run eagerly on a side stream, as graph capture requires;
        the next full minibatch is captured, then replayed from static input buffers. Only full minibatches come
        here (``train_epoch``). False when the step must run eagerly (a CPU, graphs off, an optimiser that cannot
        be captured)."""
        if x.device.type != "cuda" or not CUDA_GRAPHS or not getattr(opt, "minarch_capturable", False):
            return False
        key = (tuple(x.shape), tuple(y.shape), loss_fn, id(opt))
        if key not in self._graphs:
            if self._warm < GRAPH_WARMUP:
                side = torch.cuda.Stream(x.device)
                side.wait_stream(torch.cuda.current_stream(x.device))
                with torch.cuda.stream(side):
                    self._eager_step(opt, loss_fn, x, y)
                torch.cuda.current_stream(x.device).wait_stream(side)
                self._warm += 1
                return True
            static = (x.clone(), y.clone())
            graph = torch.cuda.CUDAGraph()
            opt.zero_grad(set_to_none=True)
            with torch.cuda.graph(graph):
                self._losses(*static, loss_fn).sum().backward()
                opt.step()
            self._graphs[key] = (graph, static)  # captured, not yet run: the replay below runs this step
        graph, static = self._graphs[key]
        static[0].copy_(x)
        static[1].copy_(y)
        graph.replay()
        return True

    @torch.inference_mode()
    def measure(self, split: data_.Split, loss_fn, precision: str = "fp32") -> tuple[list[list[float]],
                                                                                    list[list[float]]]:
        """(mean loss, accuracy) of every program's every member on ``split``, each (programs, members), in chunks,
        with one host sync; under ``precision``'s arithmetic."""
        loss_sum = correct = None
        for i in range(0, len(split), self.chunk):
            x, y = split.x[i:i + self.chunk], split.y[i:i + self.chunk]
            params = self.weights(self.params) if self.weights else self.params
            with settings.autocast(precision, self.device):
                loss, logits = self._eval(params, self.buffers, x, y, loss_fn)
            hits = (logits.argmax(-1) == y[:, None]).sum(1)
            loss_sum = loss.float() * len(y) + (0 if loss_sum is None else loss_sum)
            correct = hits + (0 if correct is None else correct)
        return (loss_sum / len(split)).tolist(), (correct / len(split)).tolist()

    def evaluate(self, dataset: data_.Dataset, loss_fn, epoch: int) -> list[list[dict]]:
        """One history row per program and member: loss and accuracy on every split (a history row, epoch >= 0, in
        the stack's training precision; the final evaluation, epoch -1, in float32)."""
        precision = self.precision if epoch >= 0 else "fp32"
        measured = {name: self.measure(getattr(dataset, name), loss_fn, precision)
                    for name in ("train", "val", "test")}
        return [[{"epoch": epoch, **{f"{name}_{kind}": values[k][s][m] for name, values in measured.items()
                                     for k, kind in enumerate(("loss", "acc"))}}
                 for m in range(len(measured["train"][0][s]))] for s in range(self.size)]

    def state_dict(self, i: int) -> dict:
        """Program ``i``'s parameters and buffers (on the device; ``fused.split`` takes them apart)."""
        tensors = {**self.params, **self.buffers}
        return {k: tensors[k][i].detach() for k in self.keys}


def eval_chunk(model: torch.nn.Module, seeds: int, device: torch.device) -> int:
    """Rows per evaluation chunk. On CUDA, large. On a CPU a forward pass is memory-bound once its widest
    activation outgrows the cache, so the chunk is sized to keep that activation, for all seeds, within
    ``CPU_EVAL_BYTES``. A DNN's flattened input is no activation: counting it as one cuts a wide input's chunks to
    a few hundred rows, which runs slower than large chunks."""
    widest = widest_activation(model)
    if device.type != "cpu" or widest is None:
        return max(256, EVAL_BATCH // seeds)
    return int(min(EVAL_BATCH, max(16, CPU_EVAL_BYTES // (4 * seeds * max(widest, 1)))))


def widest_activation(model: torch.nn.Module) -> int | None:
    """Values per image of ``model``'s widest activation, traced on the meta device (None for a module that
    ``models.build`` did not make, whose input shape is unknown). A flattened input is no new activation."""
    if isinstance(model, fused.Fused):
        return model.widest
    shape = getattr(model, "minarch_input_shape", None)  # set by models.build
    if shape is None:
        return None
    skeleton = copy.deepcopy(model).to("meta")  # only the shapes of its activations are needed
    widest = [0]

    def record(module, inputs, output):
        if isinstance(output, torch.Tensor):
            widest[0] = max(widest[0], output[0].numel())

    views = (torch.nn.Flatten, torch.nn.Identity)  # they produce no new activation (a DNN's flattened input)
    hooks = [m.register_forward_hook(record) for m in skeleton.modules()
             if not list(m.children()) and not isinstance(m, views)]
    try:
        with torch.no_grad():
            skeleton(torch.empty(1, *shape, device="meta", dtype=next(skeleton.parameters()).dtype))
    finally:
        for hook in hooks:
            hook.remove()
    return widest[0]


def evaluate_states(model: torch.nn.Module, states: list[dict], split: data_.Split, loss_fn=F.cross_entropy,
                    group: int = 32) -> list[tuple[float, float]]:
    """(mean loss, accuracy) of ``model``'s architecture under each weight set in ``states`` (full state dicts,
    e.g. every sparsity or precision of one trained model) on ``split``, the same numbers as ``evaluate`` one by
    one. On CUDA they are stacked ``group`` at a time and evaluated in one batched pass each, as the trainer
    evaluates its seeds; on a CPU one at a time (``_one_at_a_time``): stacking measured slower there for every
    family (``benchmarks/speed.py``'s frontier line; the figures are in ``benchmarks/latest.txt``)."""
    model = copy.deepcopy(model).to(split.x.device)
    if split.x.device.type == "cpu":
        return _one_at_a_time(model, states, split, loss_fn)
    group = max(1, min(group, STACK_BYTES // (4 * models.n_params(model) or 1)))
    out = []
    for i in range(0, len(states), group):
        nets = []
        for state in states[i:i + group]:
            net = copy.deepcopy(model)
            net.load_state_dict(state)
            nets.append(net)
        losses, accuracies = Stack(nets, split.x.device).measure(split, loss_fn)
        out += [(loss, acc) for (loss,), (acc,) in zip(losses, accuracies)]  # one member per program
    return out


@torch.inference_mode()
def _one_at_a_time(model: torch.nn.Module, states: list[dict], split: data_.Split, loss_fn):
    """``evaluate_states`` on a CPU: each weight set in turn, in cache-sized chunks. For a ``Sequential`` model (DNN,
    CNN), the sets that share leading layers with the first set (component sensitivity rounds one layer and keeps
    the rest float32) are evaluated chunk by chunk together with it, those layers computed once per chunk. The same
    layers on the same rows: the same numbers as ``evaluate``, bit for bit."""
    model.eval()
    sharing, layers = [], list(model) if isinstance(model, torch.nn.Sequential) else []
    if layers:  # only a Sequential's layers can be shared
        parts = [_by_layer(state, len(layers)) for state in states]
        starts = [_first_change(p, parts[0]) for p in parts]
        sharing = [0] + [j for j in range(1, len(states)) if starts[j] > 0]
    chunk = eval_chunk(model, 1, split.x.device)
    out = {}
    for j in range(len(states)):
        if j not in sharing or len(sharing) == 1:  # nothing shared: the plain loop, without functional_call's cost
            model.load_state_dict(states[j])
            out[j] = evaluate(model, split, loss_fn, chunk)
    if len(sharing) > 1:
        loss_sum = torch.zeros(len(sharing), device=split.x.device)
        correct = torch.zeros(len(sharing), device=split.x.device, dtype=torch.long)
        for i in range(0, len(split), chunk):
            x, y = split.x[i:i + chunk], split.y[i:i + chunk]
            shared = [x]  # the first set's activations, as far as any set shares its layers
            for layer, weights in zip(layers[:max(starts[j] for j in sharing)], parts[0]):
                shared.append(functional_call(layer, weights, (shared[-1],)))
            for k, j in enumerate(sharing):
                h = shared[starts[j]]
                for layer, weights in zip(layers[starts[j]:], parts[j][starts[j]:]):
                    h = functional_call(layer, weights, (h,))
                logits = h.float()
                loss_sum[k] += loss_fn(logits, y) * len(y)
                correct[k] += (logits.argmax(1) == y).sum()
        for j, loss, hits in zip(sharing, loss_sum.tolist(), correct.tolist()):
            out[j] = (loss / len(split), hits / len(split))
    return [out[j] for j in range(len(states))]


def _by_layer(state: dict, n: int) -> list[dict]:
    """A ``Sequential``'s state dict split into its layers' own (``"2.weight"`` -> layer 2's ``"weight"``)."""
    out = [{} for _ in range(n)]
    for name, tensor in state.items():
        index, _, rest = name.partition(".")
        out[int(index)][rest] = tensor
    return out


def _first_change(part: list[dict], first: list[dict]) -> int:
    """The index of the first layer whose weights in ``part`` differ from those in ``first``; the number of layers
    when none does (the first set itself: its activations are the shared ones)."""
    for i, (mine, theirs) in enumerate(zip(part, first)):
        if any(t is not theirs[k] and not torch.equal(t, theirs[k]) for k, t in mine.items()):
            return i
    return len(part)


def optimizer(cfg: RunConfig, params) -> torch.optim.Optimizer:
    """``cfg``'s optimizer over ``params`` (a module's or a stack's): the fused kernel, one pass over the weights
    per step instead of one per operation (faster on a CPU, as the benchmark measures; the same update up to
    rounding)."""
    params = list(params)
    cuda = bool(params) and params[0].device.type == "cuda"
    capturable = cuda and cfg.optimizer in ("adam", "adamw")  # their step counter lives on the device in a graph
    opt = OPTIMIZERS[cfg.optimizer](params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True,
                                    **({"capturable": True} if capturable else {}))
    opt.minarch_capturable = capturable  # what Stack._replay needs to capture a step
    return opt


def train_epoch(model, opt, loss_fn, split: data_.Split, batch_size: int, order: torch.Generator) -> None:
    """One pass of a single model over ``split`` in the order drawn from ``order`` (pruning's fine-tuning)."""
    model.train()
    perm = torch.randperm(len(split), generator=order).to(split.x.device)
    for i in range(0, len(split), batch_size):
        x, y = split.rows(perm[i:i + batch_size])
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


@torch.inference_mode()
def evaluate(model: torch.nn.Module, split: data_.Split, loss_fn=F.cross_entropy,
             chunk: int | None = None) -> tuple[float, float]:
    """(mean loss, accuracy) of ``model`` on ``split``, in chunks of ``chunk`` rows (default ``eval_chunk``'s),
    with one host sync."""
    loss_sum, right = _pass(model, split, loss_fn, chunk)
    return loss_sum.item() / len(split), right.sum().item() / len(split)


@torch.inference_mode()
def hits(model: torch.nn.Module, states: list[dict], split: data_.Split,
         loss_fn=F.cross_entropy) -> tuple[list[float], torch.Tensor]:
    """Per weight set in ``states`` (``model``'s architecture): its loss summed over ``split``, and which of the
    split's images it classifies right ((states, images) bool, on the CPU): what racing compares variants by,
    image by image. One weight set at a time, as ``evaluate`` measures one."""
    model = copy.deepcopy(model).to(split.x.device)
    chunk, sums, right = eval_chunk(model, 1, split.x.device), [], []  # the chunk once: sizing it traces the model
    for state in states:
        model.load_state_dict(state)
        loss_sum, r = _pass(model, split, loss_fn, chunk)
        sums.append(loss_sum)
        right.append(r)
    if not states:
        return [], torch.zeros(0, len(split), dtype=torch.bool)
    return torch.stack(sums).tolist(), torch.stack(right).cpu()


def _pass(model: torch.nn.Module, split: data_.Split, loss_fn, chunk: int | None = None):
    """One evaluation pass: the loss summed over ``split`` (a device scalar) and each image's hit (bool)."""
    model.eval()
    chunk = chunk or eval_chunk(model, 1, split.x.device)
    loss_sum, right = torch.zeros((), device=split.x.device), []
    for i in range(0, len(split), chunk):
        logits = model(split.x[i:i + chunk]).float()
        target = split.y[i:i + chunk]
        loss_sum += loss_fn(logits, target) * len(target)
        right.append(logits.argmax(1) == target)
    return loss_sum, torch.cat(right) if right else torch.zeros(0, dtype=torch.bool, device=split.x.device)
