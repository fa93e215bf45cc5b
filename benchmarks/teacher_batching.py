"""Teacher labelling speed: batches of a fixed number of texts (`teacher.batch_size`) against batches filled up to a
token budget (`teacher.batch_tokens`: many short texts in one call, few long ones), on a recipe's own KD corpus.

    python benchmarks/teacher_batching.py --recipe sst2_shared --budgets 1024,2048,4096

Reads a random sample of the recipe's KD corpus (run `hf-sparse-distill vocab RECIPE` first), splits it into the
labelling chunks the package labels (`teacher.chunk_size`; `Teacher.predict` sorts each by length) and times in
turns (`measure.interleaved_throughput`: medians over rounds, so the drift of a shared machine's speed favours no
scheme) `Teacher.predict` with `teacher.batch_size` texts per call and with each budget B as
`batch_tokens`. Writes `--out`/TEACHER_BATCHING.md (and .json): the calls and padded tokens of each scheme and the
largest logit difference from the first (bfloat16 results depend a little on the batch they are computed in).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from transformers import AutoTokenizer

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from measure import interleaved_throughput  # noqa: E402

from hf_sparse_distill.distillation.recipe import load_recipe  # noqa: E402
from hf_sparse_distill.distillation.teacher import Teacher, call_padding  # noqa: E402
from hf_sparse_distill.speed import machine_description  # noqa: E402


def corpus_sample(corpus_folder: Path, count: int, seed: int) -> list[str]:
    """`count` texts drawn without replacement from the Arrow shards of a KD corpus folder."""
    from datasets import Dataset, concatenate_datasets

    shards = sorted((corpus_folder / "shards").glob("*.arrow"))
    if not shards:
        raise SystemExit(f"no KD corpus in {corpus_folder}: run `hf-sparse-distill vocab RECIPE` first")
    corpus = concatenate_datasets([Dataset.from_file(str(path)) for path in shards])
    rows = np.random.default_rng(seed).choice(len(corpus), size=min(count, len(corpus)), replace=False)
    return corpus.select(np.sort(rows))["text"]


def padded_tokens(lengths: np.ndarray, batches: list[tuple[np.ndarray, int]], max_length: int) -> int:
    """Tokens the calls read, padding included, as `Teacher.predict` pads them (`call_padding`)."""
    total = 0
    for rows, full in batches:
        longest = int(lengths[rows].max())
        filler, tokens = call_padding(len(rows), full, longest, max_length)
        total += (len(rows) + filler) * (tokens or longest)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", required=True, help="a recipe whose KD corpus has been written")
    parser.add_argument("--budgets", default="1024,2048,4096", help="padded tokens per call, comma-separated")
    parser.add_argument("--texts", type=int, default=8192, help="texts sampled from the KD corpus")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(HERE), help="folder of TEACHER_BATCHING.md and teacher_batching.json")
    args = parser.parse_args()
    recipe = load_recipe(args.recipe)
    texts = corpus_sample(Path(recipe.output_dir) / "kd_corpus", args.texts, args.seed)
    fixed = replace(recipe.teacher, batch_tokens=None)
    teachers = {f"{fixed.batch_size} texts per call": Teacher(fixed)}
    for budget in args.budgets.split(","):
        teachers[f"{budget} padded tokens per call"] = Teacher(replace(fixed, batch_tokens=int(budget)))
    base = next(iter(teachers))
    chunk = fixed.chunk_size
    chunks = [texts[start : start + chunk] for start in range(0, len(texts), chunk)]
    reference = np.concatenate([teachers[base].predict(part) for part in chunks])
    tokenizer = AutoTokenizer.from_pretrained(fixed.model, revision=fixed.revision, **fixed.tokenizer_settings())
    max_length = min(fixed.max_length, tokenizer.model_max_length)  # as `Teacher.predict` truncates
    lengths = [np.array([len(ids) for ids in tokenizer(part, truncation=True, max_length=max_length)["input_ids"]]) for part in chunks]  # fmt: skip
    speeds = interleaved_throughput({name: t.predict for name, t in teachers.items()}, texts, chunk, rounds=args.rounds)
    points = []
    for name, teacher in teachers.items():
        logits = np.concatenate([teacher.predict(part) for part in chunks])
        plans = [teacher.plan_batches(part) for part in lengths]
        points.append({
            "scheme": name, "batch_tokens": teacher.config.batch_tokens, "texts_per_s": speeds[name],
            "calls": sum(len(plan) for plan in plans),
            "padded_tokens_per_text": sum(map(padded_tokens, lengths, plans, [max_length] * len(plans))) / len(texts),
            "max_logit_difference": float(np.abs(logits - reference).max()),
        })  # fmt: skip
    command = " ".join(["python benchmarks/teacher_batching.py", *sys.argv[1:]])
    report = {
        "recipe": args.recipe, "texts": len(texts), "mean_tokens": float(np.mean(np.concatenate(lengths))),
        "chunk_size": chunk, "rounds": args.rounds, "seed": args.seed, "command": command,
        "machine": machine_description(), "date": datetime.date.today().isoformat(), "points": points,
    }  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "teacher_batching.json").write_text(json.dumps(report, indent=2))
    lines = [
        "# Teacher calls: a fixed number of texts or a token budget",
        "",
        f"Generated {report['date']} by `{command}` on: {report['machine']}.",
        f"{len(texts):,} texts drawn with seed {args.seed} from the KD corpus of `{recipe.output_dir}` (mean "
        f"{report['mean_tokens']:.1f} tokens), teacher `{fixed.model}` in {fixed.dtype}, up to {max_length} tokens, "
        f"labelled in chunks of {chunk} as the cache does; median texts/s of {args.rounds} rounds in turns.",
        "",
        f"| scheme | texts/s | vs {base} | calls | padded tokens per text | max logit difference |",
        "|---|---|---|---|---|---|",
        *(f"| {p['scheme']} | {p['texts_per_s']:,.0f} | {p['texts_per_s'] / points[0]['texts_per_s']:.2f}× | "
          f"{p['calls']:,} | {p['padded_tokens_per_text']:.1f} | {p['max_logit_difference']:.1e} |" for p in points),
    ]  # fmt: skip
    (out / "TEACHER_BATCHING.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
