"""`hf-sparse-distill train RECIPE --stage kd|finetune|scratch`: run (or resume) one training stage."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from ..results import STAGES, Stage
from ._recipe_args import add_recipe_arguments, distiller


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the command's parser."""
    parser = subparsers.add_parser("train", help="run one training stage")
    add_recipe_arguments(parser)
    parser.add_argument("--stage", choices=[s.value for s in STAGES], default=Stage.KD.value)
    parser.add_argument("--no-resume", action="store_true", help="ignore checkpoints of an earlier run")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train the stage; print the metrics of its kept checkpoint."""
    steps = distiller(args)
    summary = steps.train(args.stage, resume=not args.no_resume)
    if steps.state.is_main_process:
        print(json.dumps(asdict(summary.best_metrics) if summary.best_metrics else {}, indent=2))
    return 0
