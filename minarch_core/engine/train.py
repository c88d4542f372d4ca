"""Train runs: the seeds of one configuration together, as one stacked computation over tensors on the device.

Seeded and reproducible: ``cfg.seed`` fixes the initialisation (drawn on the CPU, so CPU and CUDA runs start from
the same weights) and the order of the training examples in every epoch. The history has one row per epoch, epoch 0
being the untrained model, with loss and accuracy on the train, validation and test splits, each measured by a
clean evaluation pass over a fixed stratified subset of that split (``MONITOR_PER_CLASS`` images per class; the
same images every epoch and every run). The trained model is then evaluated once on the whole splits: ``final``,
which is what a run's accuracies are. A run whose loss turns NaN or infinite stops and is recorded as ``diverged``.

Seed batching: configs that differ only in their seed are trained at once. Their weights are stacked
(``torch.func.stack_module_state``) and one ``vmap``-ed step updates every seed, each on its own minibatch of its
own data order. Adam, AdamW and SGD act on each element alone and the loss is a sum over seeds, so every seed gets
exactly the updates it would get trained alone (up to float rounding; ``tests/test_train.py`` checks this against
the plain single-model loop, ``train_epoch`` and ``evaluate``, which pruning's fine-tuning also uses).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from . import data as data_, models, settings
from .config import RunConfig
from .errors import ConfigError

EVAL_BATCH = 4096  # rows per evaluation pass, shared by the seeds of a batch
STACK_BYTES = 256 * 2**20  # weights of the variants evaluated together, at most
CUDA_GRAPHS = True  # on CUDA, replay a captured graph of each training step (same arithmetic, one launch)
GRAPH_WARMUP = 3  # eager steps before the capture
CPU_EVAL_BYTES = 4 * 2**20  # on a CPU, an evaluation chunk's widest activation (all seeds) stays about this small
MONITOR_PER_CLASS = 200  # images per class of each split that the per-epoch history rows are measured on
METRICS = tuple(f"{split}_{m}" for split in ("train", "val", "test") for m in ("loss", "acc"))
settings.keep_freed_memory()  # every process that trains or evaluates: workers, notebook kernels, the CLI


@dataclass
class Result:
    history: pd.DataFrame
    state_dict: dict
    status: str  # "ok" or "diverged"
    n_params: int
    final: dict  # METRICS of the trained model on the whole splits (a diverged run: its last history row)


def mse_loss(logits, y):
    """Squared error between the logits and one-hot targets (Hui & Belkin, 2021)."""
    return F.mse_loss(logits, F.one_hot(y, logits.shape[1]).to(logits.dtype))


LOSSES = {"cross_entropy": F.cross_entropy, "mse": mse_loss}
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
    """Train one run (a batch of one seed)."""
    return train_seeds([cfg], dataset, device)[0]


def train_seeds(cfgs: list[RunConfig], dataset: data_.Dataset | None = None, device=None) -> list[Result]:
    """Train configs that differ only in ``seed`` together; one ``Result`` per config, as if each ran alone.

    ``time_s`` in the histories is the batch's wall time divided by its number of seeds: the cost of one run.
    History rows are measured on ``dataset.monitor(MONITOR_PER_CLASS)``; ``final`` on the whole splits.
    """
    first = cfgs[0]
    if any(c.replace(seed=first.seed) != first for c in cfgs):
        raise ConfigError("train_seeds trains configs that differ only in their seed: group the others apart")
    device = settings.device(device)
    dataset = (dataset or load_data(first, device)).to(device)
    nets = [build_model(c, dataset) for c in cfgs]
    stack = Stack(nets, device)
    opt = optimizer(first, stack.params.values())
    loss_fn, orders = LOSSES[first.loss], [torch.Generator().manual_seed(c.seed) for c in cfgs]
    monitor = dataset.monitor(MONITOR_PER_CLASS)
    start = time.perf_counter()
    histories = [[row] for row in stack.evaluate(monitor, loss_fn, epoch=0, time_s=0.0)]
    states, live = [None] * len(cfgs), list(range(len(cfgs)))
    for epoch in range(1, first.epochs + 1):
        stack.train_epoch(opt, loss_fn, dataset.train, first.batch_size, orders)
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # the epoch's queued GPU work belongs to its time
        elapsed = (time.perf_counter() - start) / len(cfgs)
        for i, row in enumerate(stack.evaluate(monitor, loss_fn, epoch, elapsed)):
            if i in live:
                histories[i].append(row)
                if not math.isfinite(row["train_loss"]):  # diverged: this run ends here, the others go on
                    states[i] = stack.state_dict(i)
                    live.remove(i)
        if not live:
            break
    finals = [{k: h[-1][k] for k in METRICS} for h in histories]
    if live:
        for i, row in enumerate(stack.evaluate(dataset, loss_fn, epoch=-1, time_s=0.0)):
            if i in live:
                states[i], finals[i] = stack.state_dict(i), {k: row[k] for k in METRICS}
    n_params = models.n_params(nets[0])
    return [Result(pd.DataFrame(h), s, "ok" if i in live else "diverged", n_params, f)
            for i, (h, s, f) in enumerate(zip(histories, states, finals))]


class Stack:
    """The weights of several same-shaped models (a configuration's seeds, or the fine-tuned variants of one model)
    stacked along a leading axis, called through ``vmap``."""

    def __init__(self, nets: list[torch.nn.Module], device, weights=None):
        """``weights`` (optional) maps the stacked parameters to the weights the forward pass uses: quantization-aware
        fine-tuning rounds them there, in the autograd graph."""
        self.keys, self.weights = list(nets[0].state_dict()), weights
        params, buffers = stack_module_state([n.to(device) for n in nets])
        self.params, self.buffers, self.size = params, buffers, len(nets)
        skeleton = copy.deepcopy(nets[0]).to("meta")

        def loss_and_logits(p, b, x, y, loss_fn):
            logits = functional_call(skeleton, (p, b), (x,))
            return loss_fn(logits, y), logits

        self._step = vmap(loss_and_logits, in_dims=(0, 0, 0, 0, None))  # each seed its own minibatch
        self._eval = vmap(loss_and_logits, in_dims=(0, 0, None, None, None))  # every model the same rows
        self.chunk = eval_chunk(skeleton, self.size, torch.device(device))
        self._graph, self._static, self._warm = None, None, 0  # the captured training step (CUDA)

    def train_epoch(self, opt, loss_fn, split: data_.Split, batch_size: int,
                    orders: list[torch.Generator] | torch.Generator) -> None:
        """One pass over ``split`` per model, each in the order its own generator draws, or all in the one order of
        a single generator (the same minibatches, gathered once); minibatches are slices. On CUDA, full minibatches
        replay a captured graph of the whole step (``_replay``)."""
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
        """Each model's loss on its minibatch (``y`` with the stack's leading axis) or on the shared one."""
        params = self.weights(self.params) if self.weights else self.params
        return (self._step if y.dim() == 2 else self._eval)(params, self.buffers, x, y, loss_fn)[0]

    def _eager_step(self, opt, loss_fn, x, y) -> None:
        losses = self._losses(x, y, loss_fn)
        opt.zero_grad(set_to_none=True)
        losses.sum().backward()  # the sum's gradient for each seed's weights is that seed's own gradient
        opt.step()

    def _replay(self, opt, loss_fn, x, y) -> bool:
        """Run this step as a replay of a CUDA graph of the whole step (forward, backward, optimiser: one launch
        instead of hundreds; the per-step launch overhead bounded small models on a GPU). The first
        ``GRAPH_WARMUP`` steps run eagerly on a side stream, as graph capture requires; the next full minibatch is
        captured, then replayed from static input buffers. Only full minibatches come here (``train_epoch``). False
        when the step must run eagerly (a CPU, graphs off, an optimiser that cannot be captured)."""
        if x.device.type != "cuda" or not CUDA_GRAPHS or not getattr(opt, "minarch_capturable", False):
            return False
        if self._graph is None:
            if self._warm < GRAPH_WARMUP:
                side = torch.cuda.Stream(x.device)
                side.wait_stream(torch.cuda.current_stream(x.device))
                with torch.cuda.stream(side):
                    self._eager_step(opt, loss_fn, x, y)
                torch.cuda.current_stream(x.device).wait_stream(side)
                self._warm += 1
                return True
            self._static = (x.clone(), y.clone())
            graph = torch.cuda.CUDAGraph()
            opt.zero_grad(set_to_none=True)
            with torch.cuda.graph(graph):
                self._losses(*self._static, loss_fn).sum().backward()
                opt.step()
            self._graph = graph  # captured, not yet run: the replay below runs this step
        self._static[0].copy_(x)
        self._static[1].copy_(y)
        self._graph.replay()
        return True

    @torch.inference_mode()
    def measure(self, split: data_.Split, loss_fn) -> tuple[list[float], list[float]]:
        """(mean loss, accuracy) of every stacked model on ``split``, in chunks, with one host sync."""
        loss_sum = torch.zeros(self.size, device=split.x.device)
        correct = torch.zeros(self.size, device=split.x.device, dtype=torch.long)
        for i in range(0, len(split), self.chunk):
            x, y = split.x[i:i + self.chunk], split.y[i:i + self.chunk]
            loss, logits = self._eval(self.params, self.buffers, x, y, loss_fn)
            loss_sum += loss.float() * len(y)
            correct += (logits.argmax(-1) == y).sum(-1)
        return (loss_sum / len(split)).tolist(), (correct / len(split)).tolist()

    def evaluate(self, dataset: data_.Dataset, loss_fn, epoch: int, time_s: float) -> list[dict]:
        """One history row per seed: loss and accuracy on every split."""
        rows = [{"epoch": epoch} for _ in range(self.size)]
        for name in ("train", "val", "test"):
            for row, loss, acc in zip(rows, *self.measure(getattr(dataset, name), loss_fn)):
                row[f"{name}_loss"], row[f"{name}_acc"] = loss, acc
        for row in rows:
            row["time_s"] = time_s
        return rows

    def state_dict(self, i: int) -> dict:
        tensors = {**self.params, **self.buffers}
        return {k: tensors[k][i].detach().cpu().clone() for k in self.keys}


def eval_chunk(model: torch.nn.Module, seeds: int, device: torch.device) -> int:
    """Rows per evaluation chunk. On CUDA, large. On a CPU a forward pass is memory-bound once its widest
    activation outgrows the cache (a 32-channel CNN evaluated 3x faster in chunks of 64 images than of 512), so the
    chunk is sized to keep that activation, for all seeds, within ``CPU_EVAL_BYTES``. A DNN's flattened input is
    no activation: counted as one, it cut a CIFAR-10 DNN's chunks to 341 rows, slower than 4,096."""
    widest = widest_activation(model)
    if device.type != "cpu" or widest is None:
        return max(256, EVAL_BATCH // seeds)
    return int(min(EVAL_BATCH, max(16, CPU_EVAL_BYTES // (4 * seeds * max(widest, 1)))))


def widest_activation(model: torch.nn.Module) -> int | None:
    """Values per image of ``model``'s widest activation, traced on the meta device (None for a module that
    ``models.build`` did not make, whose input shape is unknown). A flattened input is no new activation."""
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
            skeleton(torch.empty(1, *shape, device="meta"))
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
    family (benchmarks/speed.py: a DNN's 35 frontier variants 0.3-0.6x the speed of one at a time)."""
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
        out += list(zip(*Stack(nets, split.x.device).measure(split, loss_fn)))
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
    per step instead of one per operation (1.3-1.6x faster training on a CPU; the same update up to rounding)."""
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
    model.eval()
    chunk = chunk or eval_chunk(model, 1, split.x.device)
    loss_sum = torch.zeros((), device=split.x.device)
    correct = torch.zeros((), device=split.x.device, dtype=torch.long)
    for i in range(0, len(split), chunk):
        logits = model(split.x[i:i + chunk]).float()
        target = split.y[i:i + chunk]
        loss_sum += loss_fn(logits, target) * len(target)
        correct += (logits.argmax(1) == target).sum()
    return loss_sum.item() / len(split), correct.item() / len(split)
