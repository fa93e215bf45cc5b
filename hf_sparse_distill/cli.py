"""`hf-sparse-distill` command line: `vocab`, `label`, `train`, `evaluate`, `distill`, `push`.

Every command that trains or labels runs as it is on one CPU or GPU, and under `accelerate launch` on several
processes (see the README for the CPU multi-process invocation).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

import numpy as np

from .data import load_source
from .distill import STAGES, Distiller, results_table
from .distributed import process_state
from .encoding import encode_texts
from .evaluate import classification_metrics, predict_logits
from .modeling_sparse_dan import SparseDANForSequenceClassification
from .recipe import DatasetSource, load_recipe
from .tokenization_sparse_dan import SparseDANTokenizer

logger = logging.getLogger("hf_sparse_distill")


def _add_recipe(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="YAML recipe (see recipes/)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
        help="override a recipe field, e.g. --set kd.epochs=2 (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-sparse-distill",
        description="Distil a fine-tuned transformer classifier into a sparse n-gram DAN student.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_recipe(commands.add_parser("vocab", help="read the data and build the n-gram vocabulary / tokenizer"))
    _add_recipe(commands.add_parser("label", help="compute (or resume) the teacher's logits on the KD corpus"))
    train = commands.add_parser("train", help="run one training stage")
    _add_recipe(train)
    train.add_argument("--stage", choices=STAGES, default="kd")
    train.add_argument("--no-resume", action="store_true", help="ignore checkpoints of an earlier run")
    distill = commands.add_parser("distill", help="all steps of a recipe: data, vocab, labels, KD, fine-tuning")
    _add_recipe(distill)
    distill.add_argument("--stages", help=f"comma-separated subset of {','.join(STAGES)} (default: the enabled ones)")
    distill.add_argument("--no-push", action="store_true", help="do not push even if the recipe names hub_repo_id")
    evaluate = commands.add_parser("evaluate", help="accuracy / macro-F1 of a saved student on a labeled split")
    evaluate.add_argument("model", help="student folder or Hub id")
    evaluate.add_argument("--data", required=True, help="labeled data: local file or Hub dataset id")
    evaluate.add_argument("--split", default="validation", help="split of a Hub dataset")
    evaluate.add_argument("--name", help="config name of a Hub dataset")
    evaluate.add_argument("--text-column", default="text")
    evaluate.add_argument("--label-column", default="label")
    evaluate.add_argument("--batch-size", type=int, default=1024)
    push = commands.add_parser("push", help="publish a student folder to the Hub in one commit, with a model card")
    push.add_argument("model_dir")
    push.add_argument("repo_id")
    push.add_argument("--private", action="store_true")
    push.add_argument("--revision", help="branch to push to")
    push.add_argument("--commit-message", default="Upload sparse DAN student")
    push.add_argument("--token", help="Hub token (default: HF_TOKEN or the stored login)")
    push.add_argument("--fp16-embeddings", action="store_true", help="store the embedding table in float16")
    push.add_argument("--results", help="results.json of the distillation run (default: next to the model)")
    push.add_argument("--dry-run", metavar="DIR", help="write the folder that would be uploaded to DIR; upload nothing")
    return parser


def _evaluate(args: argparse.Namespace) -> dict:
    model = SparseDANForSequenceClassification.from_pretrained(args.model)
    tokenizer = SparseDANTokenizer.from_pretrained(args.model)
    source = DatasetSource(
        path=args.data, name=args.name, split=args.split, text_column=args.text_column, label_column=args.label_column
    )
    data = load_source(source, model.config.label2id)
    if data.labels is None:
        raise ValueError(f"{args.data} has no label column {args.label_column!r}")
    encoded = encode_texts(tokenizer, data.texts, model.config.max_ngrams)
    logits = predict_logits(model, encoded, args.batch_size)
    return classification_metrics(logits, np.asarray(data.labels), model.config.id2label)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    state = process_state()
    logging.basicConfig(
        level=logging.INFO if state.is_main_process else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "evaluate":
        print(json.dumps(_evaluate(args), indent=2))
        return 0
    if args.command == "push":
        from .hub import push_student, save_for_hub

        if args.dry_run:
            save_for_hub(args.model_dir, args.dry_run, args.repo_id, args.results, args.fp16_embeddings)
            print(args.dry_run)
            return 0
        url = push_student(
            args.model_dir, args.repo_id, private=args.private, revision=args.revision, token=args.token,
            commit_message=args.commit_message, fp16_embeddings=args.fp16_embeddings, results_path=args.results,
        )
        print(url)
        return 0
    recipe = load_recipe(args.recipe, args.overrides)
    distiller = Distiller(recipe, state)
    if args.command == "vocab":
        tokenizer = distiller.tokenizer()
        if state.is_main_process:
            print(json.dumps({"vocab_size": tokenizer.vocab_size, **distiller.data().corpus.report}, indent=2))
    elif args.command == "label":
        logits = distiller.teacher_logits("kd")
        teacher = distiller.teacher_metrics()
        if state.is_main_process:
            print(json.dumps({"kd_rows": int(logits.shape[0]), "teacher_dev": teacher}, indent=2))
    elif args.command == "train":
        summary = distiller.train(args.stage, resume=not args.no_resume)
        if state.is_main_process:
            print(json.dumps(summary["best_metrics"], indent=2))
    else:
        stages = tuple(args.stages.split(",")) if args.stages else None
        results = distiller.run(stages)
        if state.is_main_process:
            print(results_table(results))
            print(f"\nstudent: {os.path.join(recipe.output_dir, 'student')} ({results['retention']:.1%} of teacher)")
            print(f"timings (s): {results['timings_s']}")
            if recipe.hub_repo_id and not args.no_push:
                from .hub import push_student

                student = os.path.join(recipe.output_dir, "student")
                print(push_student(student, recipe.hub_repo_id, private=recipe.hub_private))
    return 0


def run() -> None:
    """Console-script entry point. Multi-process runs end with a hard exit once everything is written: gloo's
    thread teardown at interpreter exit sometimes aborts a run whose work is all done."""
    status = main()
    state = process_state()
    if state.num_processes > 1:
        state.wait_for_everyone()
        state.destroy_process_group()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


if __name__ == "__main__":
    run()
