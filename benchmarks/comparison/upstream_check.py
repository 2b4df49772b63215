"""lewm's import/export of the authors' checkpoint format against their own code, at the paper
size (18,034,478 parameters) and the small fixture size, under transformers 5.x and 4.x names.

    python benchmarks/comparison/upstream_check.py --peer-python $PEER_PYTHON \\
        [--transformers4 DIR] [--sizes paper small]

For each size and transformers version:
  import  their code builds a LeWM (Hydra instantiate), moves its weights off the init, saves it
          with their ``save_pretrained`` and records its outputs on seeded inputs
          (upstream_reference.py make); lewm imports the folder (``import_upstream``) and computes
          the same outputs (``reference_outputs``): encoder latents, action embeddings, predictor
          output, rollout, CEM cost per candidate.
  export  lewm's paper/small model (seeded, weights moved off the init) is written with
          ``export_upstream`` under that version's key names; their ``load_pretrained`` loads it
          (upstream_reference.py run) and computes the outputs for the same inputs.
Prints one JSON record: max |diff| / max(1, max |value|) per output; exit code 1 above --tol.

``--transformers4 DIR``: a folder holding transformers 4.x (e.g. ``pip install --target DIR
--no-deps transformers==4.57.1 "tokenizers<0.23" "huggingface_hub<1" requests urllib3 idna
charset_normalizer certifi``), put first on the peer's PYTHONPATH.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/
from _shared import perturb  # noqa: E402

from lewm.models.upstream import (
    compare_outputs,
    export_upstream,
    import_upstream,
    parse_upstream_config,
    reference_outputs,
)

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "upstream_reference.py"


def peer(python: str, args: list[str], pythonpath: str | None) -> dict:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, env.get("PYTHONPATH")]))
    r = subprocess.run([python, str(REFERENCE), *args], capture_output=True, text=True, env=env)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode or not lines:
        raise SystemExit(f"upstream_reference.py failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return json.loads(lines[-1])


def check(a: argparse.Namespace, size: str, version: str, tmp: Path) -> dict:
    path = a.transformers4 if version == "4" else None
    naming = "v4" if version == "4" else "v5"
    rec: dict = {"size": size}
    theirs_dir = tmp / f"{size}_{version}"
    t = time.perf_counter()
    made = peer(
        a.peer_python, ["make", "--size", size, "--seed", str(a.seed), str(theirs_dir)], path
    )
    rec["transformers"] = made["transformers"]
    rec["params"] = made["params"]
    ref = torch.load(theirs_dir / "reference.pt", weights_only=True)
    model = import_upstream(theirs_dir)
    rec["vit_key_names"] = model.metadata["imported_from"]["vit_key_names"]
    rec["import"] = compare_outputs(reference_outputs(model, ref["inputs"]), ref["outputs"])

    # export: a lewm model of the same size, run by their load_pretrained
    cfg = parse_upstream_config(json.loads((theirs_dir / "config.json").read_text())).config
    torch.manual_seed(a.seed + 7)
    ours = type(model)(cfg)
    perturb(ours, a.seed + 7)
    ours.eval()
    out_dir = export_upstream(ours, tmp / f"export_{size}_{version}", vit_naming=naming)
    inputs = theirs_dir / "reference.pt"
    result = tmp / f"their_outputs_{size}_{version}.pt"
    peer(a.peer_python, ["run", str(out_dir), str(inputs), str(result)], path)
    theirs = torch.load(result, weights_only=True)
    rec["export"] = compare_outputs(reference_outputs(ours, ref["inputs"]), theirs)
    rec["seconds"] = round(time.perf_counter() - t, 1)
    rec["ok"] = max(*rec["import"].values(), *rec["export"].values()) <= a.tol
    return rec


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--peer-python", default=os.environ.get("LEWM_PEER_PYTHON"))
    p.add_argument("--transformers4", default=None, help="folder holding transformers 4.x")
    p.add_argument("--sizes", nargs="+", default=["paper", "small"], choices=["paper", "small"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tol", type=float, default=1e-5)
    a = p.parse_args()
    if not a.peer_python:
        raise SystemExit("give --peer-python (or LEWM_PEER_PYTHON): see benchmarks/README.md")
    versions = ["5"] + (["4"] if a.transformers4 else [])
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in a.sizes:
            for version in versions:
                runs.append(check(a, size, version, Path(tmp)))
    report = {"bench": "upstream_check", "tol": a.tol, "runs": runs}
    report["ok"] = all(r["ok"] for r in runs)
    print(json.dumps(report))
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
