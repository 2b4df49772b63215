"""Subcommands that run whole jobs: collect, eval, demo."""

from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the job subcommands on the main parser."""
