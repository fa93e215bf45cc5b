"""One training stage of the student with `accelerate`: KD (teacher logits), fine-tuning (gold labels), or both.

Works on one CPU, one GPU, or several processes under `accelerate launch`. In the multi-process case the
embedding table is kept out of DDP and its sparse gradient is averaged by `distributed.average_sparse_gradient`
(dense collectives only, so NCCL and gloo both work); every global batch, the last and shorter one of an epoch
included, is split between the processes and each weighs its loss by its share, so a run on N processes follows
the same trajectory as a run on one (without dropout: the masks are drawn per process).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator, DataLoaderConfiguration
from tqdm.auto import tqdm

from ..models.sparse_dan.modeling_sparse_dan import SparseDANForSequenceClassification
from ..models.sparse_dan.tokenization_sparse_dan import SparseDANTokenizer
from ..results import Metrics
from .averaging import WeightAverage
from .checkpoints import (
    BEST,
    CHECKPOINTS,
    checkpoint_problem,
    checkpoint_step,
    checkpoints,
    prune_checkpoints,
    publish_checkpoint,
    save_best,
)
from .distributed import average_sparse_gradient, broadcast_parameter, exclude_from_ddp
from .encoding import EncodedPairs, EncodedTexts
from .evaluate import classification_metrics, predict_logits, problem_type_of
from .losses import labelled_rows, mixed_loss
from .optim import MixedSparseAdamW, linear_warmup_decay, param_groups
from .recipe import StageConfig

logger = logging.getLogger(__name__)

TRAINER_STATE = "trainer_state.json"


class NonFiniteTrainingError(RuntimeError):
    """The loss or the weights of a stage stopped being finite numbers."""


@dataclass
class StageData:
    """Training texts with their teacher logits (for KD) and/or gold labels (-1 where there is none)."""

    encoded: EncodedTexts | EncodedPairs
    teacher_logits: np.ndarray | None = None
    labels: np.ndarray | None = None


@dataclass
class EvalData:
    """Evaluation texts with gold labels and, optionally, the teacher's logits (for agreement)."""

    encoded: EncodedTexts | EncodedPairs
    labels: np.ndarray
    teacher_logits: np.ndarray | None = None


@dataclass
class StageSummary:
    """How a stage went: its schedule, every evaluation, the weight average's (if the stage averages), and the best
    one (whose student is in `best/`): a checkpoint, or the average (`best_is_average`; `best_step` is then the last
    step, and the metrics name the averaged steps)."""

    total_steps: int
    best_step: int = -1
    history: list[Metrics] = field(default_factory=list)
    average: Metrics | None = None
    best_is_average: bool = False

    @property
    def best_metrics(self) -> Metrics | None:
        """Metrics of the kept student (`None` before the first evaluation)."""
        if self.best_is_average:
            return self.average
        return next((m for m in self.history if m.step == self.best_step), None)

    @property
    def best_score(self) -> float:
        """Score (accuracy, micro-F1 or Pearson: see `Metrics.score`) of the kept checkpoint (-inf before the first
        evaluation)."""
        best = self.best_metrics
        return best.score if best is not None else -float("inf")

    def save(self, path: Path) -> None:
        """Write it as JSON (`trainer_state.json`: in a checkpoint, and in the stage folder once it is finished)."""
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> StageSummary:
        """Read what `save` wrote."""
        state = json.loads(path.read_text())
        history = [Metrics.from_dict(m) for m in state["history"]]
        average = Metrics.from_dict(state["average"]) if state.get("average") else None
        return cls(
            total_steps=state["total_steps"], best_step=state["best_step"], history=history, average=average,
            best_is_average=state.get("best_is_average", False),
        )  # fmt: skip


def shuffled_batches(size: int, batch_size: int, seed: int, epoch: int, skip: int = 0) -> Iterator[np.ndarray]:
    """The global batches (row numbers) of `epoch`: a permutation seeded by `(seed, epoch)`, cut into batches of
    `batch_size` (the last one shorter), from batch `skip` on. The same for any number of processes and for a
    resumed run."""
    order = np.arange(size, dtype=np.int32 if size < 2**31 else np.int64)  # half the memory of int64 rows
    np.random.default_rng([seed, epoch]).shuffle(order)  # the same order as `permutation(size)`
    for start in range(skip * batch_size, size, batch_size):
        yield order[start : start + batch_size]


class BagCollator:
    """Builds this process's part of a global batch: flat ids, offsets, teacher logits, labels, and the loss
    weights that make the processes' mean gradient equal to the gradient of the whole batch.

    Args:
        data: The stage's texts, teacher logits and labels.
        num_processes: How many processes share each global batch.
        process_index: Which contiguous part (`len(rows) * i // n` to `len(rows) * (i + 1) // n`) this one takes.
        problem_type: The student's (it tells which rows hold a gold label).
    """

    def __init__(
        self, data: StageData, num_processes: int = 1, process_index: int = 0, problem_type: str | None = None
    ):
        self.data, self.num_processes, self.process_index = data, num_processes, process_index
        self.problem_type = problem_type

    def __call__(self, rows: np.ndarray) -> dict:
        """The batch of this process for the global batch `rows`, with `kd_weight` and `gold_weight`: its share of
        the batch's rows (of its labelled rows), times the number of processes (their gradients are averaged)."""
        n, world, index = len(rows), self.num_processes, self.process_index
        lo, hi = n * index // world, n * (index + 1) // world
        local = np.asarray(rows[lo:hi], dtype=np.int64)
        input_ids, offsets = self.data.encoded.batch(local)
        batch = {"input_ids": input_ids, "offsets": offsets, "kd_weight": world * len(local) / n, "gold_weight": 1.0}
        if self.data.teacher_logits is not None:
            batch["teacher_logits"] = torch.from_numpy(self.data.teacher_logits[local])
        if self.data.labels is not None:
            batch["labels"] = torch.from_numpy(self.data.labels[local])
            if world > 1:
                labelled = labelled_rows(torch.from_numpy(self.data.labels[rows]), self.problem_type).numpy()
                mine = int(labelled[lo:hi].sum())
                batch["gold_weight"] = world * mine / max(1, int(labelled.sum()))
        return batch


@dataclass
class Schedule:
    """Steps of a stage: how many in all, per epoch, between evaluations and between checkpoints."""

    steps_per_epoch: int
    total_steps: int
    eval_steps: int
    save_steps: int

    @classmethod
    def of(cls, stage: StageConfig, num_texts: int) -> Schedule:
        """The schedule of `stage` over `num_texts` training texts."""
        if num_texts == 0:
            raise ValueError("the stage has no training text")
        steps_per_epoch = math.ceil(num_texts / stage.batch_size)
        total_steps = stage.max_steps or max(1, math.ceil(stage.epochs * steps_per_epoch))
        eval_steps = stage.eval_steps or max(1, total_steps // 10)
        return cls(steps_per_epoch, total_steps, eval_steps, stage.save_steps or eval_steps)

    def evaluates_at(self, step: int) -> bool:
        """Whether the stage evaluates after `step`: every `eval_steps`, and at the last step."""
        return step % self.eval_steps == 0 or step == self.total_steps

    @property
    def evaluation_steps(self) -> list[int]:
        """Every step the stage evaluates after."""
        return [step for step in range(1, self.total_steps + 1) if self.evaluates_at(step)]


class StageTrainer:
    """Trains `model` for one stage, evaluating on `selection` and keeping the best checkpoint in `stage_dir/best`.

    Args:
        model: The student to train (its weights are updated in place).
        tokenizer: Saved next to every kept student.
        data: Training texts, encoded, with teacher logits and/or gold labels.
        selection: The selection split, encoded, with gold labels (and teacher logits for agreement): every
            checkpoint choice is made on it.
        stage: Optimisation settings (`batch_size` is the global batch, over all processes).
        stage_dir: Where checkpoints, `best/` and `trainer_state.json` go.
        mixed_precision: `"no"`, `"bf16"` or `"fp16"` (autocast of the head; the table stays float32).
        report_to: accelerate trackers to log to (`"tensorboard"`, `"wandb"`, ...), besides the JSON history.
        seed: Seed of the batch order.
    """

    def __init__(
        self,
        model: SparseDANForSequenceClassification,
        tokenizer: SparseDANTokenizer,
        data: StageData,
        selection: EvalData,
        stage: StageConfig,
        stage_dir: str | Path,
        mixed_precision: str = "no",
        report_to: list[str] | tuple[str, ...] = (),
        seed: int = 0,
    ):
        self.model, self.tokenizer, self.data, self.selection, self.stage = model, tokenizer, data, selection, stage
        self.stage_dir = Path(stage_dir)
        self.report_to = list(report_to)
        self.accelerator = Accelerator(
            mixed_precision=mixed_precision,
            # the batches are split between processes here, not by accelerate; split_batches also makes its
            # scheduler wrapper step once per step rather than once per process
            dataloader_config=DataLoaderConfiguration(split_batches=True),
            log_with=self.report_to or None,
            project_dir=str(self.stage_dir),
        )
        if stage.batch_size % self.accelerator.num_processes:
            raise ValueError(
                f"batch_size {stage.batch_size} must be divisible by {self.accelerator.num_processes} processes"
            )
        self.schedule = Schedule.of(stage, len(data.encoded))
        self.summary = StageSummary(total_steps=self.schedule.total_steps)
        self.average = None
        if stage.average_last_evaluations:
            self.average = WeightAverage(self.schedule.evaluation_steps[-stage.average_last_evaluations :])
            if len(self.average.steps) < 2:
                logger.warning(
                    "%s evaluates only once (%d steps, eval_steps %d): there is no weight average to score",
                    self.stage_dir.name, self.schedule.total_steps, self.schedule.eval_steps,
                )  # fmt: skip
        self.step = 0
        self.seed = seed
        self._prepare()

    def _prepare(self) -> None:
        """Optimizer and schedule, wrapped by accelerate (batches come from `shuffled_batches` and `BagCollator`); the
        table is synchronised by hand."""
        stage, model = self.stage, self.model
        self.table = model.get_input_embeddings()
        self.table.sparse = model.config.pooling != "max"  # EmbeddingBag has no sparse gradient for max pooling
        groups = param_groups(
            model, stage.weight_decay, stage.embedding_learning_rate, stage.embedding_weight_decay,
            stage.embedding_max_norm,
        )  # fmt: skip
        optimizer = MixedSparseAdamW(groups, lr=stage.learning_rate, betas=tuple(stage.betas), eps=stage.eps)
        scheduler = linear_warmup_decay(optimizer, self.schedule.total_steps, stage.warmup_ratio)
        self.dense_params = [p for group in optimizer.param_groups if not group["sparse"] for p in group["params"]]
        self.distributed = self.accelerator.num_processes > 1
        if self.distributed:
            exclude_from_ddp(model, self.table.weight)
        # the batches are split here, not by accelerate: its even_batches would pad a short last batch with rows
        # of the first (training on them twice) and its split ignores the batch's own size
        self.wrapped, self.optimizer, self.scheduler = self.accelerator.prepare(model, optimizer, scheduler)
        if self.distributed:
            broadcast_parameter(self.table.weight)
        self.problem_type = problem_type_of(model.config)
        accelerator = self.accelerator
        self.collator = BagCollator(self.data, accelerator.num_processes, accelerator.process_index, self.problem_type)

    def train(self, resume: bool = True) -> StageSummary:
        """Run the stage to its last step (continuing from the newest checkpoint if `resume`); return the summary,
        also written to `stage_dir/trainer_state.json`."""
        accelerator = self.accelerator
        if self.report_to:
            config = {k: v for k, v in asdict(self.stage).items() if v is not None}
            accelerator.init_trackers(self.stage_dir.name, config=config)
        if resume:
            self._resume()
        self.bar = tqdm(
            total=self.schedule.total_steps,
            initial=self.step,
            desc=f"training {self.stage_dir.name}",
            unit="step",
            disable=not accelerator.is_local_main_process,
            dynamic_ncols=True,
        )
        first_epoch, skip = divmod(self.step, self.schedule.steps_per_epoch)
        last_epoch = math.ceil(self.schedule.total_steps / self.schedule.steps_per_epoch)
        for epoch in range(first_epoch, last_epoch):
            batches = shuffled_batches(len(self.data.encoded), self.stage.batch_size, self.seed, epoch, skip)
            skip = 0
            for rows in batches:
                self._train_step(self.collator(rows))
                if self.schedule.evaluates_at(self.step):
                    self._evaluate()
                if self.step == self.schedule.total_steps:
                    break
                if self.step % self.schedule.save_steps == 0:
                    self._save_checkpoint()
        self.bar.close()
        if accelerator.is_main_process:
            self.summary.save(self.stage_dir / TRAINER_STATE)
            if not self.stage.keep_checkpoints:  # only a stage still running needs them, and they are large
                shutil.rmtree(self.stage_dir / CHECKPOINTS, ignore_errors=True)
        for tracker in accelerator.trackers:
            tracker.finish()
        accelerator.wait_for_everyone()
        return self.summary

    def _resume(self) -> None:
        """Continue from the newest checkpoint whose files match its manifest; a damaged one is skipped with a
        warning naming the file (the previous one is tried), and without any valid checkpoint the stage starts
        over."""
        found = checkpoints(self.stage_dir)
        for checkpoint in reversed(found):
            problem = checkpoint_problem(checkpoint)
            if problem is not None:
                logger.warning("not resuming %s from %s: %s", self.stage_dir.name, checkpoint, problem)
                continue
            self.accelerator.load_state(str(checkpoint))
            self.summary = StageSummary.load(checkpoint / TRAINER_STATE)
            if self.average is not None and self.accelerator.is_main_process:
                self.average.load(checkpoint, self.accelerator.device)
            self.step = checkpoint_step(checkpoint)
            logger.info("resumed %s from %s (step %d)", self.stage_dir.name, checkpoint, self.step)
            return
        if found:
            logger.warning(
                "no valid checkpoint of %s in %s: training it from the start", self.stage_dir.name, found[0].parent
            )

    def _seed_step(self) -> None:
        """Seed torch's generator from (seed, step, process) before each step: the dropout masks of a step do not
        depend on what ran before it, so a resumed run repeats an uninterrupted one exactly."""
        state = np.random.SeedSequence([self.seed, self.step, self.accelerator.process_index]).generate_state(2)
        torch.manual_seed(int(state[0]) << 32 | int(state[1]))

    def _train_step(self, batch: dict) -> None:
        self.wrapped.train()
        self._seed_step()
        device = self.accelerator.device
        tensors = {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
        logits = self.wrapped(input_ids=tensors["input_ids"], offsets=tensors["offsets"]).logits
        loss = mixed_loss(
            logits,
            tensors.get("teacher_logits"),
            tensors.get("labels"),
            self.stage.alpha,
            self.stage.temperature,
            self.problem_type,
            kd_weight=batch["kd_weight"],
            gold_weight=batch["gold_weight"],
        )
        if not torch.isfinite(loss):
            raise NonFiniteTrainingError(
                f"{self.stage_dir.name}: the training loss is {loss.item()} at step {self.step + 1} (learning rates "
                "too high, or non-finite teacher logits?); stopped, nothing of this step is saved"
            )
        self.accelerator.backward(loss)
        if self.distributed:
            average_sparse_gradient(self.table.weight)
        if self.stage.max_grad_norm:
            self.accelerator.clip_grad_norm_(self.dense_params, self.stage.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.bar.update(1)
        if self.step % 10 == 0:
            best = f" best={self.summary.best_score:.4f}" if self.summary.best_step >= 0 else ""
            self.bar.set_postfix_str(f"loss={loss.item():.4f}{best}")
            self.accelerator.log(
                {"train/loss": loss.item(), "train/lr": self.scheduler.get_last_lr()[0]}, step=self.step
            )

    def _evaluate(self) -> None:
        """Evaluate on the selection split (main process); a new best is written to `best/` with its tokenizer and
        metrics. At the last step of an averaging stage, the weight average is evaluated too."""
        accelerator = self.accelerator
        model = accelerator.unwrap_model(self.wrapped)
        bad = next((name for name, p in model.named_parameters() if not torch.isfinite(p).all()), None)
        if bad is not None:  # checked by every process (the weights are the same everywhere)
            raise NonFiniteTrainingError(f"{self.stage_dir.name}: {bad} is not finite at step {self.step}; not saved")
        if accelerator.is_main_process:
            metrics = self._selection_metrics(model)
            self.summary.history.append(metrics)
            if metrics.score > self.summary.best_score:
                self.summary.best_step = self.step
                save_best(model, self.tokenizer, self.stage_dir, metrics)
            if self.average is not None:
                self.average.add(model, self.step)
                if self.step == self.schedule.total_steps and self.average.count > 1:
                    self._evaluate_average(model)
            accelerator.log(
                {f"selection/{k}": v for k, v in asdict(metrics).items() if isinstance(v, float)}, step=self.step
            )
            self.bar.set_postfix(select=f"{metrics.score:.4f}", best=f"{self.summary.best_score:.4f}")
        accelerator.wait_for_everyone()

    def _selection_metrics(self, model: SparseDANForSequenceClassification) -> Metrics:
        """The model's metrics on the selection split, at this step."""
        selection = self.selection
        logits = predict_logits(model, selection.encoded, self.stage.eval_batch_size)
        metrics = classification_metrics(
            logits, selection.labels, model.config.id2label, selection.teacher_logits, self.problem_type
        )
        metrics.step = self.step
        return metrics

    def _evaluate_average(self, model: SparseDANForSequenceClassification) -> None:
        """Score the weight average; it is kept (`best/`) if it beats every checkpoint."""
        with self.average.swapped_into(model):
            metrics = self._selection_metrics(model)
            metrics.averaged_steps = self.average.steps
            self.summary.average = metrics
            if metrics.score > self.summary.best_score:
                self.summary.best_step, self.summary.best_is_average = self.step, True
                save_best(model, self.tokenizer, self.stage_dir, metrics)
        logger.info(
            "%s: average of the weights at steps %s scores %.4f on the selection split (kept: %s)",
            self.stage_dir.name, self.average.steps, metrics.score, self.summary.best_is_average,
        )  # fmt: skip

    def _save_checkpoint(self) -> None:
        """Everything needed to resume at this step, written atomically (see `checkpoints.publish_checkpoint`)."""
        with publish_checkpoint(self.stage_dir, self.step, self.accelerator) as folder:
            self.accelerator.save_state(str(folder))
            if self.accelerator.is_main_process:
                self.summary.save(folder / TRAINER_STATE)
                if self.average is not None:
                    self.average.save(folder)
        if self.accelerator.is_main_process:
            prune_checkpoints(self.stage_dir, self.stage.save_total_limit)
        self.accelerator.wait_for_everyone()


def stage_finished(stage_dir: Path) -> bool:
    """Whether `stage_dir` holds a finished stage (its summary and its kept student)."""
    return (stage_dir / TRAINER_STATE).exists() and (stage_dir / BEST).exists()
