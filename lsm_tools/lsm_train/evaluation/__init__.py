"""Evaluation of LSM models: held-out quality (lsm-eval), metric scale (lsm-eval-metric) and
the semantic map (lsm-eval-map)."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional


def log_to_stderr(message: str) -> None:
    """Progress lines of the evaluation CLIs (stdout carries the report)."""
    print(message, file=sys.stderr, flush=True)


def print_and_save(summary: dict, report: str, out: Optional[Path], filename: str) -> None:
    """Print ``report``; with ``out``, write ``summary`` as JSON to ``out/filename``."""
    print(report)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / filename).write_text(json.dumps(summary, indent=2))
