"""Evaluation of students (and teachers): batched prediction and classification metrics."""

from __future__ import annotations

import numpy as np
import torch

from ..results import Metrics
from .encoding import EncodedPairs, EncodedTexts


@torch.inference_mode()
def predict_logits(model: torch.nn.Module, encoded: EncodedTexts | EncodedPairs, batch_size: int = 1024) -> np.ndarray:
    """Student logits for every text of `encoded`, in order, `[n, num_labels]` float32."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(encoded), batch_size):
        ids, offsets = encoded.batch(np.arange(start, min(start + batch_size, len(encoded))))
        logits = model(input_ids=ids.to(device), offsets=offsets.to(device)).logits
        out.append(logits.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.num_labels), dtype=np.float32)


def problem_type_of(config) -> str:
    """`single_label_classification`, `multi_label_classification` or `regression`: a model config's declared
    `problem_type`, else regression for one output and single-label classification otherwise."""
    return config.problem_type or ("regression" if config.num_labels == 1 else "single_label_classification")


def per_class_f1(predictions: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """F1 of each class (0 for a class that is neither predicted nor present, as scikit-learn's
    `zero_division=0`)."""
    classes = np.arange(num_classes)
    return _column_f1(predictions[:, None] == classes, labels[:, None] == classes)


def _column_f1(predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """F1 of each column of boolean `[n, classes]` decisions against the gold ones (0 where a class is neither
    predicted nor present)."""
    true_positive = (predicted & actual).sum(axis=0)
    denominator = predicted.sum(axis=0) + actual.sum(axis=0)
    return np.divide(2 * true_positive, denominator, out=np.zeros(predicted.shape[1]), where=denominator > 0)


def classification_metrics(
    logits: np.ndarray,
    labels: np.ndarray,
    id2label: dict[int, str] | None = None,
    teacher_logits: np.ndarray | None = None,
    problem_type: str | None = None,
) -> Metrics:
    """The metrics users expect for the problem type: accuracy, macro-F1 and per-class F1 (single-label; default);
    micro-F1, macro-F1, per-label F1 and exact-match accuracy of the labels whose logit is positive (multi-label,
    `labels` multi-hot); Pearson and Spearman correlation (regression). Given teacher logits, the share of texts
    where the model predicts what the teacher predicts (classification)."""
    labels = np.asarray(labels)
    if problem_type == "regression":
        return regression_metrics(logits, labels)
    names = [(id2label or {}).get(c, str(c)) for c in range(logits.shape[-1])]
    if problem_type == "multi_label_classification":
        predicted, actual = logits > 0, labels > 0.5
        f1 = _column_f1(predicted, actual)
        decisions = predicted.sum() + actual.sum()
        micro = 2 * (predicted & actual).sum() / decisions if decisions else 0.0
        agreement = None
        if teacher_logits is not None:
            agreement = float(((teacher_logits > 0) == predicted).all(axis=1).mean())
        return Metrics(
            accuracy=float((predicted == actual).all(axis=1).mean()) if len(labels) else 0.0,
            macro_f1=float(f1.mean()),
            num_examples=int(len(labels)),
            per_class_f1={name: float(score) for name, score in zip(names, f1)},
            teacher_agreement=agreement,
            micro_f1=float(micro),
        )
    predictions = logits.argmax(axis=-1)
    f1 = per_class_f1(predictions, labels, logits.shape[-1])
    agreement = None
    if teacher_logits is not None:
        agreement = float((teacher_logits.argmax(axis=-1) == predictions).mean())
    return Metrics(
        accuracy=float((predictions == labels).mean()) if len(labels) else 0.0,
        macro_f1=float(f1.mean()),
        num_examples=int(len(labels)),
        per_class_f1={name: float(score) for name, score in zip(names, f1)},
        teacher_agreement=agreement,
    )


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank (as `scipy.stats.rankdata`)."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(1, len(values) + 1)
    unique, inverse = np.unique(values, return_inverse=True)
    if len(unique) < len(values):
        ranks = (np.bincount(inverse, weights=ranks) / np.bincount(inverse))[inverse]
    return ranks


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0


def regression_metrics(outputs: np.ndarray, targets: np.ndarray) -> Metrics:
    """Pearson and Spearman correlation of the model's outputs (`[n]` or `[n, 1]`) with the targets."""
    predicted = np.asarray(outputs, dtype=np.float64).reshape(len(targets), -1)[:, 0]
    targets = np.asarray(targets, dtype=np.float64)
    return Metrics(
        accuracy=None,
        macro_f1=None,
        num_examples=int(len(targets)),
        pearson=_pearson(predicted, targets),
        spearman=_pearson(_ranks(predicted), _ranks(targets)),
    )
