#!/usr/bin/env bash
# The GPU path in one go (issue 21), on a machine with one or more GPUs, in at most ~8 minutes:
# bf16 training throughput and planning latency of the paper preset, a CUDA smoke of every
# registered solver, and `lewm train --distributed` under torchrun with NCCL on all visible GPUs.
# The logic is benchmarks/gpu/check.py; this wrapper sets up the Python path and a hard limit.
#
#   SMOKE=1 bash benchmarks/gpu/check.sh     the same sections at toy sizes on a CPU (~15 s on 2
#                                            cores; torchrun with 2 gloo processes)
#   bash benchmarks/gpu/check.sh             on the GPU machine (python3 holds torch there)
#   bash benchmarks/gpu/check.sh --skip ddp  extra arguments go to check.py (--only, --skip, ...)
#
# Needs torch, numpy, h5py and safetensors only (no gymnasium, no pymunk); wheels in .whl are
# installed into /tmp/site as by pusht_paper.sh when present. Everything lands in $OUT (default
# runs/gpu_check): report.md and report.json (rewritten after every section, so a run cut short
# still says what it measured), timeline.txt, check.log, ddp/ (the torchrun job's logs and run).
# Exit status: check.py's (0: every section passed), or 124 when LIMIT ran out.
set -euo pipefail
cd "$(dirname "$0")/../.."
SMOKE=${SMOKE:-0}
OUT=${OUT:-runs/gpu_check}
PY=${PY:-python3}
mkdir -p "$OUT"
if [ -d .whl ] && ! "$PY" -c "import pymunk, gymnasium" 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
"$PY" -c "import torch, numpy, h5py, safetensors" || {
  echo "missing Python packages: check.py needs torch, numpy, h5py and safetensors" >&2
  exit 2
}
if [ "$SMOKE" = 1 ]; then  # toy sizes on the CPU, even where a GPU is visible
  DEVICE=cpu LIMIT=${LIMIT:-180}
else  # the section caps add up to 430 s; the limit is the last resort (SIGTERM: report kept)
  DEVICE=${DEVICE:-auto} LIMIT=${LIMIT:-470}
fi
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
torch.cuda.device_count(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"
set +e
timeout -k 20 -s TERM "$LIMIT" "$PY" benchmarks/gpu/check.py --device "$DEVICE" --out "$OUT" \
  "$@" 2>&1 | tee "$OUT/check.log"
rc=${PIPESTATUS[0]}
set -e
[ -f "$OUT/report.md" ] && cat "$OUT/report.md"
echo "exit $rc; report: $OUT/report.md, $OUT/report.json"
exit "$rc"
