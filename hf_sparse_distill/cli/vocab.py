"""`hf-sparse-distill vocab RECIPE`: read the data and build the n-gram vocabulary (the student's tokenizer)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from ._recipe_args import add_recipe_arguments, distiller


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the command's parser."""
    parser = subparsers.add_parser("vocab", help="read the data and build the n-gram vocabulary / tokenizer")
    add_recipe_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build (or reuse) the tokenizer; print its size and the KD corpus report."""
    steps = distiller(args)
    tokenizer = steps.tokenizer()
    if steps.state.is_main_process:
        print(json.dumps({"vocab_size": tokenizer.vocab_size, **asdict(steps.data().corpus.report)}, indent=2))
    return 0
