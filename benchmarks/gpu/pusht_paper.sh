#!/usr/bin/env bash
# The paper preset (ViT-tiny/14 at 224 px, 18,034,478 parameters) on Push-T, on one GPU, in one
# call of at most ~9 minutes (issue 16): collect 224-px data with the default pusher, train for a
# fixed wall-clock budget (SIGTERM writes a checkpoint), then planning at the paper's protocol on
# a fixed task file (and the random policy), then the angle proxy (probes, 20-degree turn vs
# 5-unit shift; last: the planning result matters most if the call is cut short).
#
#   SMOKE=1 bash benchmarks/gpu/pusht_paper.sh     the same steps at toy sizes on a CPU (~2 min)
#   bash benchmarks/gpu/pusht_paper.sh             on the GPU machine (python3 holds torch there)
#
# The GPU machine cannot reach PyPI and lacks gymnasium and pymunk: download their wheels here
# first (see benchmarks/gpu/README.md), carry .whl, and this script installs them into /tmp/site.
# Everything lands in $OUT (default runs/gpu_pusht): report.md, the logs, the JSON results. The
# device tool sets OUT in its commands (a folder emptied before each call): give OUT explicitly.
#
# Collection needs no GPU: `COLLECT_ONLY=1 setsid bash benchmarks/gpu/pusht_paper.sh &` starts it
# during another device call (say check.sh) and returns at once; a later run on the same machine
# skips collection when `$OUT/collected` is there, or waits for the collection still running.
# WORKERS (default 6; 1 when SMOKE=1) collection processes, TRAIN_S seconds of training,
# EVAL_SEEDS (default "0 42": 50 tasks each, 100 in all) the task draws planned, DATA_MODE
# (default stream: loader processes read the file beside the GPU instead of loading ~18 GB first).
set -euo pipefail
cd "$(dirname "$0")/../.."
SMOKE=${SMOKE:-0}
OUT=${OUT:-runs/gpu_pusht}
PY=${PY:-python3}
mkdir -p "$OUT"
if [ -d .whl ] && ! "$PY" -c "import pymunk, gymnasium" 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
"$PY" -c "import torch, h5py, safetensors, gymnasium, pymunk, scipy" || {
  echo "missing Python packages: see benchmarks/gpu/README.md (carry .whl)" >&2
  exit 2
}
LEWM=("$PY" -m lewm.cli.main)

if [ "$SMOKE" = 1 ]; then  # toy sizes: the same commands finish in a minute or two on a CPU
  RES=32 EPISODES=12 EVAL_EPISODES=6 TRAIN_S=${TRAIN_S:-40} TASKS=2 FRAMES=300 WORKERS=1
  MODEL=(--preset tiny model.encoder.image_size=32 train.steps=100000 train.ckpt_every=20
    data.mode=${DATA_MODE:-stream} data.workers=1)
  PLAN=(--samples 30 --iterations 3)
else  # the paper preset at the paper's resolution; ~2 min of collection, TRAIN_S of training
  RES=224 EPISODES=${EPISODES:-600} EVAL_EPISODES=100 TRAIN_S=${TRAIN_S:-240} TASKS=50 FRAMES=6000
  WORKERS=${WORKERS:-6}
  MODEL=(--preset paper train.steps=100000 train.schedule_steps=100000 train.lr=5e-5
    train.warmup_steps=1000 train.batch_size=128 model.predictor.dropout=0.1
    train.ckpt_every=200 train.val_every=500 train.keep_checkpoints=2 train.num_threads=8
    data.mode=${DATA_MODE:-stream} data.workers=6)
  PLAN=()
fi
EVAL_SEEDS=${EVAL_SEEDS:-0 42}
T0=$(date +%s)
stamp() { echo "$(($(date +%s) - T0)) s: $*" | tee -a "$OUT/timeline.txt"; }
report() {  # report.md from whatever has been written so far
  {
    echo "# Push-T, paper preset on $(cat "$OUT/device.txt")"
    echo; echo '```'; cat "$OUT/timeline.txt"; echo '```'
    echo; cat "$OUT/angle.md" 2>/dev/null || echo "(no angle proxy yet)"
    for seed in $EVAL_SEEDS; do
      echo; echo "plan, seed $seed:"; echo '```'; cat "$OUT/eval_s$seed.json" 2>/dev/null || true; echo '```'
      echo "random, seed $seed:"; echo '```'; cat "$OUT/eval_random_s$seed.json" 2>/dev/null || true
      echo '```'
    done
  } > "$OUT/report.md"
}
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')" | tee "$OUT/device.txt"

collect() {
  stamp "collect $EPISODES training episodes and $EVAL_EPISODES task episodes at $RES px"
  echo $$ > "$OUT/collect.pid"
  "${LEWM[@]}" collect pusht --episodes "$EPISODES" --resolution "$RES" --noise 0.3 \
    --explore 0.3 --seed 2 --workers "$WORKERS" --out "$OUT/train.h5" --overwrite \
    --no-progress > "$OUT/collect_train.json" 2> "$OUT/collect_train.err" &
  local p1=$!
  "${LEWM[@]}" collect pusht --episodes "$EVAL_EPISODES" --resolution "$RES" --seed 99 \
    --workers $(((WORKERS + 2) / 3)) --out "$OUT/tasks.h5" --overwrite --no-progress > "$OUT/collect_tasks.json" \
    2> "$OUT/collect_tasks.err" &
  local p2=$!
  wait $p1 || { tail "$OUT/collect_train.err"; exit 1; }
  wait $p2 || { tail "$OUT/collect_tasks.err"; exit 1; }
  touch "$OUT/collected"
  stamp "collected"
}
if [ -f "$OUT/collected" ]; then
  stamp "data already collected in $OUT"
elif [ -f "$OUT/collect.pid" ] && kill -0 "$(cat "$OUT/collect.pid")" 2>/dev/null; then
  stamp "waiting for the collection already running (pid $(cat "$OUT/collect.pid"))"
  while [ ! -f "$OUT/collected" ] && kill -0 "$(cat "$OUT/collect.pid")" 2>/dev/null; do sleep 2; done
  [ -f "$OUT/collected" ] || { echo "the running collection failed: see $OUT/collect_*" >&2; exit 1; }
  stamp "collection finished"
else
  collect
fi
[ "${COLLECT_ONLY:-0}" = 1 ] && exit 0

stamp "train for $TRAIN_S s (then SIGTERM: a checkpoint at the step reached)"
set +e
timeout -s TERM "$TRAIN_S" "${LEWM[@]}" train --data "$OUT/train.h5" --out "$OUT/run" \
  --overwrite --no-progress "${MODEL[@]}" > "$OUT/train.log" 2>&1
rc=$?
set -e
[ $rc = 0 ] || [ $rc = 124 ] || [ $rc = 130 ] || [ $rc = 143 ] || { tail "$OUT/train.log"; exit $rc; }
CKPT=$(ls -d "$OUT"/run/checkpoints/step_* | sort | tail -n 1)
stamp "trained to $(basename "$CKPT")"
cp "$OUT/run/metrics.jsonl" "$OUT/metrics.jsonl"

for seed in $EVAL_SEEDS; do
  stamp "plan $TASKS tasks (seed $seed) at the paper's protocol (and the random policy)"
  "${LEWM[@]}" eval "$CKPT" --env pusht --data "$OUT/tasks.h5" --split all --seed "$seed" \
    --episodes "$TASKS" "${PLAN[@]}" --out "$OUT/eval_s$seed" --overwrite --no-progress \
    > "$OUT/eval_s$seed.json" 2> "$OUT/eval_s$seed.err" || tail "$OUT/eval_s$seed.err"
  "${LEWM[@]}" eval "$CKPT" --env pusht --data "$OUT/tasks.h5" --split all --seed "$seed" \
    --episodes "$TASKS" --policy random --out "$OUT/eval_random_s$seed" --overwrite \
    --no-progress > "$OUT/eval_random_s$seed.json" 2> "$OUT/eval_random_s$seed.err" ||
    tail "$OUT/eval_random_s$seed.err"
  report
done
stamp "angle proxy (on the GPU when there is one) on $FRAMES task frames"
"$PY" benchmarks/quality/angle_screen.py "$CKPT" --data "$OUT/tasks.h5" --frames "$FRAMES" \
  --json "$OUT/angle.json" > "$OUT/angle.md" 2> "$OUT/angle.err" || tail "$OUT/angle.err"

stamp "done"
report
cat "$OUT/report.md"
