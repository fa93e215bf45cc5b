"""What generalises: variants of a recipe's KD stage, each chosen on the selection split and measured on the report
split (dev), over several seeds.

    python benchmarks/variants.py                                   # sst2_shared, 11 variants x 2 seeds: ~2 h
    python benchmarks/variants.py --only "table max-norm 5"         # one variant; the others' points are kept
    python benchmarks/variants.py --smoke --work /tmp/v --out /tmp/v   # tiny: checks that the script runs
    python benchmarks/variants.py --recipe sst2_shared_full --work runs/variants_full --out benchmarks/variants_full \
        --only "recipe as shipped,ReLU head,KD for 5 epochs"           # the full recipe: ~13 to 27 min a point
    python benchmarks/variants.py --recipe trec_shared --work runs/variants_trec --out benchmarks/variants_trec \
        --only "recipe as shipped,without the reviews' questions"   # a recipe's own transfer-text variants
    python benchmarks/variants.py --recipe ag_news_shared --work runs/variants_ag_news \
        --out benchmarks/variants_ag_news --only "..."              # AG News: the points its VARIANTS.md names

Recipes whose teacher is fine-tuned from a base encoder (TREC, AG News, MRPC) need `HFSD_BASE_ENCODER` set as
benchmarks/tasks.py sets it (`HFSD_BASE_ENCODER=runs/base/all-MiniLM-L6-v2`), or their teacher is fine-tuned again,
from the Hub's copy.

Each variant is the recipe with `--set` overrides, distilled with `--stages kd` (the stage both SST-2 recipes keep)
into its own folder; the teacher's logits come from the recipe's cache, and the tokenizer is copied from the
recipe's own run when there is one (same corpus, same vocabulary), so a point costs its training (and the labelling
of the texts a variant of the data adds). `--only` keeps the other points already in `--out`. The checkpoint of
each run is chosen on the selection split; dev is measured once at the end. Writes `variants.json` and `VARIANTS.md`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import statistics
import time
from pathlib import Path

import yaml

from hf_sparse_distill.distillation.recipe import recipe_path

HERE = Path(__file__).resolve().parent
VARIANTS = {
    "recipe as shipped": [],
    "feature dropout 0.1": ["student.feature_dropout=0.1"],
    "temperature 2": ["kd.temperature=2"],
    "gold labels mixed in (alpha 0.7)": ["kd.alpha=0.7"],
    "ReLU head": ["student.activation=relu"],
    "table weight decay 0.01": ["kd.embedding_weight_decay=0.01"],
    "table max-norm 5": ["kd.embedding_max_norm=5"],
    "weight average of the last 4 evaluations": ["kd.average_last_evaluations=4"],
    "KD for 5 epochs": ["kd.epochs=5"],
    "table and head 512 wide": ["student.embed_dim=512", "student.hidden_dims=[512]"],
    "table from the teacher": ["kd.embedding_init=teacher"],
    "table from the teacher at std 0.05": ["kd.embedding_init=teacher", "student.embedding_init_std=0.05"],
}


def with_unlabeled(recipe: str, path: str) -> list[str]:
    """The override that adds the texts of the JSON Lines file `path` to the shipped recipe's unlabeled sources."""
    sources = yaml.safe_load(recipe_path(recipe).read_text())["data"]["unlabeled"]
    return ["data.unlabeled=" + json.dumps([*sources, {"path": path, "label_column": None}])]


# variants of one recipe's own data and vocabulary, measured with --recipe NAME only
RECIPE_VARIANTS = {
    "sst2_shared": {  # the files are written by benchmarks/uncertain_pool.py (active distillation)
        "150k least-sure IMDB sentences": with_unlabeled("sst2_shared", "runs/sst2_pool/uncertain.jsonl"),
        "150k random IMDB sentences": with_unlabeled("sst2_shared", "runs/sst2_pool/random.jsonl"),
    },
    "trec_shared": {
        "without the reviews' questions": ["data.unlabeled=[]"],
        "words replaced (p 0.2)": ["augment.replace_prob=0.2"],
        "words replaced (p 0.4)": ["augment.replace_prob=0.4"],
        "200 variants per question": ["augment.copies_per_example=200"],
        "KD for 8 epochs": ["kd.epochs=8"],
        "alpha 0.7 + temperature 2 + 512 wide": [
            "kd.alpha=0.7",
            "kd.temperature=2",
            "student.embed_dim=512",
            "student.hidden_dims=[512]",
        ],
        "replacement widened by news words": [
            "augment.words_from=[{path: '${HFSD_SHARED:-../shared}/data/ag_news/train_subset.jsonl', label_column: null}]"
        ],
    },
    "ag_news_shared": {
        "16 variants per article": ["augment.copies_per_example=16"],
        "words and word pairs only": ["vocab.ngram_range=[1,2]"],
    },
    "mrpc_shared": {
        "words replaced (p 0.1)": ["augment.replace_prob=0.1"],
        "n-gram overlap in the head": ["student.pair_overlap=true"],
    },
    "rte_shared": {"n-gram overlap in the head": ["student.pair_overlap=true"]},
}


def run_variant(recipe_name: str, overrides: list[str], out_dir: Path, seed: int) -> dict:
    """Distil the KD stage of the variant (finished runs are reused) and read its selection and report accuracy."""
    from hf_sparse_distill.distillation import load_recipe, run_recipe

    own = load_recipe(recipe_name)
    settings = [f"output_dir={out_dir}", f"cache_dir={own.cache_path}", f"seed={seed}", "speed_seconds=0"]
    recipe = load_recipe(recipe_name, [*overrides, *settings])
    own_tokenizer = Path(own.output_dir) / "tokenizer"
    if own_tokenizer.exists() and not (out_dir / "tokenizer").exists():
        shutil.copytree(own_tokenizer, out_dir / "tokenizer")  # rebuilt anyway if its settings do not match
    start = time.perf_counter()
    results = run_recipe(recipe, ("kd",), push=False)
    shutil.rmtree(out_dir / "kd" / "checkpoints", ignore_errors=True)
    return {
        "selection_accuracy": results.selection["kd"].accuracy,
        "report_accuracy": results.stages["kd"].accuracy,
        "retention": results.stages["kd"].accuracy / results.teacher.metrics.accuracy,
        "teacher_report_accuracy": results.teacher.metrics.accuracy,
        "wall_s": round(time.perf_counter() - start, 1),
    }


def write_report(report: dict, out: Path) -> None:
    """The JSON and the markdown tables of the points measured so far."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "variants.json").write_text(json.dumps(report, indent=2))
    lines = [
        f"# Variants of the KD stage ({report['recipe']})",
        "",
        f"Generated {report['date']} by `{report['command']}` on: {report['machine']}.",
        "Each run keeps its best checkpoint on the recipe's selection split; its dev split (the report split) is "
        "measured once, at the end, and was not looked at by any choice. Seeds change the student's initialisation "
        "and the batch order.",
        "",
        "| variant | overrides | seed | selection accuracy | dev accuracy | % of teacher | minutes |",
        "|---|---|---|---|---|---|---|",
    ]
    for point in report["points"]:
        lines.append(
            f"| {point['variant']} | `{' '.join(point['overrides']) or '-'}` | {point['seed']} | "
            f"{100 * point['selection_accuracy']:.2f} | {100 * point['report_accuracy']:.2f} | "
            f"{100 * point['retention']:.1f}% | {point['wall_s'] / 60:.1f} |"
        )
    lines += [
        "",
        "Means over the seeds:",
        "",
        "| variant | seeds | selection accuracy | dev accuracy |",
        "|---|---|---|---|",
    ]
    for name in dict.fromkeys(p["variant"] for p in report["points"]):
        points = [p for p in report["points"] if p["variant"] == name]
        select = statistics.mean(100 * p["selection_accuracy"] for p in points)
        dev = statistics.mean(100 * p["report_accuracy"] for p in points)
        lines.append(f"| {name} | {len(points)} | {select:.2f} | {dev:.2f} |")
    (out / "VARIANTS.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="sst2_shared")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--work", default="runs/variants", help="where the run of each point goes")
    parser.add_argument("--out", default=str(HERE))
    parser.add_argument("--smoke", action="store_true", help="two variants, a few training steps")
    parser.add_argument(
        "--only", help="comma-separated variants to (re)measure for --seeds; every other point in --out is kept"
    )
    args = parser.parse_args()
    from hf_sparse_distill.speed import machine_description

    variants = dict(list(VARIANTS.items())[:2]) if args.smoke else {**VARIANTS, **RECIPE_VARIANTS.get(args.recipe, {})}
    chosen = set(variants) if args.only is None else set(args.only.split(","))
    if chosen - set(variants):
        raise SystemExit(f"unknown variants: {sorted(chosen - set(variants))}; known: {sorted(variants)}")
    extra = ["kd.max_steps=20", "vocab.size=20000"] if args.smoke else []
    command = f"python benchmarks/variants.py --recipe {args.recipe} --seeds {args.seeds}"
    if args.only is not None:
        command += f" --only {args.only!r}"
    report = {
        "recipe": args.recipe, "machine": machine_description(), "date": datetime.date.today().isoformat(),
        "command": command, "points": [],
    }  # fmt: skip
    seeds = [int(s) for s in args.seeds.split(",")]
    saved = Path(args.out) / "variants.json"
    if args.only is not None and saved.exists():
        kept = json.loads(saved.read_text())
        if kept["recipe"] != args.recipe:
            raise SystemExit(f"{saved} holds variants of {kept['recipe']}, not of {args.recipe} (give --recipe)")
        remeasured = {(variant, seed) for variant in chosen for seed in seeds}
        report["points"] = [p for p in kept["points"] if (p["variant"], p["seed"]) not in remeasured]
        report["command"] = f"{kept['command']}; {command}"
        for key in ("date", "machine"):  # the kept points were measured then and there
            report[key] = kept[key] if kept[key] == report[key] else f"{kept[key]}; {report[key]}"
    for seed in seeds:
        for i, (name, overrides) in enumerate(variants.items()):
            if name not in chosen:
                continue
            point = run_variant(args.recipe, overrides + extra, Path(args.work) / f"v{i}-seed{seed}", seed)
            report["points"].append({"variant": name, "overrides": overrides, "seed": seed, **point})
            print(json.dumps(report["points"][-1]), flush=True)
            write_report(report, Path(args.out))  # after every point: an interrupted run keeps what it measured


if __name__ == "__main__":
    main()
