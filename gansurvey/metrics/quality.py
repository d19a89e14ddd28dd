"""Sample-quality metrics besides the Fréchet distance: KID, precision/recall, classifier score,
PSNR/SSIM, label accuracy and mode coverage.  Inputs are numpy arrays or torch tensors; results are plain
Python numbers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from gansurvey.checks import GanSurveyError, check_number
from gansurvey.metrics.frechet import as_features

__all__ = ["classifier_score", "kid", "label_accuracy", "mode_coverage", "precision_recall", "psnr", "ssim"]

# Rows of a distance matrix computed at once: bounds memory at _BLOCK x N doubles.
_BLOCK = 1024


def _same_dims(a: np.ndarray, b: np.ndarray, what_a: str, what_b: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise GanSurveyError(
            f"{what_a} and {what_b} must have the same number of columns, got {a.shape[1]} and {b.shape[1]}")


# ---------------------------------------------------------------------------------------------------- KID


#: Above this many rows per set, KID computes each subset's kernels separately instead of the whole sets' once.
_KID_WHOLE_KERNEL_ROWS = 5000


def _poly_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    k = x @ y.T / x.shape[1] + 1.0
    return k * k * k


def kid(features_a: Any, features_b: Any, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD² with k(x, y) = (x·y/d + 1)³.

    Averaged over ``subsets`` random subsets of ``subset_size`` rows drawn without replacement from each set;
    ``subset_size`` is capped at the smaller set's size so the default works on small sets.  Returns the mean
    and the (population) standard deviation over subsets.  The estimate is unbiased, so it can be slightly
    negative when the two sets come from the same distribution.
    """
    a = as_features("features_a", features_a)
    b = as_features("features_b", features_b)
    _same_dims(a, b, "features_a", "features_b")
    check_number("subsets", subsets, minimum=1, integer=True)
    check_number("subset_size", subset_size, minimum=2, integer=True)
    check_number("seed", seed, minimum=0, integer=True)
    m = min(subset_size, a.shape[0], b.shape[0])
    rng = np.random.default_rng(seed)
    picks = [(rng.choice(a.shape[0], m, replace=False), rng.choice(b.shape[0], m, replace=False))
             for _ in range(subsets)]
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    if max(a.shape[0], b.shape[0]) <= _KID_WHOLE_KERNEL_ROWS:
        # Kernels computed once on the whole sets; each subset's block sums are read off them through 0/1
        # selection rows (the sum over a block of K is s^T K s), all subsets at once.
        kaa, kbb, kab = _poly_kernel(ta, ta), _poly_kernel(tb, tb), _poly_kernel(ta, tb)
        sa = torch.zeros(subsets, a.shape[0], dtype=ta.dtype)
        sb = torch.zeros(subsets, b.shape[0], dtype=tb.dtype)
        for row, (ia, ib) in enumerate(picks):
            sa[row, ia], sb[row, ib] = 1.0, 1.0
        sums = [((sa @ kaa) * sa).sum(1), sa @ kaa.diagonal(), ((sb @ kbb) * sb).sum(1), sb @ kbb.diagonal(),
                ((sa @ kab) * sb).sum(1)]
    else:  # too many rows to hold whole kernels: one subset at a time
        rows = []
        for ia, ib in picks:
            kaa, kbb = _poly_kernel(ta[ia], ta[ia]), _poly_kernel(tb[ib], tb[ib])
            rows.append(torch.stack([kaa.sum(), kaa.diagonal().sum(), kbb.sum(), kbb.diagonal().sum(),
                                     _poly_kernel(ta[ia], tb[ib]).sum()]))
        sums = torch.stack(rows).T
    aa, aa_diag, bb, bb_diag, ab = sums
    # Leaving out the diagonal (each point with itself) is what makes the estimate unbiased.
    values = ((aa - aa_diag + bb - bb_diag) / (m * (m - 1)) - 2.0 * ab / (m * m)).numpy()
    return float(np.mean(values)), float(np.std(values))


# --------------------------------------------------------------------------------------- precision/recall


def _knn_radii(points: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest neighbour among the others (itself excluded)."""
    radii = torch.empty(points.shape[0], dtype=points.dtype)
    for start in range(0, points.shape[0], _BLOCK):
        block = points[start:start + _BLOCK]
        dist = torch.cdist(block, points)
        rows = torch.arange(block.shape[0])
        dist[rows, rows + start] = math.inf
        radii[start:start + _BLOCK] = dist.kthvalue(k, dim=1).values
    return radii


def _fraction_inside(queries: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> float:
    """Fraction of queries inside at least one ball (centre, radius)."""
    inside = 0
    for start in range(0, queries.shape[0], _BLOCK):
        dist = torch.cdist(queries[start:start + _BLOCK], centres)
        inside += int((dist <= radii[None, :]).any(dim=1).sum())
    return inside / queries.shape[0]


def precision_recall(real_features: Any, fake_features: Any, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) from k-NN balls around each sample.

    Precision: the share of fake samples inside the real manifold (the union of balls reaching each real
    sample's k-th nearest real neighbour).  Recall: the share of real samples inside the fake manifold.
    """
    real = as_features("real_features", real_features)
    fake = as_features("fake_features", fake_features)
    _same_dims(real, fake, "real_features", "fake_features")
    smaller = min(real.shape[0], fake.shape[0])
    check_number("k", k, minimum=1, below=smaller, integer=True)
    tr, tf = torch.from_numpy(real), torch.from_numpy(fake)
    precision = _fraction_inside(tf, tr, _knn_radii(tr, k))
    recall = _fraction_inside(tr, tf, _knn_radii(tf, k))
    return precision, recall


# ------------------------------------------------------------------------------------------ classifier score


def _matrix(what: str, x: Any) -> torch.Tensor:
    t = x.detach().cpu() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.ndim != 2 or t.shape[0] < 1 or t.shape[1] < 1:
        raise GanSurveyError(
            f"{what} must be 2-D (samples, classes) and non-empty, got shape {tuple(t.shape)}")
    t = t.to(torch.float64)
    if not torch.isfinite(t).all():
        raise GanSurveyError(f"{what} holds NaN or inf values; all must be finite")
    return t


def classifier_score(probs: Any) -> float:
    """exp(E_x KL(p(y|x) || p(y))) on a classifier's softmax outputs (N, C): the Inception Score's analogue.

    It is 1 when every prediction is the same and C when predictions are confident and spread evenly over the
    C classes.  One split over all samples (the Inception Score's 10 splits only add a spread estimate).
    """
    p = _matrix("probs", probs)
    sums = p.sum(dim=1)
    if (p < 0).any() or not torch.allclose(sums, torch.ones_like(sums), atol=1e-3):
        raise GanSurveyError(
            "probs must be probabilities (non-negative rows summing to 1); got values in "
            f"[{float(p.min()):.4g}, {float(p.max()):.4g}] and row sums in [{float(sums.min()):.4g}, "
            f"{float(sums.max()):.4g}]; pass softmax(logits)")
    p = p / sums[:, None]
    marginal = p.mean(dim=0, keepdim=True)
    # xlogy makes 0·log 0 = 0, so one-hot predictions are fine.
    kl = (torch.special.xlogy(p, p) - torch.special.xlogy(p, marginal)).sum(dim=1)
    return float(torch.exp(kl.mean()))


def label_accuracy(logits_or_probs: Any, labels: Any) -> float:
    """Share of rows whose arg-max class equals the label (labels: integers in [0, C))."""
    scores = _matrix("logits_or_probs", logits_or_probs)
    lab = labels.detach().cpu() if isinstance(labels, torch.Tensor) else torch.as_tensor(np.asarray(labels))
    if lab.shape != (scores.shape[0],):
        raise GanSurveyError(
            f"labels must have shape ({scores.shape[0]},) to match the scores, got {tuple(lab.shape)}")
    if lab.is_floating_point() or lab.is_complex() or lab.dtype == torch.bool:
        raise GanSurveyError(f"labels must be integers, got dtype {lab.dtype}")
    classes = scores.shape[1]
    if lab.numel() and (lab.min() < 0 or lab.max() >= classes):
        raise GanSurveyError(f"labels must lie in [0, {classes}) for {classes} classes, "
                             f"got values in [{int(lab.min())}, {int(lab.max())}]")
    return float((scores.argmax(dim=1) == lab.long()).double().mean())


# ---------------------------------------------------------------------------------------------- PSNR/SSIM


def _image_pair(a: Any, b: Any, data_range: Any) -> tuple[torch.Tensor, torch.Tensor, float]:
    ta = a.detach().cpu() if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a))
    tb = b.detach().cpu() if isinstance(b, torch.Tensor) else torch.as_tensor(np.asarray(b))
    if ta.ndim != 4 or ta.numel() == 0:
        raise GanSurveyError(f"images must be a non-empty (N, C, H, W) batch, got shape {tuple(ta.shape)}")
    if ta.shape != tb.shape:
        raise GanSurveyError(
            f"the two image batches must have the same shape, got {tuple(ta.shape)} and {tuple(tb.shape)}")
    ta, tb = ta.to(torch.float64), tb.to(torch.float64)
    if not (torch.isfinite(ta).all() and torch.isfinite(tb).all()):
        raise GanSurveyError("images hold NaN or inf values; all must be finite")
    check_number("data_range", data_range, minimum=0)
    if data_range == 0:
        raise GanSurveyError(f"data_range must be > 0 (e.g. 2.0 for images in [-1, 1]), got {data_range!r}")
    return ta, tb, float(data_range)


def psnr(a: Any, b: Any, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB, per image then averaged over the batch (inf for identical images)."""
    ta, tb, r = _image_pair(a, b, data_range)
    mse = (ta - tb).pow(2).flatten(1).mean(dim=1)
    per_image = 10.0 * torch.log10(r * r / mse)  # mse 0 gives +inf, as it should
    return float(per_image.mean())


def _gaussian_taps(size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def ssim(a: Any, b: Any, data_range: float, sigma: float = 1.5, window: int = 11) -> float:
    """Structural similarity (Wang et al. 2004), Gaussian window, averaged over pixels, channels, images.

    The window (11 taps, σ = 1.5) is shrunk to the largest odd size that fits smaller images; only positions
    where the window lies wholly inside the image count (as in scikit-image, which it matches for images of at
    least 11x11 with ``gaussian_weights=True, use_sample_covariance=False``).
    """
    ta, tb, r = _image_pair(a, b, data_range)
    check_number("sigma", sigma, minimum=0)
    check_number("window", window, minimum=1, integer=True)
    n, c, h, w = ta.shape
    size = min(window, h, w)
    size -= 1 - size % 2  # odd, so the window has a centre pixel
    taps = _gaussian_taps(size, sigma) if sigma > 0 else torch.full((size,), 1.0 / size, dtype=torch.float64)
    x, y = ta.reshape(n * c, 1, h, w), tb.reshape(n * c, 1, h, w)
    stacked = torch.cat([x, y, x * x, y * y, x * y])
    # Separable filtering: a column pass then a row pass, 'valid' only.
    filtered = F.conv2d(F.conv2d(stacked, taps.view(1, 1, size, 1)), taps.view(1, 1, 1, size))
    mx, my, mxx, myy, mxy = filtered.split(n * c)
    vx, vy, vxy = mxx - mx * mx, myy - my * my, mxy - mx * my
    c1, c2 = (0.01 * r) ** 2, (0.03 * r) ** 2
    smap = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(smap.reshape(n, -1).mean(dim=1).mean())


# ------------------------------------------------------------------------------------------ mode coverage


def mode_coverage(samples: Any, centers: Any, std: float, threshold_std: float = 3.0,
                  min_count: int | None = None) -> tuple[int, float]:
    """Modes covered and the share of high-quality samples, for a Gaussian mixture with known centres.

    A sample is high quality when it lies within ``threshold_std * std`` of its nearest centre; a mode is
    covered when at least ``min_count`` high-quality samples fall nearest to it.  The default ``min_count``
    is a fifth of the samples a perfectly balanced generator would give each mode, ceil(0.2 N / K) (20 for
    2500 samples over 25 modes), so a mode hit only by a stray sample does not count.
    """
    pts = as_features("samples", samples, min_rows=1)
    ctr = as_features("centers", centers, min_rows=1)
    _same_dims(pts, ctr, "samples", "centers")
    check_number("std", std, minimum=0)
    check_number("threshold_std", threshold_std, minimum=0)
    if std <= 0 or threshold_std <= 0:
        raise GanSurveyError(
            f"std and threshold_std must be > 0, got std={std!r}, threshold_std={threshold_std!r}")
    if min_count is None:
        min_count = max(1, math.ceil(0.2 * pts.shape[0] / ctr.shape[0]))
    check_number("min_count", min_count, minimum=1, integer=True)
    dist = torch.cdist(torch.from_numpy(pts), torch.from_numpy(ctr))
    nearest_dist, nearest = dist.min(dim=1)
    good = nearest_dist <= threshold_std * std
    counts = torch.bincount(nearest[good], minlength=ctr.shape[0])
    return int((counts >= min_count).sum()), float(good.double().mean())
