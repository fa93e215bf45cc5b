"""The results of a distillation run (`results.json`): one typed schema, written by `distill` and read by the model
card, the CLI and the benchmarks.

Stage names and their display names are defined here and nowhere else.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any


class Stage(str, Enum):
    """A training stage of the student."""

    SCRATCH = "scratch"
    KD = "kd"
    FINETUNE = "finetune"

    @property
    def display_name(self) -> str:
        """How tables and model cards name the student of this stage (the paper's names)."""
        return {"scratch": "DAN (from scratch)", "kd": "DAN (KD)", "finetune": "DAN (KD+FT)"}[self.value]

    @property
    def description(self) -> str:
        """One line on what the stage trains on."""
        return {
            "scratch": "a new student on the gold labels only (the paper's baseline)",
            "kd": "a new student on the teacher's logits (knowledge distillation)",
            "finetune": "the KD student fine-tuned on the gold labels",
        }[self.value]


STAGES: tuple[Stage, ...] = (Stage.SCRATCH, Stage.KD, Stage.FINETUNE)
"""All stages, in the order `distill` runs them."""
CANDIDATE_STAGES: tuple[Stage, ...] = (Stage.KD, Stage.FINETUNE)
"""The stages whose student can be kept (the from-scratch student is only a baseline)."""


@dataclass
class Metrics:
    """Metrics of one model on one labeled split: single-label classification, multi-label classification or
    regression (the problem type of the teacher).

    Args:
        accuracy: Share of texts whose predicted class is the gold class (multi-label: whose predicted label set is
            exactly the gold set; regression: None).
        macro_f1: Unweighted mean of the per-class F1 scores (regression: None).
        num_examples: Texts in the split.
        per_class_f1: F1 of each class, by label name.
        teacher_agreement: Share of texts where the model predicts what the teacher predicts (students only;
            regression: None).
        step: Training step of the checkpoint that was measured (students only; the last averaged step for a weight
            average).
        micro_f1: Multi-label only: F1 over every (text, label) decision.
        pearson: Regression only: Pearson correlation of predictions and targets.
        spearman: Regression only: Spearman rank correlation.
        averaged_steps: A weight average only: the steps whose weights it averages (`step` is the last).
    """

    accuracy: float | None
    macro_f1: float | None
    num_examples: int
    per_class_f1: dict[str, float] = field(default_factory=dict)
    teacher_agreement: float | None = None
    step: int | None = None
    micro_f1: float | None = None
    pearson: float | None = None
    spearman: float | None = None
    averaged_steps: list[int] | None = None

    @property
    def score_name(self) -> str:
        """The metric every choice (checkpoint, stage) and the retention use: accuracy, micro-F1 (multi-label) or
        Pearson (regression)."""
        if self.pearson is not None:
            return "Pearson"
        return "micro-F1" if self.micro_f1 is not None else "accuracy"

    @property
    def score(self) -> float:
        """The value of `score_name`."""
        if self.pearson is not None:
            return self.pearson
        return self.micro_f1 if self.micro_f1 is not None else self.accuracy

    @property
    def second_name(self) -> str:
        """The second metric of the results table: macro-F1 (classification) or Spearman (regression)."""
        return "Spearman" if self.pearson is not None else "macro-F1"

    @property
    def second(self) -> float:
        """The value of `second_name`."""
        return self.spearman if self.pearson is not None else self.macro_f1

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Metrics:
        """Read metrics written by `to_dict` (or by version 0.1, whose per-class scores were `f1_<label>` keys)."""
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        per_class = dict(values.pop("per_class_f1", {}) or {})
        per_class.update({key[3:]: value for key, value in data.items() if key.startswith("f1_")})
        return cls(per_class_f1=per_class, **values)


@dataclass
class DataReport:
    """What went into the KD corpus (counts of texts). `unlabeled_removed_eval_overlap` counts the unlabeled texts
    equal to a dev, test or selection text (in words, or in letters and digits alone: another tokenization), or
    (with `select_drop_subtexts`) found only inside selection texts."""

    train: int = 0
    selection: int = 0
    train_removed_for_selection: int = 0
    unlabeled_read: int = 0
    unlabeled_removed_eval_overlap: int = 0
    unlabeled_removed_duplicate: int = 0
    unlabeled_removed_empty: int = 0
    unlabeled_kept: int = 0
    kd_total: int = 0
    augmented_generated: int = 0


@dataclass
class SpeedResult:
    """Throughput of the student and the teacher on the same texts, same machine, same run (tokenization
    included)."""

    machine: str
    texts: str
    student_texts_per_s: float
    student_batch_size: int
    teacher_texts_per_s: float
    teacher_batch_size: int
    teacher_dtype: str

    @property
    def speedup(self) -> float:
        """How many times faster the student is than the teacher."""
        return self.student_texts_per_s / self.teacher_texts_per_s


@dataclass
class TeacherResult:
    """The teacher and its metrics on the evaluation split."""

    model: str
    dtype: str
    metrics: Metrics


@dataclass
class CalibrationResult:
    """The kept student's calibration: fitted and chosen on the selection split, measured on the report split.

    Args:
        temperature: The fitted temperature (the student's logits are divided by it).
        threshold: The cascade threshold chosen for `target_retention` of the teacher's accuracy.
        target_retention: The goal, a share of the teacher's accuracy on the selection split.
        selection_teacher_call_rate: Share of the selection texts the cascade sends to the teacher.
        selection_accuracy: The cascade's accuracy on the selection split.
        student_ece, student_nll: The calibrated student on the report split.
        student_ece_before, student_nll_before: The student before temperature scaling, on the report split.
        teacher_ece, teacher_nll: The teacher on the report split.
    """

    temperature: float
    threshold: float
    target_retention: float
    selection_teacher_call_rate: float
    selection_accuracy: float
    student_ece: float
    student_nll: float
    student_ece_before: float
    student_nll_before: float
    teacher_ece: float
    teacher_nll: float


@dataclass
class DistillationResults:
    """Everything a distillation run measured; saved as `results.json` next to the student.

    Every choice of the run (the checkpoint of each stage, the stage kept) was made on the selection split; the
    reported metrics are measured on the report split, which no choice looked at.

    Args:
        task: The recipe's task name.
        report_split: Name of the labeled split the reported metrics (`teacher.metrics`, `stages`) are measured on.
        selection_split: What the selection split is (where every choice was made).
        teacher: The teacher and its metrics on the report split.
        stages: Metrics on the report split of the kept checkpoint of each stage that ran, by stage name.
        selection: Metrics on the selection split of the teacher (`"teacher"`) and of each stage's kept checkpoint.
        student_stage: The stage whose student was kept (`kd` or `finetune`: the better one on the selection split).
        student_dir: Folder of the kept student.
        data: Composition of the KD corpus.
        vocab_size: Rows of the student's embedding table (n-grams plus padding).
        avg_ngrams: Mean number of in-vocabulary n-gram occurrences per text of the report split.
        speed: Student and teacher throughput, when measured.
        timings_s: Wall time of each step of the run, in seconds.
        calibration: The kept student's temperature and cascade threshold, with calibration metrics.
    """

    task: str
    report_split: str
    selection_split: str
    teacher: TeacherResult
    stages: dict[str, Metrics]
    selection: dict[str, Metrics]
    student_stage: str
    student_dir: str
    data: DataReport = field(default_factory=DataReport)
    vocab_size: int = 0
    avg_ngrams: float = 0.0
    speed: SpeedResult | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    calibration: CalibrationResult | None = None

    @property
    def student(self) -> Metrics:
        """Metrics of the kept student."""
        return self.stages[self.student_stage]

    @property
    def retention(self) -> float:
        """The kept student's score (accuracy; micro-F1 or Pearson for other problem types) as a share of the
        teacher's."""
        return self.student.score / self.teacher.metrics.score

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (derived figures included for readers that do not use this class)."""
        data = asdict(self)
        data["retention"] = self.retention
        if self.speed is not None:
            data["speed"]["speedup"] = self.speed.speedup
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DistillationResults:
        """Read what `to_dict` wrote; the untyped layout of version 0.1 (stages at the top level) is read too."""
        if "stages" not in data:
            return cls._from_v0_1(data)
        speed = data.get("speed")
        return cls(
            task=data["task"],
            report_split=data["report_split"],
            selection_split=data["selection_split"],
            teacher=TeacherResult(
                data["teacher"]["model"], data["teacher"]["dtype"], Metrics.from_dict(data["teacher"]["metrics"])
            ),
            stages={name: Metrics.from_dict(metrics) for name, metrics in data["stages"].items()},
            selection={name: Metrics.from_dict(metrics) for name, metrics in data["selection"].items()},
            student_stage=data["student_stage"],
            student_dir=data["student_dir"],
            data=DataReport(**data.get("data", {})),
            vocab_size=data.get("vocab_size", 0),
            avg_ngrams=data.get("avg_ngrams", 0.0),
            speed=_speed(speed),
            timings_s=data.get("timings_s", {}),
            calibration=CalibrationResult(**data["calibration"]) if data.get("calibration") else None,
        )

    @classmethod
    def _from_v0_1(cls, data: dict[str, Any]) -> DistillationResults:
        teacher = dict(data["teacher"])
        model, dtype = teacher.pop("model", "teacher"), teacher.pop("dtype", "?")
        teacher_metrics = Metrics.from_dict(teacher)
        stages = {stage.value: Metrics.from_dict(data[stage.value]) for stage in STAGES if stage.value in data}
        return cls(
            task=data["task"],
            report_split="dev",
            selection_split="dev (version 0.1 chose on the split it reports)",
            teacher=TeacherResult(model, dtype, teacher_metrics),
            stages=stages,
            selection={"teacher": teacher_metrics, **stages},
            student_stage=data["student"]["source"],
            student_dir="student",
            data=DataReport(**data.get("data", {})),
            vocab_size=data.get("vocab_size", 0),
            avg_ngrams=data.get("avg_ngrams_dev", 0.0),
            speed=_speed(data.get("speed")),
            timings_s=data.get("timings_s", {}),
        )

    def save(self, path: str | os.PathLike) -> None:
        """Write `results.json` atomically."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> DistillationResults:
        """Read a `results.json`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def table(self) -> str:
        """Markdown table: the teacher and each trained student on the report split."""
        rows = [(f"teacher ({self.teacher.dtype})", self.teacher.metrics)]
        rows += [(stage.display_name, self.stages[stage.value]) for stage in STAGES if stage.value in self.stages]
        teacher = self.teacher.metrics
        lines = [
            f"| model ({self.report_split}) | {teacher.score_name} | {teacher.second_name} | % of teacher |",
            "|---|---|---|---|",
        ]
        for name, metrics in rows:
            lines.append(
                f"| {name} | {metrics.score:.4f} | {metrics.second:.4f} | {100 * metrics.score / teacher.score:.1f}% |"
            )
        lines.append(
            f"\nCheckpoints and the kept stage were chosen on {self.selection_split}; {self.report_split} was not used."
        )
        return "\n".join(lines)


def _speed(data: dict[str, Any] | None) -> SpeedResult | None:
    if not data:
        return None
    known = {f.name for f in fields(SpeedResult)}
    return SpeedResult(**{key: value for key, value in data.items() if key in known})
