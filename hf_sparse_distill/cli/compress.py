"""`hf-sparse-distill compress MODEL_DIR OUT_DIR`: a smaller student (fewer n-grams, table in int8 or float16)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the command's parser."""
    from ..compression import DTYPES, RANKINGS

    parser = subparsers.add_parser("compress", help="prune n-grams and quantize the table of a student")
    parser.add_argument("model_dir", help="a saved student")
    parser.add_argument("out_dir", help="where the compressed student goes")
    parser.add_argument("--keep-ngrams", type=int, help="how many n-grams to keep (default: all)")
    parser.add_argument("--max-mb", type=float, help="keep the most n-grams that fit in this many MB")
    parser.add_argument("--dtype", choices=DTYPES, default="int8", help="storage of the table (default: int8)")
    parser.add_argument("--rank-by", choices=RANKINGS, default="frequency", help="which n-grams to keep first")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Compress; print the report as JSON."""
    from ..compression import compress

    report = compress(args.model_dir, args.out_dir, args.keep_ngrams, args.max_mb, args.dtype, args.rank_by)
    print(json.dumps(asdict(report), indent=2))
    return 0
