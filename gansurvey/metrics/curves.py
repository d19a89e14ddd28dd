"""Training curves: has a quality curve stopped improving?

Teachers and fine-tuned arms record their quality along training; a line through the last part of the curve says
whether it had flattened, which is what a comparison against that model needs (a model still improving when its
training stopped makes every number depend on where training happened to end).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from gansurvey.checks import GanSurveyError, check_number


def curve_plateau(curve: pd.DataFrame, metric: str, higher_is_better: bool = False, tail: float = 0.5,
                  tolerance: float = 0.1) -> dict:
    """Has a quality curve (``step`` and ``metric`` columns, e.g. ``Benchmark.teacher_curve``) flattened?

    A least-squares line through the checks of the last ``tail`` of training gives the change the metric still
    made over that stretch (``trend_change``) and the checks' scatter around it (``noise_sd``). The curve counts
    as flattened when that change is no improvement, an improvement under ``tolerance`` of the metric's mean
    there, or one within twice the scatter (indistinguishable from checkpoint noise). A line rather than first
    versus last point, because single GAN checkpoints are noisy.
    """
    check_number("tail", tail, minimum=0, maximum=1)
    check_number("tolerance", tolerance, minimum=0)
    for column in ("step", metric):
        if column not in curve.columns:
            raise GanSurveyError(f"the curve has no {column!r} column; it has {list(curve.columns)}")
    last = curve["step"].max()
    window = curve[curve["step"] >= (1 - tail) * last]
    if len(window) < 3:
        raise GanSurveyError(f"the last {tail:.0%} of the curve holds {len(window)} checks; at least 3 are needed")
    x, y = window["step"].astype(float).to_numpy(), window[metric].astype(float).to_numpy()
    slope, intercept = np.polyfit(x, y, 1)
    change = float(slope * (x.max() - x.min()))
    noise = float(np.std(y - (slope * x + intercept), ddof=2))
    level = float(np.abs(y).mean())
    improvement = change if higher_is_better else -change
    relative = improvement / level if level else math.inf
    return {"metric": metric, "from_step": int(x.min()), "to_step": int(last),
            "last": float(curve.sort_values("step")[metric].iloc[-1]), "trend_change": change,
            "noise_sd": noise, "improvement_pct": 100 * relative,
            "flattened": bool(relative <= tolerance or improvement <= 2 * noise)}


#: Training budgets of the distillation sweep (stored as ``settings["budget"]``): ``equal-finetune`` students
#: train for the pruned models' fine-tuning steps; ``equal-total`` students train for as many steps as a pruned
#: model had in all (the teacher's training plus its fine-tuning), as the surveyed KD works train the student
#: about as long as the teacher.
