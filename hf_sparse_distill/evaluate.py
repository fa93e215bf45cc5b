"""Evaluation of students (and teachers): batched prediction and classification metrics."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score

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


def classification_metrics(
    logits: np.ndarray, labels: np.ndarray, id2label: dict[int, str] | None = None, teacher_logits: np.ndarray | None = None
) -> dict[str, float]:
    """Accuracy, macro-F1, per-class F1 and, given teacher logits, agreement with the teacher's predictions."""
    predictions = logits.argmax(axis=-1)
    classes = list(range(logits.shape[-1]))
    metrics = {
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, labels=classes, average="macro", zero_division=0)),
    }
    per_class = f1_score(labels, predictions, labels=classes, average=None, zero_division=0)
    for c, score in zip(classes, per_class):
        name = (id2label or {}).get(c, str(c))
        metrics[f"f1_{name}"] = float(score)
    if teacher_logits is not None:
        metrics["teacher_agreement"] = float((teacher_logits.argmax(axis=-1) == predictions).mean())
    metrics["num_examples"] = int(len(labels))
    return metrics
