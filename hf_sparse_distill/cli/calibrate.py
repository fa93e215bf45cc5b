"""`hf-sparse-distill calibrate STUDENT --dev FILE --teacher TEACHER`: fit the student's temperature and choose the
cascade threshold, both saved in the student folder (its config, and `calibration.json` with the curve)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the command's parser."""
    parser = subparsers.add_parser("calibrate", help="temperature scaling and the teacher-fallback threshold")
    parser.add_argument("student", help="student folder (changed in place)")
    parser.add_argument("--dev", required=True, help="labeled texts to fit and choose on (never the ones you report)")
    parser.add_argument("--teacher", required=True, help="the teacher (Hub id or folder)")
    parser.add_argument("--target-retention", type=float, default=0.995, help="accuracy goal, share of the teacher's")
    parser.add_argument("--against", choices=("gold", "teacher"), default="gold", help="fit the temperature to")
    parser.add_argument("--min-ngrams", type=int, default=1, help="texts with fewer known n-grams go to the teacher")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--text-pair-column", help="column of the second texts (sentence-pair students)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Calibrate; print the summary as JSON."""
    from ..calibration import calibrate_logits, write_to_config
    from ._student_data import labeled_texts, student_logits, teacher_logits

    examples, labels, model, tokenizer = labeled_texts(
        args.student, args.dev, args.text_column, args.label_column, args.text_pair_column
    )
    logits, known = student_logits(model, tokenizer, examples, raw=True)
    calibration = calibrate_logits(
        logits, teacher_logits(args.teacher, model, tokenizer, examples), labels, known, args.dev, args.target_retention,
        args.against, args.min_ngrams,
    )  # fmt: skip
    calibration.save(args.student)
    write_to_config(args.student, calibration)
    summary = {k: v for k, v in asdict(calibration).items() if k != "curve"}
    print(json.dumps(summary, indent=2))
    return 0
