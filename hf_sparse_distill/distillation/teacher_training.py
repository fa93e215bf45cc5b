"""A teacher for users who have none: fine-tune a base encoder on the recipe's labeled train split with transformers'
`Trainer`, keep the best checkpoint on the selection split and save it where the recipe's `teacher.model` points.

The teacher never sees the selection texts (they are drawn exactly as the distillation draws them), so the checkpoint
choice is made on text that neither the teacher nor the student trains on, and the dev split stays untouched: its
accuracy, written to the teacher's README, is reported only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import datasets
import numpy as np
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    EvalPrediction,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from .data import TextSet, check_labels, dedup_key, load_source, select_split
from .recipe import Recipe, TeacherTrainingConfig

logger = logging.getLogger(__name__)

TRAINING_FILE = "teacher_training.json"
CHECKPOINTS = "teacher_checkpoints"
ELAPSED_FILE = "elapsed_seconds.json"
FINGERPRINT_FILE = "fingerprint.txt"


class ElapsedTime(TrainerCallback):
    """Keeps the training time spent so far beside each checkpoint, so a resumed run reports the whole time."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.start = time.perf_counter()
        record = folder / ELAPSED_FILE
        self.before = json.loads(record.read_text())["seconds"] if record.is_file() else 0.0

    @property
    def seconds(self) -> float:
        """Training time of this run and of the interrupted runs it resumed."""
        return self.before + time.perf_counter() - self.start

    def on_save(self, args, state, control, **kwargs):
        """Record the time spent up to this checkpoint."""
        (self.folder / ELAPSED_FILE).write_text(json.dumps({"seconds": self.seconds}))


@dataclass
class TeacherTrainingResult:
    """What `train_teacher` did: the base encoder, the accuracy of the kept checkpoint on the selection split (where
    it was chosen) and on dev (reported only), and how long it took."""

    base_model: str
    output_dir: str
    labels: list[str]
    train_texts: int
    best_step: int
    selection_accuracy: float
    dev_accuracy: float
    train_seconds: float
    fingerprint: str
    settings: dict


def label_names(config: TeacherTrainingConfig, train: TextSet) -> list[str]:
    """The teacher's label names in id order: `labels` of the recipe, or `LABEL_0 ...` up to the largest class id
    of `train`."""
    if config.labels:
        return list(config.labels)
    if not train.labels:
        raise ValueError("the train split has no labels to fine-tune a teacher on")
    return [f"LABEL_{i}" for i in range(max(train.labels) + 1)]


def _fingerprint(recipe: Recipe, train: TextSet, selection: TextSet) -> str:
    """Hash of what the teacher depends on: base encoder (a local folder by its absolute path, however it is named),
    training settings, the end of long texts it reads, train and selection texts and labels."""
    settings = asdict(recipe.teacher.training) | recipe.teacher.tokenizer_settings()  # none: as fingerprinted before
    if Path(settings["base_model"]).is_dir():
        settings["base_model"] = str(Path(settings["base_model"]).resolve())
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for split in (train, selection):
        digest.update(json.dumps([split.texts, split.labels] + ([split.pairs] if split.pairs else [])).encode())
    return digest.hexdigest()[:16]


def _clear_other_checkpoints(folder: Path, fingerprint: str, args: TrainingArguments) -> None:
    """Make `folder` hold only checkpoints of the fine-tuning with `fingerprint`: those of a run with other inputs
    (or of a version that did not mark them), interrupted before, are removed instead of resumed."""
    stamp = folder / FINGERPRINT_FILE
    # the others find the folder as the first left it (the first of all nodes, unless each node saves its own)
    with args.main_process_first(local=args.save_on_each_node, desc="teacher checkpoints"):
        if stamp.is_file() and stamp.read_text() == fingerprint:
            return
        if folder.exists():
            logger.info("removing the teacher checkpoints in %s: they were made from other inputs", folder)
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        stamp.write_text(fingerprint)


def trained_teacher(folder: Path) -> TeacherTrainingResult | None:
    """The record of a teacher fine-tuned by `train_teacher` in `folder`, or None."""
    record = folder / TRAINING_FILE
    if not record.is_file():
        return None
    return TeacherTrainingResult(**json.loads(record.read_text()))


def _accuracy(prediction: EvalPrediction) -> dict[str, float]:
    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    return {"accuracy": float((np.argmax(logits, axis=-1) == prediction.label_ids).mean())}


def _dataset(split: TextSet, tokenizer, max_length: int) -> datasets.Dataset:
    encoded = tokenizer(split.texts, split.pairs, truncation=True, max_length=max_length)  # pairs: the teacher's own
    return datasets.Dataset.from_dict({**encoded, "labels": split.labels})


def train_teacher(recipe: Recipe, overwrite: bool = False, show_progress: bool = True) -> TeacherTrainingResult:
    """Fine-tune `recipe.teacher.training.base_model` into the recipe's teacher (`recipe.teacher.model`, a folder).

    A folder that already holds a teacher fine-tuned from the same inputs is reused, one fine-tuned from other
    inputs is replaced, and one holding anything else is an error unless `overwrite`. Checkpoints go to
    `<output_dir>/teacher_checkpoints`; an interrupted run resumes from the last one if its inputs are the same
    (checkpoints of other inputs are removed). Returns (and writes to `teacher_training.json` beside the weights)
    what was done.
    """
    config = recipe.teacher.training
    if config is None or not config.base_model:
        raise ValueError("the recipe names no teacher.training.base_model to fine-tune")
    target = Path(recipe.teacher.model)
    given = {name: i for i, name in enumerate(config.labels)} if config.labels else None
    train = load_source(recipe.data.train, given)
    names = label_names(config, train)
    label2id = {name: i for i, name in enumerate(names)}
    dev = load_source(recipe.data.dev, label2id)
    for name, split in (("train", train), ("dev", dev)):
        check_labels(split, name, len(names))
    selection = select_split(recipe.data, train, dedup_key(recipe.vocab), label2id)
    fingerprint = _fingerprint(recipe, selection.train, selection.texts)
    previous = trained_teacher(target)
    if previous is not None and previous.fingerprint == fingerprint:
        logger.info("teacher in %s was already fine-tuned from these inputs", target)
        return previous
    if previous is None and target.exists() and any(target.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{target} already holds something that `hf-sparse-distill teacher` did not make; pass --overwrite to "
            "replace it"
        )
    if previous is not None:
        logger.warning(
            "the teacher in %s was fine-tuned from other inputs (base encoder %s, settings, train or selection "
            "texts); fine-tuning it again from %s",
            target,
            previous.base_model,
            config.base_model,
        )
    checkpoints = Path(recipe.output_dir) / CHECKPOINTS
    tokenizer = AutoTokenizer.from_pretrained(  # saved with the teacher: it reads long texts as it was taught
        config.base_model, revision=config.revision, **recipe.teacher.tokenizer_settings()
    )
    model = AutoModelForSequenceClassification.from_pretrained(
        config.base_model,
        revision=config.revision,
        id2label=dict(enumerate(names)),
        label2id=label2id,
        ignore_mismatched_sizes=True,  # a base encoder fine-tuned for another task brings a head of another size
    )
    args = TrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=config.epochs,
        learning_rate=config.learning_rate,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size * 2,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,
        max_grad_norm=config.max_grad_norm,
        lr_scheduler_type="linear",
        eval_strategy="steps",
        eval_steps=config.eval_steps,
        save_strategy="steps",
        save_steps=config.eval_steps,
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="accuracy",
        greater_is_better=True,
        train_sampling_strategy="group_by_length",  # far less padding: twice as fast on CPU
        logging_steps=config.eval_steps,
        report_to="none",
        dataloader_pin_memory=torch.cuda.is_available(),
        seed=config.seed,
        disable_tqdm=not show_progress,
    )
    _clear_other_checkpoints(checkpoints, fingerprint, args)
    elapsed = ElapsedTime(checkpoints)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=_dataset(selection.train, tokenizer, config.max_length),
        eval_dataset=_dataset(selection.texts, tokenizer, config.max_length),
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=_accuracy,
        callbacks=[elapsed],
    )
    resume = any(checkpoints.glob("checkpoint-*"))
    if resume:
        logger.info("resuming the teacher's fine-tuning from the last checkpoint in %s", checkpoints)
    trainer.train(resume_from_checkpoint=True if resume else None)
    selection_accuracy = trainer.evaluate()["eval_accuracy"]
    dev_accuracy = trainer.evaluate(_dataset(dev, tokenizer, config.max_length), metric_key_prefix="dev")
    best = trainer.state.best_model_checkpoint
    result = TeacherTrainingResult(
        base_model=config.base_model,
        output_dir=str(target),
        labels=names,
        train_texts=len(selection.train),
        best_step=int(best.rsplit("-", 1)[1]) if best else trainer.state.global_step,
        selection_accuracy=float(selection_accuracy),
        dev_accuracy=float(dev_accuracy["dev_accuracy"]),
        train_seconds=round(elapsed.seconds, 1),
        fingerprint=fingerprint,
        settings=asdict(config),
    )
    main_process = trainer.is_world_process_zero()  # under `accelerate launch`, one process writes
    if main_process and target.exists():
        shutil.rmtree(target)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(target))
    if main_process:
        (target / "training_args.bin").unlink(missing_ok=True)  # serialized Python objects: not in what users load
        (target / TRAINING_FILE).write_text(json.dumps(asdict(result), indent=2))
        (target / "README.md").write_text(
            teacher_readme(recipe, result, len(selection.texts), len(dev), tokenizer.truncation_side)
        )
        shutil.rmtree(checkpoints, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    return result


def teacher_readme(
    recipe: Recipe, result: TeacherTrainingResult, selection_size: int, dev_size: int, truncation_side: str
) -> str:
    """A model card for the fine-tuned teacher: base encoder, data, settings, accuracy and which end of a long text
    it was taught on (`truncation_side`, its tokenizer's)."""
    settings = "\n".join(f"- `{key}`: {value}" for key, value in result.settings.items() if key != "labels")
    end = "first" if truncation_side == "right" else "last"
    return f"""---
base_model: {result.base_model}
pipeline_tag: text-classification
---
# {recipe.task} teacher

`AutoModelForSequenceClassification` fine-tuned by `hf-sparse-distill teacher` from `{result.base_model}` with
transformers' `Trainer`, to be distilled into a sparse DAN student. Labels: {", ".join(result.labels)}.

- Trained on {result.train_texts:,} texts of `{recipe.data.train.path}` (the train split without the selection split).
- Checkpoint kept: step {result.best_step}, the best on the selection split ({selection_size:,} texts held out of
  training): accuracy {result.selection_accuracy:.4f}.
- **Dev accuracy: {result.dev_accuracy:.4f}** ({dev_size:,} texts of `{recipe.data.dev.path}`, the recipe's report
  split; no choice was made on them).
- Fine-tuning took {result.train_seconds / 60:.1f} minutes.
- Taught on the {end} {result.settings["max_length"]} tokens of a longer text (`truncation_side: {truncation_side}`,
  kept in its tokenizer).

Settings:
{settings}
"""
