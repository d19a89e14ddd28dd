#!/usr/bin/env bash
# One-shot GPU check of the kernels (issue #20): kernel tests compiled on CUDA (no interpreter), the kernel
# benchmark (CUDA events, L2 flush, torch._int_mm / torchao baselines) and the published generators at real size
# (CycleGAN ResNet-9 and pix2pix U-Net-256, fp16 vs int8/int4 weight-only). Writes results/gpu/ with the device
# named. Budget: under 8 minutes on an H200.
#
#   perf/gpu_check.sh            # on a CUDA machine
#   perf/gpu_check.sh --smoke    # this CPU machine: the same steps through the Triton interpreter, tiny shapes
#
# PYTHON picks the interpreter (default .venv/bin/python, else python3); OUT_DIR the output folder
# (default results/gpu, or results/gpu-smoke with --smoke).
set -euo pipefail
cd "$(dirname "$0")/.."
SMOKE=0
[[ "${1:-}" == "--smoke" ]] && SMOKE=1
PY=${PYTHON:-.venv/bin/python}
[[ -x "$PY" ]] || PY=python3
if [[ $SMOKE == 1 ]]; then
  OUT=${OUT_DIR:-results/gpu-smoke}
  export TRITON_INTERPRET=1 GANSURVEY_KERNELS=triton GANSURVEY_GPU_SMOKE=1
else
  OUT=${OUT_DIR:-results/gpu}
  unset TRITON_INTERPRET GANSURVEY_GPU_SMOKE
  export GANSURVEY_KERNELS=auto
fi
mkdir -p "$OUT"
start=$(date +%s)
step() { echo "== $1 ($(( $(date +%s) - start )) s)"; }

step "environment"
"$PY" - "$OUT/environment.json" "$SMOKE" <<'PYEOF'
import json, platform, subprocess, sys
import torch
try:
    import triton; tv = triton.__version__
except Exception as err:  # noqa: BLE001
    tv = f"not importable: {err}"
try:
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                         capture_output=True, text=True, timeout=30).stdout.strip()
except Exception as err:  # noqa: BLE001
    smi = f"nvidia-smi unavailable: {err}"
env = {"smoke": sys.argv[2] == "1", "nvidia_smi": smi, "torch": torch.__version__, "triton": tv,
       "cuda": torch.version.cuda, "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
       "python": platform.python_version()}
json.dump(env, open(sys.argv[1], "w"), indent=1)
print(env)
PYEOF

step "kernel tests"
if [[ $SMOKE == 1 ]]; then
  # the interpreter suite (every kernel vs its reference) and the CUDA file on CPU tensors
  "$PY" -m pytest -q -p no:cacheprovider tests/kernels --junitxml="$OUT/kernel_tests.xml" 2>&1 | tail -3
else
  # compiled on the GPU: fp16/bf16 production branches, all selected autotune configs, atomics, W8A8 exactness
  "$PY" -m pytest -q -p no:cacheprovider tests/kernels/test_cuda.py tests/kernels/test_triton_compile.py \
    --junitxml="$OUT/kernel_tests.xml" 2>&1 | tail -3
fi

step "kernel benchmark"
if [[ $SMOKE == 1 ]]; then
  "$PY" perf/bench_kernels.py --smoke --out "$OUT/bench_kernels.json" | tail -4
else
  "$PY" perf/bench_kernels.py --batches 1,4,16,64 --reps 50 --warmup 10 --out "$OUT/bench_kernels.json"
fi

step "generators"
if [[ $SMOKE == 1 ]]; then
  "$PY" perf/bench_generators.py --smoke --out "$OUT/bench_generators.json"
else
  "$PY" perf/bench_generators.py --batches 1,8 --reps 30 --out "$OUT/bench_generators.json"
fi

step "summary"
"$PY" - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
bench = json.loads((out / "bench_kernels.json").read_text())
rows = [r for r in bench["results"] if r["case"].startswith("gemm 4096") and r["batch"] <= 16]
goal = {}
for r in rows:
    if r["method"] == "w4g128":
        dense = next(d for d in rows if d["batch"] == r["batch"] and d["method"] == "dense float16")
        goal[r["batch"]] = dense["median_ms"] / r["median_ms"]
summary = {"environment": json.loads((out / "environment.json").read_text()),
           "int4_speedup_over_fp16_4096": goal,
           "goal_1.3x_met": bool(goal) and all(v >= 1.3 for v in goal.values()),
           "notes": bench.get("notes", [])}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary, indent=1))
PYEOF
step "done: $OUT"
