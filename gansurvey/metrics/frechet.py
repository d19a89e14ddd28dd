"""Fréchet distance between Gaussians fitted to two feature sets (the "F" of FID, on any features).

d² = |mu1 - mu2|² + tr S1 + tr S2 - 2 tr (S1 S2)^½.  The classic code takes ``scipy.linalg.sqrtm`` of the
non-symmetric product S1 S2 (about 15 s for 2048-d features on two CPU cores).  Here the trace term comes
from a symmetric eigenvalue problem instead: with S1 = L Lᵀ (Cholesky), S1 S2 is similar to Lᵀ S2 L, which is
symmetric positive semi-definite, so tr (S1 S2)^½ is the sum of the square roots of its eigenvalues.  When
neither covariance is positive definite (fewer samples than dimensions) the symmetric square root of S1 from
``eigh`` stands in for L.

For 2048-d statistics this takes about 1 s on two idle cores.  The eigenvalue step is a long chain of small
multi-threaded BLAS calls: on a CPU shared with other busy processes it can run 10x slower than on one
thread, so cap the BLAS threads there (``threadpoolctl.threadpool_limits(1)``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg
import torch

from gansurvey.checks import GanSurveyError

__all__ = ["as_features", "frechet_distance", "frechet_from_stats", "gaussian_stats", "trace_sqrt_product"]


def _to_numpy(what: str, x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise GanSurveyError(f"{what} must be a numeric array or tensor, got {type(x).__name__}") from err
    return arr


def as_features(what: str, x: Any, min_rows: int = 2) -> np.ndarray:
    """``x`` as a finite float64 (samples, dims) matrix with at least ``min_rows`` rows, or a clear error."""
    arr = _to_numpy(what, x)
    if arr.ndim != 2:
        raise GanSurveyError(f"{what} must be 2-D (samples, dims), got shape {tuple(arr.shape)}")
    if arr.shape[0] < min_rows or arr.shape[1] < 1:
        raise GanSurveyError(
            f"{what} must have at least {min_rows} rows and 1 column, got shape {tuple(arr.shape)}")
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise GanSurveyError(f"{what} holds {bad} non-finite values (NaN or inf); all must be finite")
    return arr


def gaussian_stats(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D), float64, of an (N, D) feature matrix (N >= 2)."""
    x = as_features("features", features)
    mu = x.mean(axis=0)
    xc = x - mu
    # xcᵀ xc on the same buffer lets BLAS use a symmetric rank-k update: half the work of np.cov.
    sigma = (xc.T @ xc) / (x.shape[0] - 1)
    return mu, sigma


def _check_stats(mu: Any, sigma: Any, which: str) -> tuple[np.ndarray, np.ndarray]:
    mu = _to_numpy(f"mu{which}", mu)
    sigma = _to_numpy(f"sigma{which}", sigma)
    if mu.ndim != 1:
        raise GanSurveyError(f"mu{which} must be 1-D (dims,), got shape {tuple(mu.shape)}")
    d = mu.shape[0]
    if sigma.shape != (d, d):
        raise GanSurveyError(
            f"sigma{which} must be ({d}, {d}) to match mu{which}, got shape {tuple(sigma.shape)}")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise GanSurveyError(f"mu{which} and sigma{which} must be finite; they hold NaN or inf")
    return mu, sigma


def _sym(m: np.ndarray) -> np.ndarray:
    return (m + m.T) * 0.5


def _cholesky_or_none(s: np.ndarray) -> np.ndarray | None:
    try:
        return scipy.linalg.cholesky(s, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        return None


def _sandwich(factor: np.ndarray, s: np.ndarray, triangular: bool) -> np.ndarray:
    """factorᵀ s factor, with triangular multiplies (half the flops) when ``factor`` is lower triangular."""
    if not triangular:
        return _sym(factor.T @ s @ factor)
    trmm = scipy.linalg.blas.dtrmm
    right = trmm(1.0, factor, s, side=1, lower=1)  # s L (a fresh array: the caller's s is kept)
    return _sym(trmm(1.0, factor, right, side=0, lower=1, trans_a=1, overwrite_b=1))  # Lᵀ (s L)


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """tr (S1 S2)^½ for symmetric positive semi-definite S1, S2 (tiny negative eigenvalues are clipped).

    Cholesky and ``eigh`` read one triangle only, and the sandwiched matrix is symmetrized, so a slightly
    asymmetric input acts as its symmetric part without paying for a copy.
    """
    s1, s2 = np.asarray(s1, np.float64), np.asarray(s2, np.float64)
    factor = _cholesky_or_none(s1)
    other = s2
    if factor is None:
        factor, other = _cholesky_or_none(s2), s1
    triangular = factor is not None
    if factor is None:
        w, v = scipy.linalg.eigh(s1, check_finite=False)
        factor, other = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T, s2
    inner = _sandwich(factor, other, triangular)
    eig = scipy.linalg.eigh(inner, eigvals_only=True, check_finite=False)
    return float(np.sqrt(np.clip(eig, 0.0, None)).sum())


def frechet_from_stats(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """Fréchet distance (squared, as FID reports it) between N(mu1, sigma1) and N(mu2, sigma2).

    Rounding can push the value of two equal Gaussians a hair below zero; it is clipped at 0.
    """
    mu1, sigma1 = _check_stats(mu1, sigma1, "1")
    mu2, sigma2 = _check_stats(mu2, sigma2, "2")
    if mu1.shape != mu2.shape:
        raise GanSurveyError(
            f"the two Gaussians must have the same dimension, got {mu1.shape[0]} and {mu2.shape[0]}")
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    return max(float(value), 0.0)


def frechet_distance(features_a: Any, features_b: Any) -> float:
    """Fréchet distance between Gaussians fitted to two (N, D) feature sets (numpy arrays or tensors)."""
    a = as_features("features_a", features_a)
    b = as_features("features_b", features_b)
    if a.shape[1] != b.shape[1]:
        raise GanSurveyError("features_a and features_b must have the same number of columns, "
                             f"got {a.shape[1]} and {b.shape[1]}")
    return frechet_from_stats(*gaussian_stats(a), *gaussian_stats(b))
