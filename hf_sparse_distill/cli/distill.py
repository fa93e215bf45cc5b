"""`hf-sparse-distill distill RECIPE`: every step of a recipe (data, vocabulary, teacher labels, training stages),
then the results table; pushes the student if the recipe names `hub_repo_id`."""

from __future__ import annotations

import argparse

from ..results import STAGES
from ._recipe_args import add_recipe_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the command's parser."""
    parser = subparsers.add_parser("distill", help="all steps of a recipe: data, vocab, labels, KD, fine-tuning")
    add_recipe_arguments(parser)
    names = ",".join(s.value for s in STAGES)
    parser.add_argument("--stages", help=f"comma-separated subset of {names} (default: the enabled ones)")
    parser.add_argument("--no-push", action="store_true", help="do not push even if the recipe names hub_repo_id")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the recipe; print the results table, where the student is, and the timings."""
    from ..distillation import load_recipe, run_recipe
    from ..distillation.distributed import process_state

    recipe = load_recipe(args.recipe, args.overrides)
    stages = args.stages.split(",") if args.stages else None
    results = run_recipe(recipe, stages, push=not args.no_push)
    if process_state().is_main_process:
        print(results.table())
        print(f"\nstudent: {results.student_dir} ({results.retention:.1%} of teacher)")
        print(f"timings (s): {results.timings_s}")
    return 0
