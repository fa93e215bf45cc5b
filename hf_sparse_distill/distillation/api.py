"""The distillation entry points: `run_recipe` (what `hf-sparse-distill distill` calls) and `distill`, the same run
from Python arguments instead of a YAML file."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..results import DistillationResults
from .distiller import STUDENT_DIR, Distiller
from .recipe import Recipe, recipe_from_dict
from .teacher_training import train_teacher

logger = logging.getLogger(__name__)


def run_recipe(recipe: Recipe, stages: Sequence[str] | None = None, push: bool = True) -> DistillationResults:
    """Run every step of `recipe` (each reusing what an earlier run left in `recipe.output_dir`), save the student
    and `results.json`, and push the student to `recipe.hub_repo_id` if the recipe names one and `push` is true.
    A recipe with `teacher.training.base_model` first fine-tunes its teacher (`train_teacher`; reused when done)."""
    if recipe.teacher.training is not None and recipe.teacher.training.base_model:
        train_teacher(recipe)
    distiller = Distiller(recipe)
    results = distiller.run(tuple(stages) if stages else None)
    if push and recipe.hub_repo_id and distiller.state.is_main_process:
        from ..hub import push_student

        url = push_student(Path(recipe.output_dir) / STUDENT_DIR, recipe.hub_repo_id, private=recipe.hub_private)
        logger.info("pushed the student to %s", url)
    return results


def _source(value: str | dict[str, Any], labeled: bool) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    return {"path": value} if labeled else {"path": value, "label_column": None}


def distill(
    teacher: str | dict[str, Any],
    train: str | dict[str, Any],
    dev: str | dict[str, Any],
    unlabeled: Sequence[str | dict[str, Any]] = (),
    output_dir: str = "runs/student",
    task: str = "text-classification",
    stages: Sequence[str] | None = None,
    push: bool = True,
    **overrides: Any,
) -> DistillationResults:
    """Distil `teacher` into a sparse DAN student: the Python form of `hf-sparse-distill distill RECIPE`.

    Args:
        teacher: Hub id or local folder of any `AutoModelForSequenceClassification`, or the recipe's `teacher`
            section as a dict (`{"model": ..., "max_length": 128, ...}`).
        train: Labeled train split: a local file (`.jsonl`, `.csv`, `.parquet`, ...), or a dict of the recipe's
            data source fields (`{"path": "stanfordnlp/sst2", "split": "train", "text_column": "sentence"}`).
        dev: Labeled dev split, in the same forms.
        unlabeled: Unlabeled transfer text, each a file or a data source dict (a file's label column is ignored).
        output_dir: Where the run writes its steps, the student (`student/`) and `results.json`.
        task: Name of the task, for the results and the model card.
        stages: Subset of `scratch`, `kd`, `finetune` to run (default: the enabled ones).
        push: Push the student if the recipe names `hub_repo_id`.
        **overrides: Any other recipe field, by section: `vocab={"size": 200_000}`, `kd={"epochs": 2}`, `seed=1`,
            `hub_repo_id="org/name"`. A dict is merged into the section's other values.

    Returns:
        The typed results; `results.student_dir` is the folder of the student.

    Example:
    ```python
    >>> from hf_sparse_distill import distill
    >>> results = distill(teacher="my-teacher/", train="train.jsonl", dev="dev.jsonl",
    ...                   unlabeled=["reviews.jsonl"], output_dir="runs/mine", kd={"epochs": 2})
    >>> results.retention
    ```
    """
    data: dict[str, Any] = {
        "task": task,
        "output_dir": output_dir,
        "teacher": teacher if isinstance(teacher, dict) else {"model": teacher},
        "data": {
            "train": _source(train, labeled=True),
            "dev": _source(dev, labeled=True),
            "unlabeled": [_source(u, labeled=False) for u in unlabeled],
        },
    }
    for key, value in overrides.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
    return run_recipe(recipe_from_dict(data), stages, push)
