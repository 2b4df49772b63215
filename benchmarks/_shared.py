"""Helpers the benchmark scripts share. Plain torch and the standard library only: scripts that
run with the python of the authors' virtual environment (no lewm there) import it too.

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/
    from _shared import perturb, run_lewm
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from typing import Any, TextIO

import torch


@torch.no_grad()
def perturb(model: torch.nn.Module, seed: int) -> None:
    """Move every weight and BatchNorm statistic of ``model`` away from its init, in place.

    Comparisons between implementations need this: AdaLN-zero gates start at zero and BatchNorm
    statistics at 0/1, so a freshly initialised model would not test how those are mapped.
    Integer buffers (BatchNorm's ``num_batches_tracked``) are set to 7.
    """
    g = torch.Generator().manual_seed(seed + 1)
    for name, t in model.state_dict().items():
        if not t.is_floating_point():
            t.fill_(7)
        elif name.endswith("running_var"):
            t.copy_(torch.rand(t.shape, generator=g) * 1.5 + 0.5)
        elif name.endswith("running_mean"):
            t.copy_(torch.randn(t.shape, generator=g) * 0.1)
        else:
            t.add_(torch.randn(t.shape, generator=g) * (0.03 if t.ndim >= 2 else 0.1))


def run_lewm(*args: str, echo: TextIO | None = None) -> dict[str, Any]:
    """Run ``lewm ARGS`` with this python; its JSON summary (stdout) plus ``_seconds``. Echoes
    the command line to ``echo`` (default stdout); a failure ends the script with lewm's stderr."""
    cmd = [sys.executable, "-m", "lewm.cli.main", *args]
    print("+ lewm " + shlex.join(args), file=echo or sys.stdout, flush=True)
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"lewm {args[0]} failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    res = json.loads(r.stdout[r.stdout.index("{") :])
    res["_seconds"] = round(time.perf_counter() - t, 1)
    return res
