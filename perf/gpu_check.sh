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
# (default results/gpu, or results/gpu-smoke with --smoke). On the GPU each step has a time budget in seconds
# (TESTS_S=120, BENCH_S=150, GRAPHS_S=90, GENERATORS_S=90: with start-up and summary under 8 minutes in all) and
# the kernel tests run in TEST_WORKERS=8 processes. A step that runs out is stopped, its log kept, and steps.tsv and
# summary.json say which one (the smoke run has none). On 2026-12-04 Triton's compile time ran every step out of
# a serial budget (results/gpu/README.md).
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
STEPS="$OUT/steps.tsv"
: > "$STEPS"
# budgeted NAME SECONDS LOG CMD...: runs CMD with its output to LOG, stopped after SECONDS on the GPU (SIGINT,
# so pytest and the benchmarks end cleanly); records the step's exit status (124: out of time) and seconds in
# steps.tsv, and never stops the script
budgeted() {
  local name=$1 budget=$2 log=$3; shift 3
  local t0 rc=0
  t0=$(date +%s)
  if [[ $SMOKE == 1 ]]; then "$@" > "$log" 2>&1 || rc=$?
  else timeout --signal=INT --kill-after=15 "$budget" "$@" > "$log" 2>&1 || rc=$?; fi
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - t0 ))" >> "$STEPS"
  if [[ $rc == 124 ]]; then echo "!! $name ran out of its ${budget} s budget (log: $log)"; fi
  return 0
}

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
  budgeted "kernel tests" 0 "$OUT/kernel_tests.log" \
    "$PY" -m pytest -q -p no:cacheprovider tests/kernels --junitxml="$OUT/kernel_tests.xml"
else
  # compiled on the GPU: fp16/bf16 production branches checked against the dequantized reference, all selected
  # autotune configs, atomics, W8A8 exactness. Triton compiles on the CPU, one config after another per process,
  # and that dominated the time on an H200 (results/gpu/README.md: 17 tests in 280 s serially), so the tests run
  # in TEST_WORKERS processes (pytest-xdist) on the GPU machine's cores.
  budgeted "kernel tests" "${TESTS_S:-120}" "$OUT/kernel_tests.log" \
    "$PY" -m pytest -q -p no:cacheprovider -n "${TEST_WORKERS:-8}" \
    tests/kernels/test_cuda.py tests/kernels/test_triton_compile.py --junitxml="$OUT/kernel_tests.xml"
fi
tail -3 "$OUT/kernel_tests.log"

step "kernel benchmark"
if [[ $SMOKE == 1 ]]; then
  budgeted "kernel benchmark" 0 "$OUT/bench_kernels.log" \
    "$PY" perf/bench_kernels.py --smoke --out "$OUT/bench_kernels.json"
else
  budgeted "kernel benchmark" "${BENCH_S:-150}" "$OUT/bench_kernels.log" \
    "$PY" perf/bench_kernels.py --batches 1,16 --reps 50 --warmup 10 --out "$OUT/bench_kernels.json"
fi
tail -4 "$OUT/bench_kernels.log"

# The same cases replayed from CUDA graphs (device time without host dispatch), in a process of its own so a
# capture that goes wrong cannot cost the eager figures above.
step "kernel benchmark, CUDA graphs"
if [[ $SMOKE == 1 ]]; then
  budgeted "kernel benchmark graphs" 0 "$OUT/bench_kernels_graphs.log" \
    "$PY" perf/bench_kernels.py --smoke --graphs --out "$OUT/bench_kernels_graphs.json"
else
  budgeted "kernel benchmark graphs" "${GRAPHS_S:-90}" "$OUT/bench_kernels_graphs.log" \
    "$PY" perf/bench_kernels.py --batches 1,16 --reps 30 --warmup 5 --graphs --out "$OUT/bench_kernels_graphs.json"
fi
tail -4 "$OUT/bench_kernels_graphs.log"

step "generators"
if [[ $SMOKE == 1 ]]; then
  budgeted "generators" 0 "$OUT/bench_generators.log" \
    "$PY" perf/bench_generators.py --smoke --out "$OUT/bench_generators.json"
else
  budgeted "generators" "${GENERATORS_S:-90}" "$OUT/bench_generators.log" \
    "$PY" perf/bench_generators.py --batches 1,8 --reps 30 --out "$OUT/bench_generators.json"
fi
tail -12 "$OUT/bench_generators.log"

step "summary"
status=0
"$PY" - "$OUT" <<'PYEOF' || status=$?
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
steps = [line.split("\t") for line in (out / "steps.tsv").read_text().splitlines() if line]
steps = {name: {"exit": int(rc), "seconds": int(sec), "status": "passed" if rc == "0" else
                "out of time" if rc == "124" else "failed"} for name, rc, sec in steps}
path = out / "bench_kernels.json"
bench = json.loads(path.read_text()) if path.exists() else {"results": [], "notes": ["no bench_kernels.json"]}
rows = [r for r in bench["results"] if r["case"].startswith("gemm 4096") and r["batch"] <= 16]
goal = {}
for r in rows:
    if r["method"] == "w4g128":
        dense = next(d for d in rows if d["batch"] == r["batch"] and d["method"] == "dense float16")
        goal[r["batch"]] = dense["median_ms"] / r["median_ms"]
graphs_path = out / "bench_kernels_graphs.json"
graph_goal = {}
if graphs_path.exists():  # the same ratio from graph replays: the kernels' device time, no host dispatch
    graph_rows = json.loads(graphs_path.read_text())["results"]
    graph_goal = {r["batch"]: r["graph_speedup_vs_dense"] for r in graph_rows
                  if r["case"].startswith("gemm 4096") and r["batch"] <= 16 and r["method"] == "w4g128"
                  and "graph_speedup_vs_dense" in r}
summary = {"environment": json.loads((out / "environment.json").read_text()), "steps": steps,
           "int4_speedup_over_fp16_4096": goal, "int4_graph_speedup_over_fp16_4096": graph_goal,
           "goal_1.3x_met": bool(goal) and all(v >= 1.3 for v in goal.values()),
           "notes": bench.get("notes", [])}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary, indent=1))
sys.exit(0 if all(s["status"] == "passed" for s in steps.values()) else 1)
PYEOF
step "done: $OUT"
exit $status
