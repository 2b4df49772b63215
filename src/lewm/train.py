"""``python -m lewm.train ARGS`` = ``lewm train --distributed ARGS``: the torchrun entry point.

    torchrun --nproc-per-node 4 -m lewm.train --data pusht.h5 --out runs/pusht --preset paper

Every worker runs this module; torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT) says which share of each batch it trains on. See lewm.training.distributed.
"""

from __future__ import annotations

import sys

from lewm.cli.main import main as cli_main


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    return cli_main(["train", "--distributed", *[a for a in args if a != "--distributed"]])


if __name__ == "__main__":
    sys.exit(main())
