"""The n-gram tokenizer against an earlier revision of itself: same ids, and texts per second in turns.

    python benchmarks/tokenizer_speed.py --student runs/sst2_shared_full/student --baseline 283ece8

Loads `tokenization_sparse_dan.py` as it was at `--baseline` (from git) beside the current one, builds both matchers
on the student's vocabulary, checks that they give identical ids on SST-2 dev and on long IMDB reviews, then times
them in turns (each round runs both over all texts in batches of 256; medians), so that the drift of a shared
machine's speed does not favour either. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from measure import interleaved_throughput, long_reviews, sst2_split  # noqa: E402

TOKENIZER_FILE = "hf_sparse_distill/models/sparse_dan/tokenization_sparse_dan.py"


def baseline_module(revision: str, folder: str):
    """The tokenizer module as it was at `revision`, imported from a copy under `folder`."""
    source = subprocess.run(
        ["git", "show", f"{revision}:{TOKENIZER_FILE}"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    path = Path(folder) / "baseline_tokenization.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("baseline_tokenization", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", required=True, help="a saved student folder (its vocabulary is used)")
    parser.add_argument("--baseline", required=True, help="git revision of the tokenizer to compare with")
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--long-texts", type=int, default=256)
    args = parser.parse_args()
    from hf_sparse_distill import SparseDANTokenizer

    tokenizer = SparseDANTokenizer.from_pretrained(args.student)
    with tempfile.TemporaryDirectory() as folder:
        old = baseline_module(args.baseline, folder).NgramMatcher(
            tokenizer.vocab,
            tokenizer.ngram_range,
            tokenizer.lowercase,
            tokenizer.token_pattern,
            skip_ids=tokenizer.all_special_ids,
        )
    new = tokenizer.matcher
    print(f"| texts | baseline {args.baseline} (texts/s) | current (texts/s) | speed-up |")
    print("|---|---|---|---|")
    for name, texts in (
        ("SST-2 dev", sst2_split("dev")[0]),
        ("IMDB reviews, 300 words", long_reviews(args.long_texts)),
    ):
        for start in range(0, len(texts), 256):
            batch = texts[start : start + 256]
            (old_ids, old_lengths), (new_ids, new_lengths) = old.encode(batch), new.encode(batch)
            if not (np.array_equal(old_ids, new_ids) and np.array_equal(old_lengths, new_lengths)):
                raise SystemExit(f"the two tokenizers disagree on {name}, batch at {start}")
        speeds = interleaved_throughput({"old": old.encode, "new": new.encode}, texts, 256, rounds=args.rounds)
        print(f"| {name} | {speeds['old']:,.0f} | {speeds['new']:,.0f} | {speeds['new'] / speeds['old']:.2f}× |")


if __name__ == "__main__":
    main()
