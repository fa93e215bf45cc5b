"""A short KD refresh of a pruned student on a recipe's teacher logits (`hf-sparse-distill compress --refresh`).

Pruning removes n-grams the student has learned to rely on; a few hundred KD steps over the recipe's corpus, seen
through the pruned vocabulary, let the kept rows and the head make up for them. The teacher logits come from the
recipe's cache (texts missing from it are labelled first), and the refreshed student is kept only if it beats the
pruned one on the recipe's selection split.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..models.sparse_dan import SparseDANForSequenceClassification, SparseDANTokenizer
from .checkpoints import BEST
from .distiller import Distiller
from .encoding import encode_texts
from .evaluate import classification_metrics, predict_logits
from .recipe import Recipe
from .train import EvalData, StageData, StageTrainer

logger = logging.getLogger(__name__)


@dataclass
class RefreshResult:
    """Where the kept student is and what the refresh changed on the selection split."""

    student_dir: Path
    steps: int
    selection_accuracy_before: float
    selection_accuracy_after: float
    kept: bool


def refresh_student(student_dir: str | Path, recipe: Recipe, work_dir: str | Path, max_steps: int) -> RefreshResult:
    """Train the (float32) student in `student_dir` for `max_steps` KD steps with the recipe's KD settings, on the
    recipe's KD corpus and teacher logits encoded with the student's own (pruned) tokenizer.

    Checkpoints are chosen on the recipe's selection split, and the refreshed student is kept only if it is more
    accurate there than the student it started from. The refreshed student has no calibration (temperature 1, no
    cascade threshold): run `calibrate` on the final student.
    """
    if max_steps < 1:
        raise ValueError(f"the refresh needs at least one step, got {max_steps}")
    student_dir, work_dir = Path(student_dir), Path(work_dir)
    model = SparseDANForSequenceClassification.from_pretrained(student_dir)
    if model.config.table_quantization is not None:
        raise ValueError(f"{student_dir} has a {model.config.table_quantization} table: refresh a float student")
    model.config.update({"logit_temperature": 1.0, "cascade_threshold": None})  # training sees raw logits
    tokenizer = SparseDANTokenizer.from_pretrained(student_dir)
    distiller = Distiller(recipe)
    data = distiller.data()
    if {int(i): name for i, name in model.config.id2label.items()} != dict(distiller.teacher.id2label):
        raise ValueError(f"{student_dir} and the recipe's teacher have different labels")
    max_ngrams = model.config.max_ngrams
    corpus = StageData(
        encode_texts(tokenizer, data.corpus.texts, max_ngrams, desc="encoding the KD corpus"),
        distiller.teacher_logits("kd"),
        np.asarray(data.corpus.labels),
    )
    selection = EvalData(
        encode_texts(tokenizer, data.select.texts, max_ngrams, show_progress=False),
        np.asarray(data.select.labels),
        distiller.teacher_logits("select"),
    )
    before = _selection_accuracy(model, selection)
    stage = replace(recipe.kd, max_steps=max_steps, eval_steps=None, save_steps=None)
    trainer = StageTrainer(
        model, tokenizer, corpus, selection, stage, work_dir, recipe.mixed_precision, seed=recipe.seed
    )
    after = trainer.train(resume=False).best_score
    kept = after > before
    logger.info(
        "refresh: selection accuracy %.4f before, %.4f after %d steps: %s",
        before, after, max_steps, "keeping the refreshed student" if kept else "keeping the pruned student",
    )  # fmt: skip
    return RefreshResult(work_dir / BEST if kept else student_dir, max_steps, before, after, kept)


def _selection_accuracy(model: SparseDANForSequenceClassification, selection: EvalData) -> float:
    logits = predict_logits(model.eval(), selection.encoded)
    return classification_metrics(
        logits, selection.labels, model.config.id2label, problem_type=model.config.problem_type
    ).score


__all__ = ["RefreshResult", "refresh_student"]
