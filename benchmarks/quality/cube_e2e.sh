#!/usr/bin/env bash
# Cube from nothing (issue 19): collect OGBench's noisy pick-and-place oracle ($LOOK look, 64 px,
# worker processes), train the `cube-cpu` preset ($STEPS steps), plan at the paper's protocol
# (50 held-out tasks, goal 25 steps ahead, budget 50, CEM 300 x 30, horizon 5, receding 5; tasks
# already solved at the start excluded and counted; CEM=0 skips this from-zero stage) beside the
# random policy on the same tasks; then (POLICY=1, the default) train the amortised
# goal-conditioned policy on the model's latents (`lewm policy`), plan with it alone
# (`--solver policy`) and with CEM started from its plan (`--proposal policy`). Every stage is
# timed; the whole run is the "from nothing" wall time (target: <= 90 min on 2 cores).
#
#   SEED=0 OUT=runs/cube_e2e/s0 bash benchmarks/quality/cube_e2e.sh
#   SMOKE=1 OUT=/tmp/cube_smoke bash benchmarks/quality/cube_e2e.sh     # ~1 min
#   CEM=0 OUT=runs/cube_draft/s0 bash benchmarks/quality/cube_e2e.sh   # the 90-min budget run
#   EXPLORE=0.3 HELDOUT_FILE=runs/cube_e2e/s0/heldout.h5 OUT=runs/cube_x03/s0 bash ...
#     (training data with random action segments; the held-out tasks of an earlier run reused,
#     so the two runs plan the same 50 tasks)
#
# Writes $OUT/timeline.txt, the logs, $OUT/run (the model), $OUT/eval{,_random}/eval.json and
# $OUT/summary.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
SEED=${SEED:-0}
OUT=${OUT:-runs/cube_e2e/s$SEED}
LEWM=${LEWM:-.venv/bin/lewm}
PY=${PY:-.venv/bin/python}
WORKERS=${WORKERS:-2}
CONTEXT=${CONTEXT:-1}  # 1 = the paper's protocol
SOLVER=${SOLVER:-cem}  # cem = the paper's
PRESET=${PRESET:-cube-cpu}
EXPLORE=${EXPLORE:-0}  # fraction of training steps in random action segments (0 = the authors')
HELDOUT_FILE=${HELDOUT_FILE:-}  # reuse this held-out file instead of collecting one
POLICY=${POLICY:-1}  # 1: also train `lewm policy`, plan with it alone and with CEM from its plan
CEM=${CEM:-1}  # 1: plan with $SOLVER from scratch (CEM: the paper's planner as it stands)
LOOK=${LOOK:-draft}  # the collector's look (fast | draft | ogbench); draft: no anti-aliasing
if [ "${SMOKE:-0}" = 1 ]; then
  EPISODES=6 HELDOUT=4 STEPS=20 MAXSTEPS=60 TASKS=(--episodes 2)
  EVAL=("${TASKS[@]}" --samples 30 --iterations 3) POLICY_ARGS=(--steps 20)
else
  EPISODES=${EPISODES:-600} HELDOUT=${HELDOUT:-60} STEPS=${STEPS:-4000} MAXSTEPS=200 TASKS=()
  EVAL=() POLICY_ARGS=()
fi
mkdir -p "$OUT"
: > "$OUT/timeline.txt"
T0=$(date +%s)
stamp() { echo "$(( $(date +%s) - T0 )) s: $*" | tee -a "$OUT/timeline.txt"; }

stamp "collect $EPISODES training episodes ($WORKERS workers)"
"$LEWM" collect cube --episodes "$EPISODES" --seed "$SEED" --workers "$WORKERS" \
  --max-steps "$MAXSTEPS" --resolution 64 --out "$OUT/train.h5" --overwrite --no-progress \
  --explore "$EXPLORE" --look "$LOOK" > "$OUT/collect_train.log" 2>&1
if [ -n "$HELDOUT_FILE" ]; then
  stamp "held-out episodes: $HELDOUT_FILE"
  ln -sf "$(realpath "$HELDOUT_FILE")" "$OUT/heldout.h5"
else
  stamp "collect $HELDOUT held-out episodes"
  "$LEWM" collect cube --episodes "$HELDOUT" --seed $((SEED + 1000)) --workers "$WORKERS" \
    --max-steps "$MAXSTEPS" --resolution 64 --out "$OUT/heldout.h5" --overwrite --no-progress \
    --look "$LOOK" > "$OUT/collect_heldout.log" 2>&1
fi
stamp "train --preset $PRESET, $STEPS steps"
"$LEWM" train --data "$OUT/train.h5" --out "$OUT/run" --preset "$PRESET" --overwrite \
  --no-progress "train.steps=$STEPS" "train.seed=$SEED" > "$OUT/train.log" 2>&1
rm -rf "$OUT/eval"  # no stale result of an earlier run in this summary
if [ "$CEM" = 1 ]; then
  stamp "plan ($SOLVER, context $CONTEXT; otherwise the paper's protocol) on held-out tasks"
  "$LEWM" eval "$OUT/run" --env cube --data "$OUT/heldout.h5" --split all "${EVAL[@]}" \
    --context "$CONTEXT" --solver "$SOLVER" --out "$OUT/eval" --overwrite --no-progress \
    > "$OUT/eval.log" 2>&1
fi
stamp "random policy on the same tasks"
"$LEWM" eval "$OUT/run" --env cube --data "$OUT/heldout.h5" --split all "${TASKS[@]}" \
  --policy random --out "$OUT/eval_random" --overwrite --no-progress > "$OUT/eval_random.log" 2>&1
if [ "$POLICY" = 1 ]; then
  stamp "train the amortised policy (lewm policy) on the model's latents of the training file"
  "$LEWM" policy "$OUT/run" --overwrite --no-progress "${POLICY_ARGS[@]}" > "$OUT/policy.log" 2>&1
  stamp "plan with the policy alone on the same tasks"
  "$LEWM" eval "$OUT/run" --env cube --data "$OUT/heldout.h5" --split all "${TASKS[@]}" \
    --solver policy --out "$OUT/eval_policy" --overwrite --no-progress > "$OUT/eval_policy.log" 2>&1
  stamp "plan with CEM ($SOLVER's budget) started from the policy's plan, init std 0.5"
  "$LEWM" eval "$OUT/run" --env cube --data "$OUT/heldout.h5" --split all "${EVAL[@]}" \
    --context "$CONTEXT" --proposal policy eval.solver.init_std=0.5 --out "$OUT/eval_seeded" \
    --overwrite --no-progress > "$OUT/eval_seeded.log" 2>&1
fi
stamp "done"
"$PY" - "$OUT" "$(( $(date +%s) - T0 ))" <<'PYEOF'
import json, sys
from pathlib import Path
out, wall = Path(sys.argv[1]), int(sys.argv[2])
rand = json.loads((out / "eval_random" / "eval.json").read_text())
ran = out / "eval" / "eval.json"
plan = json.loads(ran.read_text()) if ran.exists() else None
log = (out / "collect_train.log").read_text()
coll = json.loads(log[log.index("\n{") :])  # the command's JSON follows the log lines
summary = {
    "from_nothing_minutes": round(wall / 60, 1),
    "random_success_rate": rand["success_rate"],
    "solved_at_start_in_the_papers_draw": rand["solved_at_start"],
    "excluded": rand["settings"]["exclude_solved"],
    "tasks": len(rand["successes"]),
    "collect_frames_per_s": coll.get("steps_per_s"),
    "timeline": (out / "timeline.txt").read_text().splitlines(),
}
if plan is not None:
    summary["success_rate"] = plan["success_rate"]
    summary["context"] = plan["settings"]["context"]
    summary["solver"] = plan["settings"]["solver"]["kind"]
    summary["plan_seconds_mean"] = plan.get("plan_seconds_mean")
for key, name in (("policy", "eval_policy"), ("seeded_cem", "eval_seeded")):
    if (out / name / "eval.json").exists():
        got = json.loads((out / name / "eval.json").read_text())
        summary[f"{key}_success_rate"] = got["success_rate"]
        summary[f"{key}_plan_seconds_mean"] = got.get("plan_seconds_mean")
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps(summary, indent=2))
PYEOF
