"""Train one run: a few lines of plain PyTorch over tensors that stay on the device.

Seeded and reproducible: ``cfg.seed`` fixes the initialisation (drawn on the CPU, so CPU and CUDA runs start from
the same weights) and the order of the training examples in every epoch. The history has one row per epoch, epoch 0
being the untrained model, with loss and accuracy on the train, validation and test splits, each measured by a
clean evaluation pass. A run whose loss turns NaN or infinite stops and is recorded as ``diverged``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F

from . import data as data_, models, settings
from .config import RunConfig

EVAL_BATCH = 4096


@dataclass
class Result:
    history: pd.DataFrame
    state_dict: dict
    status: str  # "ok" or "diverged"
    n_params: int


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
    device = settings.device(device)
    dataset = (dataset or load_data(cfg, device)).to(device)
    model = build_model(cfg, dataset).to(device)
    opt, loss_fn = optimizer(cfg, model), LOSSES[cfg.loss]
    order = torch.Generator().manual_seed(cfg.seed)
    start = time.perf_counter()
    rows = [_evaluate(model, dataset, loss_fn, epoch=0, time_s=0.0)]
    status = "ok"
    for epoch in range(1, cfg.epochs + 1):
        train_epoch(model, opt, loss_fn, dataset.train, cfg.batch_size, order)
        rows.append(_evaluate(model, dataset, loss_fn, epoch, time.perf_counter() - start))
        if not math.isfinite(rows[-1]["train_loss"]):
            status = "diverged"
            break
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return Result(pd.DataFrame(rows), state, status, models.n_params(model))


def optimizer(cfg: RunConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    return OPTIMIZERS[cfg.optimizer](model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def train_epoch(model, opt, loss_fn, split: data_.Split, batch_size: int, order: torch.Generator) -> None:
    """One pass over ``split`` in the random order drawn from ``order``, in minibatches that are index slices."""
    model.train()
    perm = torch.randperm(len(split), generator=order).to(split.x.device)
    for i in range(0, len(split), batch_size):
        idx = perm[i:i + batch_size]
        loss = loss_fn(model(split.x[idx]), split.y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


@torch.inference_mode()
def evaluate(model: torch.nn.Module, split: data_.Split, loss_fn=F.cross_entropy) -> tuple[float, float]:
    """(mean loss, accuracy) of ``model`` on ``split``, in large batches, with one host sync."""
    model.eval()
    loss_sum = torch.zeros((), device=split.x.device)
    correct = torch.zeros((), device=split.x.device, dtype=torch.long)
    for i in range(0, len(split), EVAL_BATCH):
        logits = model(split.x[i:i + EVAL_BATCH]).float()
        target = split.y[i:i + EVAL_BATCH]
        loss_sum += loss_fn(logits, target) * len(target)
        correct += (logits.argmax(1) == target).sum()
    return loss_sum.item() / len(split), correct.item() / len(split)


def _evaluate(model, dataset, loss_fn, epoch, time_s) -> dict:
    row = {"epoch": epoch}
    for name in ("train", "val", "test"):
        row[f"{name}_loss"], row[f"{name}_acc"] = evaluate(model, getattr(dataset, name), loss_fn)
    row["time_s"] = time_s
    return row
