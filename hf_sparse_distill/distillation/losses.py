"""Training objectives: knowledge distillation from teacher logits, gold-label loss, and their mix."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 1.0,
    problem_type: str | None = None,
) -> torch.Tensor:
    """Mean over the batch of KL(teacher ‖ student) on temperature-softened distributions, times T².

    Single-label: softmax over classes (paper, with T = 1). Multi-label: one Bernoulli per label (sigmoid).
    Regression: squared error to the teacher's outputs (temperature unused).
    """
    student_logits = student_logits.float()
    teacher_logits = teacher_logits.float()
    if problem_type == "regression":
        return F.mse_loss(student_logits, teacher_logits)
    t = temperature
    if problem_type == "multi_label_classification":
        target = torch.sigmoid(teacher_logits / t)
        entropy = F.binary_cross_entropy_with_logits(teacher_logits / t, target, reduction="none")
        cross = F.binary_cross_entropy_with_logits(student_logits / t, target, reduction="none")
        return (cross - entropy).sum(dim=-1).mean() * t * t
    teacher_log_probs = F.log_softmax(teacher_logits / t, dim=-1)
    student_log_probs = F.log_softmax(student_logits / t, dim=-1)
    return F.kl_div(student_log_probs, teacher_log_probs, log_target=True, reduction="batchmean") * t * t


def gold_loss(logits: torch.Tensor, labels: torch.Tensor, problem_type: str | None = None) -> torch.Tensor:
    """Cross-entropy (or BCE / MSE) against gold labels (every row labelled; see `labelled_rows`)."""
    logits = logits.float()
    if problem_type == "regression":
        return F.mse_loss(logits.squeeze(-1), labels.float())
    if problem_type == "multi_label_classification":
        return F.binary_cross_entropy_with_logits(logits, labels.float())
    return F.cross_entropy(logits, labels.long(), ignore_index=-1)


def mixed_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    labels: torch.Tensor | None,
    alpha: float,
    temperature: float = 1.0,
    problem_type: str | None = None,
    kd_weight: float = 1.0,
    gold_weight: float = 1.0,
) -> torch.Tensor:
    """`alpha * KD + (1 - alpha) * gold`; alpha = 1 is pure distillation, alpha = 0 plain supervised training.

    `kd_weight` and `gold_weight` scale the two means (a process's share of a global batch split between
    processes, see `train.BagCollator`). A batch without rows, or without labelled rows for the gold term, adds
    zero, still connected to the model so that every parameter gets a (zero) gradient."""
    loss = student_logits.sum().float() * 0.0
    if alpha > 0:
        if teacher_logits is None:
            raise ValueError("alpha > 0 needs teacher logits")
        if len(student_logits):
            kd = distillation_loss(student_logits, teacher_logits, temperature, problem_type)
            loss = loss + alpha * kd_weight * kd
    if alpha < 1:
        if labels is None:
            raise ValueError("alpha < 1 needs gold labels")
        has_label = labelled_rows(labels, problem_type)
        if bool(has_label.any()):
            gold = gold_loss(student_logits[has_label], labels[has_label], problem_type)
            loss = loss + (1 - alpha) * gold_weight * gold
    return loss


def labelled_rows(labels: torch.Tensor, problem_type: str | None = None) -> torch.Tensor:
    """Which rows have a gold label: unlabeled rows hold -1 (a class id, or a multi-hot row of -1) or NaN (a
    regression target)."""
    if problem_type == "regression":
        return ~torch.isnan(labels.float().reshape(len(labels), -1)[:, 0])
    if labels.dim() > 1:
        return labels[:, 0] >= 0
    return labels >= 0
