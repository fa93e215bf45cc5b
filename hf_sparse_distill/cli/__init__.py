"""`hf-sparse-distill` command line: one module per command (`teacher`, `vocab`, `label`, `train`, `distill`,
`evaluate`, `calibrate`, `push`, `compress`), each adding its parser and the function that runs it.

Every command that trains or labels runs as it is on one CPU or GPU, and under `accelerate launch` on several
processes (see the README for the CPU multi-process invocation).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from ..extras import MissingExtraError
from . import calibrate, compress, distill, evaluate, label, push, teacher, train, vocab

COMMANDS = (teacher, vocab, label, train, distill, evaluate, calibrate, push, compress)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command."""
    parser = argparse.ArgumentParser(
        prog="hf-sparse-distill",
        description="Distil a fine-tuned transformer classifier into a sparse n-gram DAN student.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the command; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if _is_main_process() else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except MissingExtraError as error:
        print(f"hf-sparse-distill {args.command}: {error}", file=sys.stderr)
        return 2


def run() -> None:
    """Console-script entry point. Multi-process runs end with a hard exit once everything is written: gloo's
    thread teardown at interpreter exit sometimes aborts a run whose work is all done."""
    status = main()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from ..distillation.distributed import process_state

        state = process_state()
        state.wait_for_everyone()
        state.destroy_process_group()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
