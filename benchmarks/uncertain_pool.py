"""Active distillation, measured as transfer text: the texts of an unlabeled source that a recipe leaves unread
(past its `max_rows`), scored by the recipe's KD student; the `--keep` it is least sure of (smallest gap between
its two most likely labels) and as many drawn at random are written as JSON Lines, to be added to the recipe's
unlabeled sources by the `benchmarks/variants.py` points that name them (same count, same labelling cost up to the
texts' lengths: which half of a labelling budget pays more).

    hf-sparse-distill distill sst2_shared --stages kd          # the scoring student (and the teacher's cache)
    python benchmarks/uncertain_pool.py sst2_shared --source 3 --keep 150000 --out runs/sst2_pool
    python benchmarks/variants.py --recipe sst2_shared --seeds 0,1 --work runs/variants_sst2_pool \\
        --out benchmarks/variants_sst2_pool --only "recipe as shipped,150k least-sure IMDB sentences,150k random IMDB sentences"

Writes `uncertain.jsonl` and `random.jsonl` (texts only; duplicates within the pool removed first) and prints the
mean gap of each. A pool text equal to one the recipe already reads (another source, or the same text earlier in
the source) is dropped by the run's de-duplication, so each set adds a little under `--keep` texts (148,384 and
147,961 of 150,000 for SST-2); one equal to a selection or dev text is held out like any unlabeled text.
Single-label students only (the gap between the two most likely labels).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hf_sparse_distill.distillation import load_recipe
from hf_sparse_distill.distillation.data import TEXT, load_unlabeled


def unread_texts(recipe_name: str, source_index: int) -> list[str]:
    """The distinct texts of the recipe's unlabeled source `source_index` past its `max_rows`."""
    source = load_recipe(recipe_name).data.unlabeled[source_index]
    if source.max_rows is None:
        raise SystemExit(f"unlabeled source {source_index} ({source.path}) has no max_rows: the recipe reads all of it")
    everything = load_unlabeled(dataclasses.replace(source, max_rows=None))
    return list(dict.fromkeys(everything.select(range(source.max_rows, len(everything)))[TEXT]))


@torch.inference_mode()
def margins(student: str, texts: list[str], batch_size: int = 4096) -> np.ndarray:
    """For each text, the student's top probability minus its second."""
    tokenizer = AutoTokenizer.from_pretrained(student)
    model = AutoModelForSequenceClassification.from_pretrained(student).eval()
    if model.config.problem_type not in (None, "single_label_classification"):
        raise SystemExit(f"{student} is a {model.config.problem_type} model; the gap needs single-label scores")
    out = []
    for start in tqdm(range(0, len(texts), batch_size), desc="scoring the pool"):
        batch = tokenizer(texts[start : start + batch_size], padding=True, return_tensors="pt")
        top = model(**batch).logits.softmax(-1).topk(2, dim=-1).values
        out.append((top[:, 0] - top[:, 1]).numpy())
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", help="a recipe file or the name of a shipped recipe")
    parser.add_argument("--source", type=int, required=True, help="index of the unlabeled source to read further")
    parser.add_argument("--keep", type=int, default=150_000)
    parser.add_argument("--student", help="default: the recipe run's KD student (output_dir/kd/best)")
    parser.add_argument("--out", default="runs/pool")
    parser.add_argument("--seed", type=int, default=0, help="for the random draw")
    args = parser.parse_args()
    student = args.student or str(Path(load_recipe(args.recipe).output_dir) / "kd" / "best")
    pool = unread_texts(args.recipe, args.source)
    if len(pool) < args.keep:
        raise SystemExit(f"the pool holds {len(pool):,} texts, fewer than --keep {args.keep:,}")
    gap = margins(student, pool)
    chosen = {
        "uncertain": np.argsort(gap)[: args.keep],
        "random": np.random.default_rng(args.seed).choice(len(pool), args.keep, replace=False),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in chosen.items():
        with open(out / f"{name}.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps({"text": pool[i]}) + "\n" for i in rows)
        words = np.mean([len(pool[i].split()) for i in rows])
        print(f"{name}: {len(rows):,} of {len(pool):,} texts, mean gap {gap[rows].mean():.3f}, {words:.1f} words")


if __name__ == "__main__":
    main()
