"""One training stage of the student with `accelerate`: KD (teacher logits), fine-tuning (gold labels), or both.

Works on one CPU, one GPU, or several processes under `accelerate launch`. In the multi-process case the
embedding table is kept out of DDP and its sparse gradient is averaged by `distributed.average_sparse_gradient`
(dense collectives only, so NCCL and gloo both work); the global batch is split between processes, so a run on
N processes follows the same trajectory as a run on one.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator, DataLoaderConfiguration
from tqdm.auto import tqdm

from .distributed import average_sparse_gradient, broadcast_parameter, exclude_from_ddp
from .encoding import EncodedTexts
from .evaluate import classification_metrics, predict_logits
from .losses import mixed_loss
from .modeling_sparse_dan import SparseDANForSequenceClassification
from .optim import MixedSparseAdamW, linear_warmup_decay, param_groups
from .recipe import StageConfig
from .tokenization_sparse_dan import SparseDANTokenizer

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
BEST = "best"


@dataclass
class StageData:
    """Training texts with their teacher logits (for KD) and/or gold labels (-1 where there is none)."""

    encoded: EncodedTexts
    teacher_logits: np.ndarray | None = None
    labels: np.ndarray | None = None


@dataclass
class EvalData:
    """Evaluation texts with gold labels and, optionally, the teacher's logits (for agreement)."""

    encoded: EncodedTexts
    labels: np.ndarray
    teacher_logits: np.ndarray | None = None


class _Indices(torch.utils.data.Dataset):
    def __init__(self, size: int):
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> int:
        return index


class ShuffledBatches(torch.utils.data.Sampler):
    """Global batches of a seeded permutation, re-drawn each epoch (`use_epoch`): the same for any number of
    processes (accelerate then hands each process its slice of every batch). The method is deliberately not
    called `set_epoch`: accelerate would reset it to its own per-dataloader iteration count, which differs
    between a resumed, a single-process and a multi-process run."""

    def __init__(self, size: int, batch_size: int, seed: int):
        self.size, self.batch_size, self.seed, self.epoch = size, batch_size, seed, 0

    def use_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.size / self.batch_size)

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        for start in range(0, self.size, self.batch_size):
            yield order[start : start + self.batch_size].tolist()


class BagCollator:
    """Builds a batch (flat ids, offsets, teacher logits, labels) from a list of row indices."""

    def __init__(self, data: StageData):
        self.data = data

    def __call__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        rows = np.asarray(indices, dtype=np.int64)
        input_ids, offsets = self.data.encoded.batch(rows)
        batch = {"input_ids": input_ids, "offsets": offsets}
        if self.data.teacher_logits is not None:
            batch["teacher_logits"] = torch.from_numpy(self.data.teacher_logits[rows])
        if self.data.labels is not None:
            batch["labels"] = torch.from_numpy(self.data.labels[rows])
        return batch


@dataclass
class TrainingProgress:
    """Where a stage is; saved with every checkpoint so an interrupted run resumes exactly."""

    step: int = 0
    best_metric: float = -1.0
    best_step: int = -1
    history: list[dict] = field(default_factory=list)

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        self.__dict__.update(state)


def _checkpoints(stage_dir: Path) -> list[Path]:
    """Complete checkpoints (`step_<n>`, oldest first); unfinished ones (`step_<n>.tmp`) are ignored."""
    found = [p for p in (stage_dir / CHECKPOINTS).glob("step_*") if re.fullmatch(r"step_\d+", p.name)]
    return sorted(found, key=lambda p: int(p.name.split("_")[1]))


def latest_checkpoint(stage_dir: Path) -> Path | None:
    """The checkpoint with the highest step under `stage_dir/checkpoints`, if any."""
    checkpoints = _checkpoints(stage_dir)
    return checkpoints[-1] if checkpoints else None


def _save_best(model, tokenizer: SparseDANTokenizer, stage_dir: Path, metrics: dict) -> None:
    """Write the student atomically to `stage_dir/best` (model, tokenizer, code, metrics)."""
    tmp = stage_dir / f"{BEST}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "eval_results.json").write_text(json.dumps(metrics, indent=2))
    shutil.rmtree(stage_dir / BEST, ignore_errors=True)
    tmp.rename(stage_dir / BEST)


def train_stage(
    model: SparseDANForSequenceClassification,
    tokenizer: SparseDANTokenizer,
    data: StageData,
    dev: EvalData,
    stage: StageConfig,
    stage_dir: str | Path,
    mixed_precision: str = "no",
    report_to: list[str] | tuple[str, ...] = (),
    seed: int = 0,
    resume: bool = True,
) -> dict:
    """Train `model` for one stage, evaluating on `dev` and keeping the best checkpoint in `stage_dir/best`.

    Args:
        stage: Optimisation settings (batch size is the global batch, over all processes).
        mixed_precision: `"no"`, `"bf16"` or `"fp16"` (autocast of the head; the table stays float32).
        report_to: accelerate trackers to log to (`"tensorboard"`, `"wandb"`, ...), besides the JSON history.
        resume: Continue from the newest checkpoint in `stage_dir/checkpoints` if there is one.

    Returns:
        A summary with the best dev metrics, the best step and the evaluation history.
    """
    stage_dir = Path(stage_dir)
    accelerator = Accelerator(
        mixed_precision=mixed_precision,
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        log_with=list(report_to) or None,
        project_dir=str(stage_dir),
    )
    if report_to:
        accelerator.init_trackers(stage_dir.name, config={k: v for k, v in asdict(stage).items() if v is not None})
    if stage.batch_size % accelerator.num_processes:
        raise ValueError(f"batch_size {stage.batch_size} must be divisible by {accelerator.num_processes} processes")
    table = model.get_input_embeddings()
    table.sparse = model.config.pooling != "max"  # EmbeddingBag has no sparse gradient for max pooling
    steps_per_epoch = math.ceil(len(data.encoded) / stage.batch_size)
    total_steps = stage.max_steps or max(1, math.ceil(stage.epochs * steps_per_epoch))
    eval_steps = stage.eval_steps or max(1, total_steps // 10)
    save_steps = stage.save_steps or eval_steps

    sampler = ShuffledBatches(len(data.encoded), stage.batch_size, seed)
    loader = torch.utils.data.DataLoader(_Indices(len(data.encoded)), batch_sampler=sampler, collate_fn=BagCollator(data))
    optimizer = MixedSparseAdamW(
        param_groups(model, stage.weight_decay, stage.embedding_learning_rate), lr=stage.learning_rate, betas=tuple(stage.betas), eps=stage.eps
    )
    scheduler = linear_warmup_decay(optimizer, total_steps, stage.warmup_ratio)
    dense_params = [p for group in optimizer.param_groups if not group["sparse"] for p in group["params"]]
    distributed = accelerator.num_processes > 1
    if distributed:
        exclude_from_ddp(model, table.weight)
    wrapped, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    if distributed:
        broadcast_parameter(table.weight)
    progress = TrainingProgress()
    accelerator.register_for_checkpointing(progress)
    checkpoint = latest_checkpoint(stage_dir) if resume else None
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        logger.info("resumed %s from %s (step %d)", stage_dir.name, checkpoint, progress.step)

    def evaluate_and_keep_best() -> None:
        if accelerator.is_main_process:
            unwrapped = accelerator.unwrap_model(wrapped)
            logits = predict_logits(unwrapped, dev.encoded, stage.eval_batch_size)
            metrics = classification_metrics(logits, dev.labels, unwrapped.config.id2label, dev.teacher_logits)
            metrics["step"] = progress.step
            progress.history.append(metrics)
            if metrics["accuracy"] > progress.best_metric:
                progress.best_metric, progress.best_step = metrics["accuracy"], progress.step
                _save_best(unwrapped, tokenizer, stage_dir, metrics)
            accelerator.log({f"dev/{k}": v for k, v in metrics.items()}, step=progress.step)
            bar.set_postfix(dev_acc=f"{metrics['accuracy']:.4f}", best=f"{progress.best_metric:.4f}")
        accelerator.wait_for_everyone()

    def save_checkpoint() -> None:
        """Write to `step_<n>.tmp`, then rename: a run killed while saving leaves no half checkpoint behind."""
        target = stage_dir / CHECKPOINTS / f"step_{progress.step}"
        partial = target.with_name(target.name + ".tmp")
        accelerator.save_state(str(partial))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            shutil.rmtree(target, ignore_errors=True)
            partial.rename(target)
            for path in _checkpoints(stage_dir)[: -stage.save_total_limit]:
                shutil.rmtree(path, ignore_errors=True)
        accelerator.wait_for_everyone()

    problem_type = model.config.problem_type or "single_label_classification"
    bar = tqdm(
        total=total_steps, initial=progress.step, desc=f"training {stage_dir.name}", unit="step",
        disable=not accelerator.is_local_main_process, dynamic_ncols=True,
    )
    epoch = progress.step // steps_per_epoch
    sampler.use_epoch(epoch)
    batches = iter(accelerator.skip_first_batches(loader, progress.step % steps_per_epoch))
    while progress.step < total_steps:
        try:
            batch = next(batches)
        except StopIteration:
            epoch += 1
            sampler.use_epoch(epoch)
            batches = iter(loader)
            continue
        wrapped.train()
        logits = wrapped(input_ids=batch["input_ids"], offsets=batch["offsets"]).logits
        loss = mixed_loss(
            logits, batch.get("teacher_logits"), batch.get("labels"), stage.alpha, stage.temperature, problem_type
        )
        accelerator.backward(loss)
        if distributed:
            average_sparse_gradient(table.weight)
        if stage.max_grad_norm:
            accelerator.clip_grad_norm_(dense_params, stage.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        progress.step += 1
        bar.update(1)
        if progress.step % 10 == 0:
            bar.set_postfix_str(f"loss={loss.item():.4f}" + (f" best={progress.best_metric:.4f}" if progress.best_step >= 0 else ""))
            accelerator.log({"train/loss": loss.item(), "train/lr": scheduler.get_last_lr()[0]}, step=progress.step)
        if progress.step % eval_steps == 0 or progress.step == total_steps:
            evaluate_and_keep_best()
        if progress.step % save_steps == 0 and progress.step < total_steps:
            save_checkpoint()
    bar.close()
    summary = {
        "best_step": progress.best_step,
        "best_accuracy": progress.best_metric,
        "total_steps": total_steps,
        "history": progress.history,
        "best_metrics": next((h for h in progress.history if h["step"] == progress.best_step), {}),
    }
    if accelerator.is_main_process:
        (stage_dir / "trainer_state.json").write_text(json.dumps(summary, indent=2))
    for tracker in accelerator.trackers:
        tracker.finish()
    accelerator.wait_for_everyone()
    return summary
