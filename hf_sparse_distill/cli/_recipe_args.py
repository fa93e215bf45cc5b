"""Arguments shared by the commands that run a recipe."""

from __future__ import annotations

import argparse


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """The recipe (a YAML path or a shipped recipe's name) and `--set` overrides."""
    parser.add_argument("recipe", help="YAML recipe: a path, or the name of a shipped recipe (e.g. sst2_shared)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override a recipe field, e.g. --set kd.epochs=2 (repeatable)",
    )


def distiller(args: argparse.Namespace):
    """The `Distiller` of the command's recipe (with its overrides)."""
    from ..distillation import Distiller, load_recipe

    return Distiller(load_recipe(args.recipe, args.overrides))
