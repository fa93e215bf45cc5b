"""`hf-sparse-distill compress MODEL_DIR OUT_DIR`: a smaller student (fewer n-grams, table in int8 or float16),
optionally refreshed by a short KD run on a recipe's teacher logits after pruning."""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import asdict
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the command's parser."""
    from ..compression import DTYPES, RANKINGS

    parser = subparsers.add_parser("compress", help="prune n-grams and quantize the table of a student")
    parser.add_argument("model_dir", help="a saved student")
    parser.add_argument("out_dir", help="where the compressed student goes")
    parser.add_argument("--keep-ngrams", type=int, help="how many n-grams to keep (default: all)")
    parser.add_argument("--max-mb", type=float, help="keep the most n-grams that fit in this many MB")
    parser.add_argument("--dtype", choices=DTYPES, default="int8", help="storage of the table (default: int8)")
    parser.add_argument(
        "--rank-by", choices=RANKINGS, default="norm", help="which n-grams to keep first (default: norm)"
    )
    parser.add_argument(
        "--fold-first-layer", action=argparse.BooleanOptionalAction, default=None,
        help="fold the head's first hidden layer into the table (default: wherever it is exact: mean or sum "
        "pooling, single texts)",
    )  # fmt: skip
    parser.add_argument(
        "--refresh", metavar="RECIPE", help="after pruning, train a few KD steps on this recipe's teacher logits"
    )
    parser.add_argument("--refresh-steps", type=int, default=500, help="KD steps of the refresh (default: 500)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
        help="override a field of the --refresh recipe (repeatable)",
    )  # fmt: skip
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Compress (prune, refresh if asked, quantize), measure the result on the source run's report split if the
    student comes from a `distill` run; print the report as JSON."""
    from ..compression import compress

    if args.refresh is None:
        report = compress(
            args.model_dir, args.out_dir, args.keep_ngrams, args.max_mb, args.dtype, args.rank_by,
            args.fold_first_layer,
        )  # fmt: skip
    else:
        report = _compress_with_refresh(args)
    report.evaluation = _evaluation(report, args.out_dir)
    report.save(args.out_dir)
    print(json.dumps(asdict(report), indent=2))
    return 0


def _compress_with_refresh(args: argparse.Namespace):
    from ..compression import compress
    from ..distillation import load_recipe
    from ..distillation.refresh import refresh_student

    recipe = load_recipe(args.refresh, args.overrides)
    with tempfile.TemporaryDirectory(prefix="hfsd-refresh-") as tmp:
        tmp = Path(tmp)
        keep = args.keep_ngrams
        if args.max_mb is not None:  # how many n-grams fit in the final dtype; the student trains in float32
            keep = compress(
                args.model_dir, tmp / "sized", keep, args.max_mb, args.dtype, args.rank_by, args.fold_first_layer
            ).kept_ngrams
        # the refresh trains the pruned student as distilled; the head is folded into the final copy
        pruned = compress(args.model_dir, tmp / "pruned", keep, None, "float32", args.rank_by, False)
        refreshed = refresh_student(tmp / "pruned", recipe, tmp / "refresh", args.refresh_steps)
        report = compress(
            refreshed.student_dir, args.out_dir, None, None, args.dtype, args.rank_by, args.fold_first_layer
        )
    report.source, report.original_ngrams, report.original_size_mb = (
        pruned.source, pruned.original_ngrams, pruned.original_size_mb
    )  # fmt: skip
    report.refresh = {
        "recipe": args.refresh, "steps": refreshed.steps, "kept": refreshed.kept,
        "selection_accuracy_before": refreshed.selection_accuracy_before,
        "selection_accuracy_after": refreshed.selection_accuracy_after,
    }  # fmt: skip
    return report


def _evaluation(report, out_dir: str) -> dict | None:
    """Accuracy of the compressed and the source student on the report split of the source's `distill` run (its
    recipe's dev split), with the teacher's from that run; None if the source is not part of a run."""
    from ..compression import source_run
    from ..distillation import load_recipe
    from ..distillation.evaluate import classification_metrics
    from ..models.sparse_dan import SparseDANForSequenceClassification, SparseDANTokenizer
    from ..results import DistillationResults
    from ._student_data import labeled_texts, student_logits

    run = source_run(report.source)
    if run is None:
        return None
    results = DistillationResults.load(run / "results.json")
    dev = load_recipe(str(run / "recipe.json")).data.dev
    examples, labels, model, tokenizer = labeled_texts(str(out_dir), dev)  # the split is read once, for both
    source = (
        SparseDANForSequenceClassification.from_pretrained(report.source).eval(),
        SparseDANTokenizer.from_pretrained(report.source),
    )
    accuracy = {}
    for key, (student, student_tokenizer) in (("accuracy", (model, tokenizer)), ("student_accuracy", source)):
        logits, _ = student_logits(student, student_tokenizer, examples)
        accuracy[key] = classification_metrics(logits, labels, student.config.id2label).accuracy
    return {
        "split": results.report_split, "num_examples": len(labels), **accuracy,
        "teacher_accuracy": results.teacher.metrics.accuracy,
    }  # fmt: skip
