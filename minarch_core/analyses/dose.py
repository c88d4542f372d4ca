"""The minimal size as a dose-response: the probability that a seed learns the task, against log10(parameters).

Each run is one outcome: it learned the task (it did not fail, and it came at least ``min_level`` of the way from
chance to its family's plateau: ``regimes.mark``) or not. Per dataset and family, a logistic curve with a positive
slope, P(learns | x) = 1 / (1 + exp(-(logit(level) + b (x - x*)))), x = log10(parameters), is fitted by penalised
maximum likelihood (Firth's penalty, half the log determinant of the Fisher information: it keeps the fit finite
when the outcomes separate, as they do on a coarse grid), and the minimal size is 10^x*, where a seed learns with
probability ``level``. Its interval is the profile likelihood's: the x* whose penalised deviance lies within the
chi-square(1) quantile of the interval's level, searched ``EDGE`` decades either side of the grid (an interval that
reaches the edge is open on that side). The confidence distribution Phi(signed root of the profile deviance) gives
the draws that the findings compare across datasets.

Why not the last failure: a rule that reads the largest configuration where any seed failed estimates a maximum,
which no bootstrap over seeds estimates consistently (five lucky seeds of a configuration that fails 45 % of the time
hide it, and every draw then agrees); the fit reads every outcome, and between two grid points its interval spans the
gap instead of pinning the estimate to the grid.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from scipy.stats import chi2, norm

EDGE = 1.0  # decades searched beyond the grid's smallest and largest configuration
SLOPES = np.geomspace(0.05, 300, 121)  # candidate slopes, log-odds per decade of parameters
POINTS = 401  # candidate x* over the searched range


@dataclass(frozen=True)
class Estimate:
    """A fitted minimal size, in log10 parameters: ``point``, the interval ``low`` to ``high`` (-inf or inf where
    it reaches the searched edge), the fitted ``slope`` at the point, and the confidence distribution (``cdf``
    over ``xs``) that ``draws`` samples."""
    point: float
    low: float
    high: float
    slope: float
    xs: np.ndarray
    cdf: np.ndarray

    def draws(self, n: int, rng) -> np.ndarray:
        """``n`` draws of 10^x* from the confidence distribution: 0 below the searched range, inf above it."""
        u = rng.uniform(size=n)
        x = np.interp(u, self.cdf, self.xs)
        return np.where(u < self.cdf[0], 0.0, np.where(u > self.cdf[-1], np.inf, 10 ** x))


def outcomes(x, learned) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outcomes aggregated per distinct size: (sizes, seeds that learned, seeds)."""
    frame = pd.DataFrame({"x": np.asarray(x, float), "k": np.asarray(learned, float)})
    g = frame.groupby("x", sort=True).k.agg(["sum", "count"])
    return g.index.to_numpy(float), g["sum"].to_numpy(float), g["count"].to_numpy(float)


def fit(x, learned, level: float = 0.9, confidence: float = 0.95) -> Estimate:
    """The dose-response estimate from outcomes (``x``: log10 parameters per run, ``learned``: bool per run). Needs
    at least one seed that learned and one that did not (else the data hold no crossing: see ``regimes``)."""
    sizes, k, n = outcomes(x, learned)
    if k.sum() == 0 or k.sum() == n.sum():
        raise ValueError("every seed learned, or none did: the outcomes hold no crossing to fit")
    if len(sizes) < 2:
        raise ValueError("the outcomes come from one size: no slope can be fitted")
    xs = np.linspace(sizes[0] - EDGE, sizes[-1] + EDGE, POINTS)
    surface = _penalised(xs, sizes, k, n, logit(level))  # (POINTS, SLOPES)
    profile = surface.max(axis=1)
    best = int(np.argmax(profile))
    deviance = 2 * (profile[best] - profile)
    inside = np.flatnonzero(deviance <= chi2.ppf(confidence, 1))
    low = -np.inf if inside[0] == 0 else xs[inside[0]]
    high = np.inf if inside[-1] == len(xs) - 1 else xs[inside[-1]]
    signed = np.sign(xs - xs[best]) * np.sqrt(deviance)
    cdf = np.maximum.accumulate(norm.cdf(signed))
    return Estimate(xs[best], low, high, float(SLOPES[np.argmax(surface[best])]), xs, cdf)


def probability(x, point: float, slope: float, level: float) -> np.ndarray:
    """The fitted probability that a seed learns at log10 parameters ``x``, of a curve that reaches ``level`` at
    ``point`` with ``slope``."""
    return expit(logit(level) + slope * (np.asarray(x, float) - point))


def _penalised(xs, sizes, k, n, offset) -> np.ndarray:
    """Firth-penalised log likelihood of every (x*, slope) candidate: the binomial log likelihood of ``k`` of ``n``
    at ``sizes`` plus half the log determinant of the Fisher information of (intercept, slope)."""
    centred = sizes - sizes.mean()  # the determinant does not depend on the origin; centring keeps it accurate
    eta = offset + SLOPES[None, :, None] * (sizes[None, None, :] - xs[:, None, None])
    loglik = -(k * np.logaddexp(0, -eta) + (n - k) * np.logaddexp(0, eta)).sum(-1)
    w = n * expit(eta) * expit(-eta)
    s0, s1, s2 = w.sum(-1), (w * centred).sum(-1), (w * centred ** 2).sum(-1)
    with np.errstate(divide="ignore"):
        return loglik + 0.5 * np.log(np.maximum(s0 * s2 - s1 ** 2, 0))
