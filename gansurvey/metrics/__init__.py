"""Quality and cost metrics. Import the submodules directly for the less common names."""

from gansurvey.metrics.cost import (
    activation_traffic_bytes,
    cost_breakdown,
    count_macs,
    count_params,
    energy_estimate,
    stored_bytes,
    weight_traffic_bytes,
)
from gansurvey.metrics.frechet import frechet_distance, frechet_from_stats, gaussian_stats
from gansurvey.metrics.latency import classify_regime, measure_latency
from gansurvey.metrics.quality import (
    classifier_score,
    kid,
    label_accuracy,
    mode_coverage,
    precision_recall,
    psnr,
    ssim,
)

__all__ = [
    "activation_traffic_bytes",
    "classifier_score",
    "classify_regime",
    "cost_breakdown",
    "count_macs",
    "count_params",
    "energy_estimate",
    "frechet_distance",
    "frechet_from_stats",
    "gaussian_stats",
    "kid",
    "label_accuracy",
    "measure_latency",
    "mode_coverage",
    "precision_recall",
    "psnr",
    "ssim",
    "stored_bytes",
    "weight_traffic_bytes",
]
