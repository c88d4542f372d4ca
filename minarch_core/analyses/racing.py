"""Racing: stop measuring a compressed variant once the images measured so far prove, for the whole validation split,
that a variant no larger matches it there.

The rule. Within one (dataset, family), every variant (a configuration at a sparsity and precision, its seeds
pooled) is measured on the validation images in one fixed random order (``ORDER_SEED``), in stages of growing size
(``STAGES``, then the whole split). After each stage, each variant ``v`` still racing is tested against the
``CANDIDATES`` most accurate-so-far variants ``u`` that are no larger (smaller bytes, or equal bytes and earlier in
a fixed order, so that two variants never remove each other). The test is paired, on the same images: with
``X_i = p_u(i) - p_v(i)``, where ``p(i)`` is the fraction of a variant's seeds that classify image ``i`` right, the
whole split's mean of ``X`` is ``acc_u - acc_v``; ``v`` stops when the hypothesis ``acc_u - acc_v <= -tolerance``
is rejected at level ``alpha / (V (V - 1) / 2)``, a Bonferroni correction
over every pair of the ``V`` variants that could be compared, so that the selection of candidates from the data
costs nothing. The test is a betting confidence sequence for sampling without replacement from the finite split
(Waudby-Smith and Ramdas, JRSS-B 2024: ``K_t = prod (1 + lambda_t (X_t - m_t))``, with ``m_t`` the null mean of the
images not yet drawn and ``lambda_t`` the truncated aGRAPA bet from the images before ``t``), valid at every image
by Ville's inequality, so that testing after every stage costs no correction either.

What it guarantees. With probability at least ``1 - alpha`` per (dataset, family), every variant stopped early is
beaten on the whole validation split by a no-larger variant (with the default tolerance 0: strictly more accurate),
so it is on no Pareto front of accuracy against bytes; the variants that finish are measured on the whole split, as
without racing. So the Pareto set drawn from the finishers is the whole-split Pareto set. A positive tolerance
stops more variants sooner (those a no-larger one matches within it, per step of such a chain), at the price of
answers up to that much less accurate per byte: the book keeps 0, since ``recommend`` answers the smallest variant
above a target, and a variant just above it can be stopped by a smaller one just below it. Variants whose
predictions are identical (a float32 model and its float16 copy) never separate; racing saves on the others.
"""
from __future__ import annotations

import math

import numpy as np
import torch

ORDER_SEED = 0  # the validation images' racing order: one permutation, the same for every variant
STAGES = (200, 400, 800, 1600, 3200)  # images measured before each test (then the whole split)
TOLERANCE = 0.0  # how much less accurate a no-larger variant may be and still stop one (see above)
ALPHA = 0.05  # the chance, per (dataset, family), that any variant stops wrongly
CANDIDATES = 8  # no-larger variants each racing variant is tested against, the most accurate so far
BET_CAP = 0.75  # the largest fraction of wealth one image may stake (keeps every factor above 0.25)


def order(n: int) -> torch.Tensor:
    """The racing order of ``n`` validation images: a permutation fixed by ``ORDER_SEED``."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(ORDER_SEED))


def stages(n: int) -> list[int]:
    """The numbers of images measured at each test, the last the whole split."""
    return [s for s in STAGES if s < n] + [n]


def level(variants: int, alpha: float = ALPHA) -> float:
    """The level of each pair's test: ``alpha`` over every pair of ``variants``."""
    return alpha / max(1, variants * (variants - 1) // 2)


def log_wealth(x: torch.Tensor, population: int, null: float = -TOLERANCE) -> torch.Tensor:
    """The log-wealth after each image, per row of ``x`` (pairs x images drawn, in order, without replacement from
    a population of ``population`` images, values in [-1, 1]), betting against "the population mean is at most
    ``null``". Under that hypothesis the wealth is a nonnegative supermartingale, so it ever exceeds ``1/a`` with
    chance at most ``a`` (Ville). Computed in one pass: every bet depends only on the images before it, so the
    path over a prefix is the prefix of the path."""
    x = x.double()
    seen = torch.arange(x.shape[1], dtype=torch.float64)  # images before each draw
    before = torch.cumsum(x, 1) - x  # their sum
    m = (population * null - before) / (population - seen)  # the null mean of what is left
    mean = before / (seen + 1)  # the running estimates from the images before, shrunk to a prior (0, 1/4)
    residual = (x - mean) ** 2
    var = (0.25 + torch.cumsum(residual, 1) - residual) / (seen + 1)
    gap = mean - m
    bet = torch.clamp(gap / (var + gap ** 2), min=0.0)  # aGRAPA: the growth-optimal fraction, to second order
    bet = torch.minimum(bet, BET_CAP / (1 + m).clamp(min=1e-12))
    impossible = m <= -1  # what is left cannot bring the mean down to the null: rejected for sure
    bet = torch.where((m >= 1) | impossible, torch.zeros_like(bet), bet)
    log_k = torch.cumsum(torch.log1p(bet * (x - m)), 1)
    log_k = torch.where(torch.cumsum(impossible.int(), 1) > 0, torch.full_like(log_k, math.inf), log_k)
    return log_k


def stopped(p: torch.Tensor, sizes: np.ndarray, population: int, variants: int,
            tolerance: float = TOLERANCE) -> np.ndarray:
    """Which of the racing variants (rows of ``p``: each image's fraction of right seeds so far; ``sizes``: their
    bytes, rows in the fixed tie order) a no-larger variant now beats (or matches within ``tolerance``), at the
    level ``level(variants)``."""
    n = len(sizes)
    accuracy = p.mean(1).numpy()
    rank = np.lexsort((np.arange(n), sizes))  # no larger: earlier in (bytes, row) order
    position = np.empty(n, dtype=int)
    position[rank] = np.arange(n)
    u_list, v_list = [], []
    for v in range(n):
        smaller = rank[:position[v]]
        if len(smaller):
            best = smaller[np.argsort(-accuracy[smaller], kind="stable")[:CANDIDATES]]
            u_list += best.tolist()
            v_list += [v] * len(best)
    out = np.zeros(n, dtype=bool)
    if not u_list:
        return out
    threshold = -math.log(level(variants))
    u, v = torch.tensor(u_list), torch.tensor(v_list)
    for i in range(0, len(u), 2048):  # pairs x images at a time, kept small
        hit = log_wealth(p[u[i:i + 2048]] - p[v[i:i + 2048]], population, -tolerance).max(1).values >= threshold
        out[v[i:i + 2048][hit].numpy()] = True
    return out
