"""`hf-sparse-distill evaluate MODEL --data FILE`: accuracy and macro-F1 of a saved student on a labeled split."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the command's parser."""
    parser = subparsers.add_parser("evaluate", help="accuracy / macro-F1 of a saved student on a labeled split")
    parser.add_argument("model", help="student folder or Hub id")
    parser.add_argument("--data", required=True, help="labeled data: local file or Hub dataset id")
    parser.add_argument("--split", default="validation", help="split of a Hub dataset")
    parser.add_argument("--name", help="config name of a Hub dataset")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the metrics as JSON."""
    import numpy as np

    from ..distillation.data import check_labels, load_source
    from ..distillation.encoding import encode_texts
    from ..distillation.evaluate import classification_metrics, predict_logits
    from ..distillation.recipe import DatasetSource
    from ..models.sparse_dan import SparseDANForSequenceClassification, SparseDANTokenizer

    model = SparseDANForSequenceClassification.from_pretrained(args.model)
    tokenizer = SparseDANTokenizer.from_pretrained(args.model)
    source = DatasetSource(
        path=args.data, name=args.name, split=args.split, text_column=args.text_column, label_column=args.label_column
    )
    data = load_source(source, model.config.label2id)
    check_labels(data, args.data, model.config.num_labels)
    encoded = encode_texts(tokenizer, data.texts, model.config.max_ngrams)
    logits = predict_logits(model, encoded, args.batch_size)
    print(json.dumps(asdict(classification_metrics(logits, np.asarray(data.labels), model.config.id2label)), indent=2))
    return 0
