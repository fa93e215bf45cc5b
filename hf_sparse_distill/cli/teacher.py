"""`hf-sparse-distill teacher RECIPE`: fine-tune the recipe's `teacher.training.base_model` into its teacher (written
where `teacher.model` points), for users who have no fine-tuned classifier to distil."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from ._recipe_args import add_recipe_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the command's parser."""
    parser = subparsers.add_parser(
        "teacher", help="fine-tune a base encoder into the recipe's teacher (transformers Trainer)"
    )
    add_recipe_arguments(parser)
    parser.add_argument("--base-model", help="base encoder (Hub id or folder); default: teacher.training.base_model")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a model already in teacher.model that this recipe did not make",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Fine-tune (or reuse) the teacher; print what was done as JSON."""
    from ..distillation import load_recipe
    from ..distillation.teacher_training import train_teacher

    overrides = list(args.overrides)
    if args.base_model:
        overrides.append(f"teacher.training.base_model={json.dumps(args.base_model)}")
    result = train_teacher(load_recipe(args.recipe, overrides), overwrite=args.overwrite)
    print(json.dumps(asdict(result), indent=2))
    return 0
