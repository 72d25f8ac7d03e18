#!/usr/bin/env bash
# The GPU checks, as one prepared command that fits in 10 minutes on one CUDA GPU:
#
#   bash benchmarks/device_check.sh OUT_DIR [SECONDS]
#
# 1. smoke + throughput probe: every objective and lever, fp16 and bf16, a few hundred steps each, all at once on the
#    GPU; any failure stops the script here, early. Their summed steps/s sizes the parallelism of step 3;
# 2. benchmarks/speed.py --device cuda: the package loop against the bare PyTorch loop, alone on the GPU;
# 3. benchmarks/table2.py --device cuda --rows all: every Table 2 row, 3 seeds each, as many in parallel as keep a
#    run within its 20,000 steps in the time left; beside it benchmarks/precision_check.py (fp16 with its
#    GradScaler and bf16, a few thousand steps each) and three MNIST candidates for the shipped demo model.
# Everything measured lands in OUT_DIR: device_check.log, and results.tgz with the results JSON and markdown, the run
# records and logs, the sample grids, and the MNIST candidates' and the best VEEGAN run's networks. SECONDS (default 540) is the whole script's budget.
# Offline: missing Python packages come as wheels in .whl/ (see benchmarks/README.md), installed to /tmp/site.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bash benchmarks/device_check.sh OUT_DIR [SECONDS]}
BUDGET=${2:-540}
# a dry run of the script's logic on a CPU machine: DEVICE=cpu PROBE_STEPS=20 TABLE_STEPS=20 ... (never for results)
DEVICE=${DEVICE:-cuda}
PROBE_STEPS=${PROBE_STEPS:-400}
TABLE_STEPS=${TABLE_STEPS:-20000}
MNIST_STEPS=${MNIST_STEPS:-9000}
PRECISION_STEPS=${PRECISION_STEPS:-2500}
SPEED_STEPS=${SPEED_STEPS:-1010}
TABLE_ARGS=${TABLE_ARGS:-}  # appended to table2.py's arguments (a dry run: fewer rows, seeds and eval samples)
mkdir -p "$OUT"
START=$(date +%s)
elapsed() { echo $(($(date +%s) - START)); }
log() { echo "[$(elapsed) s] $*" | tee -a "$OUT/device_check.log"; }
WORK=/tmp/device_check
mkdir -p "$WORK"
finish() {
  log "packing results"
  # records, logs, tables and grids of every run; weights only of the candidates for shipping
  (cd "$WORK" && find . \( -name '*.json' -o -name '*.md' -o -name '*.png' -o -name '*.log' -o -name '*.txt' \
    -o \( -name '*.safetensors' \( -path './mnist-*' -o -path './best_stacked_veegan/*' \) \) \) \
    -not -path '*/checkpoint-*' -not -path '*/discriminator/*' -not -path '*/logs/*' -print0 |
    tar czf "$OUT/results.tgz" --null -T -)
  ls -la "$OUT" >>"$OUT/device_check.log"
  log "done"
}
trap finish EXIT

if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    >"$WORK/pip.log" 2>&1 || { log "wheel install failed"; cat "$WORK/pip.log" >>"$OUT/device_check.log"; exit 1; }
  export PYTHONPATH=/tmp/site:$PWD/src
else
  export PYTHONPATH=$PWD/src
fi
# the commit under test: the one the sender wrote to .device/commit (a .git on the device can be stale), else git's
VEEGAN_COMMIT=$(cat .device/commit 2>/dev/null || git rev-parse HEAD 2>/dev/null || echo unknown)
export VEEGAN_COMMIT
log "commit $VEEGAN_COMMIT"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >>"$OUT/device_check.log" 2>&1
python3 -c "
import torch, veegan_hf, diffusers, accelerate
gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'
print('torch', torch.__version__, gpu, 'diffusers', diffusers.__version__, 'accelerate', accelerate.__version__)
" 2>&1 | tee -a "$OUT/device_check.log"

# --- 1. smoke and throughput probe: every path on CUDA, in parallel --------------------------------------------
SMOKE=$WORK/smoke
mkdir -p "$SMOKE"
common=(--config stacked_mnist --report_to none --validation_steps 1000000 --checkpointing_steps 100
  --eval_at_end false --logging_steps 50)
declare -A probes=(
  [gan]="--objective gan"
  [veegan]="--objective veegan"
  [veegan_marginal_sn]="--objective veegan --discriminator_marginal_head --discriminator_spectral_norm"
  [veegan_hinge_r1]="--objective veegan --discriminator_loss hinge --r1_weight 0.1 --discriminator_marginal_head"
  [ali]="--objective ali --discriminator_spectral_norm"
  [pacgan]="--objective pacgan"
  [gan_wide_d]="--objective gan --discriminator_base_channels 64 --discriminator_spectral_norm"
  [veegan_fp16]="--objective veegan --mixed_precision fp16"
  [veegan_bf16]="--objective veegan --mixed_precision bf16"
  [gan_fp16_sn]="--objective gan --mixed_precision fp16 --discriminator_spectral_norm"
  [veegan_b]="--objective veegan --discriminator_marginal_head --seed 1"
  [gan_b]="--objective gan --seed 1"
)
log "smoke: ${#probes[@]} runs of $PROBE_STEPS steps and one unrolled run of $((PROBE_STEPS / 10)), all at once"
pids=()
for name in "${!probes[@]}"; do
  # shellcheck disable=SC2086
  python3 training/train.py "${common[@]}" ${probes[$name]} --max_train_steps "$PROBE_STEPS" --output_dir "$SMOKE/$name" \
    >"$SMOKE/$name.log" 2>&1 &
  pids+=($!)
done
python3 training/train.py "${common[@]}" --objective unrolled --max_train_steps $((PROBE_STEPS / 10)) --logging_steps 10 \
  --output_dir "$SMOKE/unrolled" >"$SMOKE/unrolled.log" 2>&1 &
pids+=($!)
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=$((failed + 1)); done
python3 - "$SMOKE" <<'EOF' | tee -a "$OUT/device_check.log" | tee "$WORK/probe.txt"
import json, sys
from pathlib import Path
rates = {}
for metrics in sorted(Path(sys.argv[1]).glob("*/metrics.json")):
    m = json.loads(metrics.read_text())
    rates[metrics.parent.name] = m["train/steps_per_second"]
    print(f"{metrics.parent.name:<22} {m['train/steps']:>4} steps {m['train/steps_per_second']:8.1f} steps/s",
          m.get("train/loss_scale_min"), m.get("train/loss_scale_max"))
plain = [v for k, v in rates.items() if k != "unrolled"]
print("aggregate_steps_per_second", round(sum(plain), 1))
EOF
if [ "$failed" -gt 0 ]; then
  log "smoke: $failed run(s) failed; their logs:"
  for f in "$SMOKE"/*.log; do
    grep -q "Traceback\|error:" "$f" && { echo "== $f"; tail -30 "$f"; } >>"$OUT/device_check.log"
  done
  exit 1
fi
log "smoke passed"

# --- 2. speed: the package loop against the bare loop, alone on the GPU -----------------------------------------
python3 benchmarks/speed.py --device "$DEVICE" --no_compile --skip_sampling --skip_scaling --repeats 2 --steps "$SPEED_STEPS" \
  --results_dir "$WORK/results" --work_dir "$WORK/speed" >"$WORK/speed.log" 2>&1 || log "speed.py failed (see speed.log)"
tail -20 "$WORK/speed.log" >>"$OUT/device_check.log"
log "speed done"

# --- 3. the table, the precision checks and the MNIST candidates, until the budget runs out ---------------------
aggregate=$(awk '/aggregate_steps_per_second/ {print $2}' "$WORK/probe.txt")
left=$((BUDGET - $(elapsed) - 45))  # 45 s for scoring the last runs, the data row and packing
# as many parallel runs as keep each within 20,000 steps in the time left (the probe ran 12 at once)
jobs=$(python3 -c "print(max(4, min(14, int(float('$aggregate') * $left / $TABLE_STEPS / 1.15))))")
log "table2: aggregate ${aggregate} steps/s, ${left} s left -> ${jobs} parallel runs"
python3 benchmarks/precision_check.py --device "$DEVICE" --steps "$PRECISION_STEPS" --results_dir "$WORK/results" \
  >"$WORK/precision.log" 2>&1 &
precision=$!
for variant in marginal_sn marginal marginal_sn_hinge; do
  case $variant in
    marginal_sn) flags="--discriminator_marginal_head --discriminator_spectral_norm" ;;
    marginal) flags="--discriminator_marginal_head" ;;
    marginal_sn_hinge) flags="--discriminator_marginal_head --discriminator_spectral_norm --discriminator_loss hinge" ;;
  esac
  # shellcheck disable=SC2086
  python3 training/train.py --config mnist --max_train_steps "$MNIST_STEPS" --max_train_seconds $((left - 60)) --report_to none \
    --checkpointing_steps none --validation_steps 1000000 $flags --output_dir "$WORK/mnist-$variant" \
    >"$WORK/mnist-$variant.log" 2>&1 &
done
python3 benchmarks/table2.py --device "$DEVICE" --rows all --seeds 3 --jobs "$jobs" --tag "_$DEVICE" --steps "$TABLE_STEPS" \
  --start_within $((left - 150)) --train_within $((left - 40)) --results_dir "$WORK/results" --work_dir "$WORK/table2" \
  $TABLE_ARGS >"$WORK/table2.log" 2>&1 || log "table2.py failed (see table2.log)"
grep -v "INFO\|it/s" "$WORK/table2.log" | tail -60 >>"$OUT/device_check.log"
wait "$precision" || log "precision_check failed (see precision.log)"
wait
for variant in "$WORK"/mnist-*/; do
  [ -f "$variant/metrics.json" ] && log "$(basename "$variant"): $(cat "$variant/metrics.json" | tr -d '\n ')"
done
# the best VEEGAN row's first-seed pipeline: a Stacked MNIST model to ship if it covers modes best
python3 - "$OUT" "$WORK" <<'EOF' | tee -a "$OUT/device_check.log"
import json, shutil, sys
from pathlib import Path
work = Path(sys.argv[2])
payload = json.loads(next((work / "results").glob("table2_*.json")).read_text())
row = payload["best_rows"].get("veegan")
runs = [r for r in payload["runs"] if r["row"] == row]
if runs:
    best = min(runs, key=lambda r: r["metrics"]["kl"])
    src = work / "table2" / f"stacked_mnist-{row}-seed{best['seed']}"
    shutil.copytree(src, work / "best_stacked_veegan", ignore=shutil.ignore_patterns("checkpoint-*", "logs"))
    print("best VEEGAN row", row, "seed", best["seed"], "KL", best["metrics"]["kl"])
EOF
