"""Evaluation of students (and teachers): batched prediction and classification metrics."""

from __future__ import annotations

import numpy as np
import torch

from ..results import Metrics
from .encoding import EncodedTexts


@torch.inference_mode()
def predict_logits(model: torch.nn.Module, encoded: EncodedTexts, batch_size: int = 1024) -> np.ndarray:
    """Student logits for every text of `encoded`, in order, `[n, num_labels]` float32."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(encoded), batch_size):
        ids, offsets = encoded.batch(np.arange(start, min(start + batch_size, len(encoded))))
        logits = model(input_ids=ids.to(device), offsets=offsets.to(device)).logits
        out.append(logits.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.num_labels), dtype=np.float32)


def per_class_f1(predictions: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """F1 of each class (0 for a class that is neither predicted nor present, as scikit-learn's
    `zero_division=0`)."""
    classes = np.arange(num_classes)
    predicted = predictions[:, None] == classes
    actual = labels[:, None] == classes
    true_positive = (predicted & actual).sum(axis=0)
    denominator = predicted.sum(axis=0) + actual.sum(axis=0)
    return np.divide(2 * true_positive, denominator, out=np.zeros(num_classes), where=denominator > 0)


def classification_metrics(
    logits: np.ndarray,
    labels: np.ndarray,
    id2label: dict[int, str] | None = None,
    teacher_logits: np.ndarray | None = None,
) -> Metrics:
    """Accuracy, macro-F1, per-class F1 and, given teacher logits, agreement with the teacher's predictions."""
    predictions = logits.argmax(axis=-1)
    labels = np.asarray(labels)
    f1 = per_class_f1(predictions, labels, logits.shape[-1])
    names = [(id2label or {}).get(c, str(c)) for c in range(logits.shape[-1])]
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
