"""`hf-sparse-distill evaluate MODEL --data FILE [--teacher TEACHER]`: metrics of a saved student on a labeled split;
with a teacher, of the cascade (the teacher answers the texts the student is not sure of)."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the command's parser."""
    parser = subparsers.add_parser("evaluate", help="accuracy of a saved student (or of its cascade with the teacher)")
    parser.add_argument("model", help="student folder or Hub id")
    parser.add_argument("--data", required=True, help="labeled data: local file or Hub dataset id")
    parser.add_argument("--split", default="validation", help="split of a Hub dataset")
    parser.add_argument("--name", help="config name of a Hub dataset")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--text-pair-column", help="column of the second texts (sentence-pair students)")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--teacher", help="evaluate the cascade with this teacher (Hub id or folder)")
    parser.add_argument("--threshold", type=float, help="cascade threshold (default: the one `calibrate` saved)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the metrics as JSON."""
    import numpy as np

    from ..distillation.evaluate import classification_metrics
    from ..models.sparse_dan import SparseDANClassificationPipeline
    from ._student_data import labeled_texts, pipeline_inputs, student_logits

    examples, labels, model, tokenizer = labeled_texts(
        args.model, args.data, args.text_column, args.label_column, args.text_pair_column, split=args.split,
        name=args.name,
    )  # fmt: skip
    logits, _ = student_logits(model, tokenizer, examples, batch_size=args.batch_size)
    problem_type = model.config.problem_type
    metrics = classification_metrics(logits, labels, model.config.id2label, problem_type=problem_type)
    if args.teacher is None:
        print(json.dumps(asdict(metrics), indent=2))
        return 0
    if problem_type not in (None, "single_label_classification"):
        raise ValueError("the cascade (--teacher) is for single-label classifiers")
    cascade = SparseDANClassificationPipeline(model=model, tokenizer=tokenizer, teacher=args.teacher)
    start = time.perf_counter()
    # truncated as `student_logits` (and `calibrate`) encode, so that the student answers the same inputs
    outputs = cascade(pipeline_inputs(examples), threshold=args.threshold, batch_size=args.batch_size, truncation=True)
    seconds = time.perf_counter() - start
    predicted = np.asarray([model.config.label2id[o["label"]] for o in outputs])
    teacher = cascade.teacher_logits(examples.texts, examples.pairs).argmax(-1)
    result = {
        "accuracy": float((predicted == labels).mean()),
        "student_accuracy": metrics.accuracy,
        "teacher_accuracy": float((teacher == labels).mean()),
        "teacher_call_rate": float(np.mean([o["model"] == "teacher" for o in outputs])),
        "texts_per_s": len(examples) / seconds,
        "threshold": args.threshold if args.threshold is not None else model.config.cascade_threshold,
        "num_examples": len(examples),
    }
    print(json.dumps(result, indent=2))
    return 0
