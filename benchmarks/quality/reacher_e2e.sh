#!/usr/bin/env bash
# Reacher from nothing (issue 18): collect (our PD controller, or POLICY_KIND=random), train the
# CPU preset, plan at the paper's protocol (50 held-out tasks, goal 25 steps ahead, budget 50, CEM
# 300 x 30, horizon 5, receding 5; CONTEXT and SOLVER change the planner) beside the random
# policy on the same tasks. Every stage is timed; the whole run is the "from nothing" wall time.
#
#   SEED=0 OUT=runs/reacher_e2e/s0 bash benchmarks/quality/reacher_e2e.sh
#   SEED=1 STEPS=8000 CONTEXT=3 SOLVER=icem OUT=runs/reacher_e2e/s1_8k bash ...   # 74.7 % (3 seeds)
#   SEED=1 CONTEXT=3 SOLVER=icem COST=path OUT=runs/reacher_e2e/s1 bash ...  # the reacher-cpu planner
#   SMOKE=1 OUT=/tmp/reacher_smoke bash benchmarks/quality/reacher_e2e.sh     # ~30 s
#
# Writes $OUT/timeline.txt, the logs, $OUT/run (the model), $OUT/eval{,_random}/eval.json and
# $OUT/summary.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
SEED=${SEED:-0}
OUT=${OUT:-runs/reacher_e2e/s$SEED}
LEWM=${LEWM:-.venv/bin/lewm}
PY=${PY:-.venv/bin/python}
WORKERS=${WORKERS:-2}
# frames of context the planner gives the model: 1 is the paper's protocol (the authors plan
# with one frame); 2-3 use the model's history (issue 18's screen: +8-10 points on Reacher)
CONTEXT=${CONTEXT:-1}
# the planner: cem is the paper's; icem at the same budget (300 x 30) finds far cheaper plans on
# Reacher (docs/results.md, "Reacher from nothing")
SOLVER=${SOLVER:-cem}
# the planning cost: terminal (the paper's) or path (the mean distance of every predicted latent
# to the goal; with CONTEXT=3 SOLVER=icem it is the reacher-cpu preset's planner)
COST=${COST:-terminal}
# the data: pd (our noisy joint-space PD controller) or random (the authors' released collection)
POLICY_KIND=${POLICY_KIND:-pd}
# held-out tasks from another file (e.g. the PD held-out file, to compare data sources on the
# same tasks); default: collect them with POLICY_KIND
HELDOUT_FILE=${HELDOUT_FILE:-}
# more training overrides, space-separated (e.g. TRAIN_ARGS="model.predictor.history=1")
read -r -a TRAIN_EXTRA <<< "${TRAIN_ARGS:-}"
if [ "${SMOKE:-0}" = 1 ]; then
  EPISODES=16 HELDOUT=8 STEPS=20 EVAL=(--episodes 2 --samples 30 --iterations 3)
else
  EPISODES=${EPISODES:-1000} HELDOUT=${HELDOUT:-100} STEPS=${STEPS:-3000} EVAL=()
fi
mkdir -p "$OUT"
: > "$OUT/timeline.txt"
T0=$(date +%s)
stamp() { echo "$(( $(date +%s) - T0 )) s: $*" | tee -a "$OUT/timeline.txt"; }

stamp "collect $EPISODES training episodes ($POLICY_KIND, $WORKERS workers)"
"$LEWM" collect reacher --episodes "$EPISODES" --seed "$SEED" --policy-kind "$POLICY_KIND" \
  --workers "$WORKERS" --resolution 64 --out "$OUT/train.h5" --overwrite --no-progress \
  > "$OUT/collect_train.log" 2>&1
if [ -n "$HELDOUT_FILE" ]; then
  cp "$HELDOUT_FILE" "$OUT/heldout.h5"
else
  stamp "collect $HELDOUT held-out episodes"
  "$LEWM" collect reacher --episodes "$HELDOUT" --seed $((SEED + 1000)) \
    --policy-kind "$POLICY_KIND" --workers "$WORKERS" --resolution 64 --out "$OUT/heldout.h5" \
    --overwrite --no-progress > "$OUT/collect_heldout.log" 2>&1
fi
stamp "train --preset cpu, $STEPS steps"
"$LEWM" train --data "$OUT/train.h5" --out "$OUT/run" --preset cpu --overwrite --no-progress \
  "train.steps=$STEPS" "train.seed=$SEED" train.val_every=500 train.ckpt_every=500 \
  "${TRAIN_EXTRA[@]}" > "$OUT/train.log" 2>&1
stamp "plan ($SOLVER, context $CONTEXT; otherwise the paper's protocol) on held-out tasks"
"$LEWM" eval "$OUT/run" --env reacher --data "$OUT/heldout.h5" --split all "${EVAL[@]}" \
  --context "$CONTEXT" --solver "$SOLVER" --cost "$COST" --out "$OUT/eval" --overwrite --no-progress > "$OUT/eval.log" 2>&1
stamp "random policy on the same tasks"
"$LEWM" eval "$OUT/run" --env reacher --data "$OUT/heldout.h5" --split all "${EVAL[@]}" \
  --policy random --out "$OUT/eval_random" --overwrite --no-progress > "$OUT/eval_random.log" 2>&1
stamp "done"
"$PY" - "$OUT" "$(( $(date +%s) - T0 ))" <<'EOF'
import json, sys
from pathlib import Path
out, wall = Path(sys.argv[1]), int(sys.argv[2])
plan = json.loads((out / "eval" / "eval.json").read_text())
rand = json.loads((out / "eval_random" / "eval.json").read_text())
summary = {
    "from_nothing_minutes": round(wall / 60, 1),
    "success_rate": plan["success_rate"],
    "context": plan["settings"]["context"],
    "solver": plan["settings"]["solver"]["kind"],
    "cost": plan["settings"].get("cost"),
    "random_success_rate": rand["success_rate"],
    "plan_seconds_mean": plan.get("plan_seconds_mean"),
    "timeline": (out / "timeline.txt").read_text().splitlines(),
}
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps(summary, indent=2))
EOF
