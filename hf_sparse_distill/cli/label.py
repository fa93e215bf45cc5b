"""`hf-sparse-distill label RECIPE`: compute (or resume) the teacher's logits on the KD corpus and dev."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from ._recipe_args import add_recipe_arguments, distiller


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the command's parser."""
    parser = subparsers.add_parser("label", help="compute (or resume) the teacher's logits on the KD corpus")
    add_recipe_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Label the KD corpus; print its size and the teacher's dev metrics."""
    steps = distiller(args)
    logits = steps.teacher_logits("kd")
    metrics = {split: asdict(steps.teacher_metrics(split)) for split in ("select", "dev")}
    if steps.state.is_main_process:
        print(
            json.dumps(
                {"kd_rows": int(logits.shape[0]), "teacher_select": metrics["select"], "teacher_dev": metrics["dev"]},
                indent=2,
            )
        )
    return 0
