"""The sparse distillation pipeline, step by step (each step is also a CLI command):

1. data: read train / dev / test / unlabeled, remove evaluation texts from the unlabeled corpus;
2. vocab: top-K n-grams of train ∪ unlabeled → the student's tokenizer;
3. label: teacher logits for the KD corpus and the dev set (cached, resumable);
4. train: KD on teacher logits, then optional fine-tuning on gold labels (and the from-scratch baseline);
5. the best student is saved with its tokenizer, code and results.

Every step reuses what an earlier (possibly interrupted) run left in `output_dir`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from accelerate import PartialState

from ..calibration import calibrate_logits, ece, nll, softmax, write_to_config
from ..models.sparse_dan import SparseDANConfig, SparseDANForSequenceClassification, SparseDANTokenizer
from ..results import (
    CANDIDATE_STAGES,
    STAGES,
    CalibrationResult,
    DistillationResults,
    Metrics,
    SpeedResult,
    Stage,
    TeacherResult,
)
from ..speed import compare_speed
from .checkpoints import BEST, EVAL_RESULTS
from .data import PreparedData, corpus_fingerprint, prepare_data
from .distributed import process_state
from .encoding import encode_texts
from .evaluate import classification_metrics, predict_logits
from .files import atomic_file, json_digest, read_json
from .recipe import RUNTIME_ONLY_SETTINGS, Recipe, StageConfig
from .table_init import start_from_teacher
from .teacher import Teacher
from .train import TRAINER_STATE, EvalData, StageData, StageSummary, StageTrainer, stage_finished
from .vocab import build_tokenizer, saved_tokenizer_settings, vocabulary_settings

logger = logging.getLogger(__name__)

STUDENT_DIR = "student"
CORPUS_DIR = "kd_corpus"
ENCODED_DIR = "encoded"
LOGITS_DIR = "teacher_logits"
STAGE_INPUTS = "stage_inputs.json"
# stage settings added after 0.1, left out of the fingerprint at their defaults (stages trained before stay valid)
_ADDED_LATER = {
    "embedding_weight_decay": 0.0,
    "embedding_max_norm": None,
    "average_last_evaluations": 0,
    "embedding_init": "random",
}


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


RESULTS_FILE = "results.json"
RECIPE_FILE = "recipe.json"
DATA_REPORT_FILE = "data_report.json"


class Distiller:
    """Runs the steps of a recipe, each reusing what is already in `recipe.output_dir`.

    Args:
        recipe: What to distil, from which data, into what student.
        state: The accelerate process state (defaults to the current one).
    """

    def __init__(self, recipe: Recipe, state: PartialState | None = None):
        self.recipe = recipe
        self.state = state or process_state()
        self.output_dir = Path(recipe.output_dir)
        self.timings: dict[str, float] = {}
        self._teacher: Teacher | None = None
        self._data: PreparedData | None = None
        self._tokenizer: SparseDANTokenizer | None = None
        self._logits: dict[str, np.ndarray] = {}
        self._eval: dict[str, EvalData] = {}
        self._fingerprints: dict[Stage, dict[str, str]] = {}

    @property
    def teacher(self) -> Teacher:
        """The recipe's teacher (its weights are loaded on first use)."""
        if self._teacher is None:
            self._teacher = Teacher(self.recipe.teacher, self.state)
        return self._teacher

    def _timed(self, name: str, start: float) -> None:
        self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - start, 2)

    # 1. data
    def data(self) -> PreparedData:
        """The KD corpus and the labeled splits (read once; the corpus report is written to `data_report.json`)."""
        if self._data is None:
            start = time.perf_counter()
            label2id = {name: i for i, name in self.teacher.id2label.items()}
            recipe = self.recipe
            with self.state.main_process_first():
                self._data = prepare_data(
                    recipe.data, recipe.vocab, recipe.augment, label2id, problem_type=self.teacher.problem_type,
                    folder=self.output_dir / CORPUS_DIR, build_corpus=self.state.is_main_process,
                )  # fmt: skip
            if self.state.is_main_process:
                self.output_dir.mkdir(parents=True, exist_ok=True)
                (self.output_dir / DATA_REPORT_FILE).write_text(json.dumps(asdict(self._data.corpus.report), indent=2))
            self._timed("data", start)
        return self._data

    # 2. vocabulary
    def tokenizer(self) -> SparseDANTokenizer:
        """The student's tokenizer, built from the KD corpus unless `tokenizer/` already holds one built with the
        same settings from the same texts."""
        if self._tokenizer is None:
            folder = self.output_dir / "tokenizer"
            corpus = self.data().corpus
            texts = corpus.vocabulary_texts  # both texts of sentence pairs share the table
            settings = vocabulary_settings(self.recipe.vocab, corpus.fingerprint, self.recipe.student.max_ngrams)
            build = saved_tokenizer_settings(folder) != settings
            self.state.wait_for_everyone()  # every process decides before the main one writes the tokenizer
            if build:  # the processes share the counting out
                start = time.perf_counter()
                build_tokenizer(texts, self.recipe.vocab, self.recipe.student.max_ngrams, folder, settings, self.state)
                self._timed("vocab", start)
            self._tokenizer = SparseDANTokenizer.from_pretrained(folder)
        return self._tokenizer

    # 3. teacher labels
    def teacher_logits(self, split: str) -> np.ndarray:
        """Teacher logits of `"kd"` (the KD corpus) or of a labeled split that is not trained on (`"select"`,
        `"dev"`, `"test"`)."""
        if split not in self._logits:
            start = time.perf_counter()
            data = self.data()
            if split == "kd":
                texts, pairs = data.corpus.texts, data.corpus.pairs
            elif split in data.evaluation:
                texts, pairs = data.evaluation[split].texts, data.evaluation[split].pairs
            else:
                raise ValueError(f"no split {split!r} to label; splits: kd, {', '.join(data.evaluation)}")
            if split == "kd":  # on disk, memory-mapped; reused as it is while corpus and teacher are the same
                self._logits[split] = self._kd_logits(texts, pairs, data.corpus.fingerprint)
            else:
                self._logits[split] = self.teacher.label(texts, self.recipe.cache_path, pairs=pairs)
            self._timed(f"label_{split}", start)
        return self._logits[split]

    def _kd_logits(self, texts: Sequence[str], pairs: Sequence[str] | None, corpus_fingerprint: str) -> np.ndarray:
        """The KD corpus's logits in `teacher_logits/kd.npy`, labelled (or looked up in the cache) unless the file
        was finished for this corpus and teacher (`kd.json` records them), so a resumed run does not hash and look
        up every text again."""
        out = self.output_dir / LOGITS_DIR / "kd.npy"
        marker, made_from = out.with_suffix(".json"), {"texts": corpus_fingerprint, "teacher": self.teacher.identity()}
        if out.exists() and read_json(marker) == json.loads(json.dumps(made_from)):
            logits = np.load(out, mmap_mode="r")
            if logits.shape == (len(texts), self.teacher.num_labels):
                return logits
        self.state.wait_for_everyone()  # every process has read the marker before the main one removes it
        if self.state.is_main_process:
            marker.unlink(missing_ok=True)
        logits = self.teacher.label(texts, self.recipe.cache_path, pairs=pairs, out=out)
        if self.state.is_main_process:
            with atomic_file(marker) as f:
                f.write(json.dumps(made_from, indent=2))
        self.state.wait_for_everyone()
        return logits

    def teacher_metrics(self, split: str) -> Metrics:
        """The teacher's metrics on a labeled split (`"select"`, `"dev"`, `"test"`)."""
        labels = self.data().evaluation[split].labels
        teacher = self.teacher
        return classification_metrics(
            self.teacher_logits(split), labels, teacher.id2label, problem_type=teacher.problem_type
        )

    # 4. training
    def eval_data(self, split: str) -> EvalData:
        """A labeled split (`"select"`, `"dev"`, `"test"`), encoded once, with its gold labels and the teacher's
        logits."""
        if split not in self._eval:
            texts = self.data().evaluation[split]
            encoded = encode_texts(
                self.tokenizer(), texts.texts, self.recipe.student.max_ngrams, show_progress=False, pairs=texts.pairs
            )
            self._eval[split] = EvalData(encoded, np.asarray(texts.labels), self.teacher_logits(split))
        return self._eval[split]

    def report_metrics(self, stage: Stage) -> Metrics:
        """Metrics of the kept student of `stage` on the report split (dev), which no choice looked at."""
        model = SparseDANForSequenceClassification.from_pretrained(self.stage_dir(stage) / BEST)
        report = self.eval_data("dev")
        logits = predict_logits(model, report.encoded, self.stage_config(stage).eval_batch_size)
        metrics = classification_metrics(
            logits, report.labels, model.config.id2label, report.teacher_logits, self.teacher.problem_type
        )
        kept = StageSummary.load(self.stage_dir(stage) / TRAINER_STATE).best_metrics
        metrics.step, metrics.averaged_steps = kept.step, kept.averaged_steps
        return metrics

    def new_student(self, embedding_init: str = "random") -> SparseDANForSequenceClassification:
        """A freshly initialised student (seeded by the recipe) of the recipe's shape over the tokenizer's vocabulary;
        `embedding_init="teacher"` starts its table from the teacher's representation of each n-gram (`table_init`)."""
        id2label = self.teacher.id2label
        config = SparseDANConfig(
            **asdict(self.recipe.student),
            vocab_size=self.tokenizer().vocab_size,
            ngram_range=self.recipe.vocab.ngram_range,
            pad_token_id=self.tokenizer().pad_token_id,
            id2label=id2label,
            label2id={name: i for i, name in id2label.items()},
            problem_type=self.teacher.problem_type,
            pair_mode=self.data().train.pairs is not None,
        )
        torch.manual_seed(self.recipe.seed)
        model = SparseDANForSequenceClassification(config)
        if config.pair_overlap:
            model.dan.set_ngram_orders(self.tokenizer().ngram_orders())
        if embedding_init == "teacher":
            start_from_teacher(model, self.teacher, self.tokenizer(), self.recipe.cache_path, self.state)
        return model

    def stage_config(self, stage: Stage | str) -> StageConfig:
        """The recipe's settings of `stage`."""
        return getattr(self.recipe, Stage(stage).value)

    def stage_dir(self, stage: Stage | str) -> Path:
        """Where `stage` keeps its checkpoints, kept student and summary."""
        return self.output_dir / Stage(stage).value

    def stage_inputs(self, stage: Stage) -> tuple[StageData, SparseDANForSequenceClassification]:
        """What `stage` trains on and the model it starts from."""
        data, config = self.data(), self.stage_config(stage)
        if stage is Stage.KD:
            texts, labels, logits = data.corpus.texts, data.corpus.labels, self.teacher_logits("kd")
            pairs = data.corpus.pairs
            model = self.new_student(config.embedding_init)
        else:
            texts, labels, logits, pairs = data.train.texts, np.asarray(data.train.labels), None, data.train.pairs
            if config.alpha > 0:
                if data.corpus.num_train != len(texts):
                    raise ValueError(f"{stage.value} with alpha > 0 needs the train set inside the KD corpus")
                logits = self.teacher_logits("kd")[: data.corpus.num_train]
            if stage is Stage.FINETUNE:
                kd_best = self.stage_dir(Stage.KD) / BEST
                if not kd_best.exists():
                    raise FileNotFoundError(f"fine-tuning starts from the KD student, but {kd_best} does not exist")
                model = SparseDANForSequenceClassification.from_pretrained(kd_best)
            else:
                model = self.new_student(config.embedding_init)
        # on disk (memory-mapped), reused by a resumed or repeated run of the same texts and tokenizer; the
        # processes of the run share the chunks out
        max_ngrams, fingerprint = self.recipe.student.max_ngrams, self.stage_fingerprint(stage)
        identity = json_digest([fingerprint["tokenizer"], fingerprint["texts"], fingerprint.get("pairs"), max_ngrams])
        encoded = encode_texts(
            self.tokenizer(), texts, max_ngrams, desc=f"encoding {stage.value}", pairs=pairs,
            folder=self.output_dir / ENCODED_DIR / stage.value, identity=identity,
            show_progress=self.state.is_main_process, state=self.state,
        )  # fmt: skip
        return StageData(encoded, logits, labels), model

    def stage_fingerprint(self, stage: Stage | str) -> dict[str, str]:
        """What the result of `stage` depends on, each part as a short hash: its settings, the student's shape and
        seed, the tokenizer, the training texts and labels, the teacher (for its logits), the selection split and,
        for fine-tuning, the KD stage it starts from. A finished stage is reused only if all of them match."""
        stage = Stage(stage)
        if stage in self._fingerprints:
            return self._fingerprints[stage]
        data, config = self.data(), self.stage_config(stage)
        settings = {
            k: v
            for k, v in asdict(config).items()
            if k not in RUNTIME_ONLY_SETTINGS and not (k in _ADDED_LATER and v == _ADDED_LATER[k])
        }
        parts = {
            "settings": settings,
            "student": {
                **asdict(self.recipe.student),
                "seed": self.recipe.seed,
                "precision": self.recipe.mixed_precision,
            },
            "tokenizer": _file_digest(self.output_dir / "tokenizer" / "ngram_vocab.json"),
            "selection": json_digest(
                [data.select.texts, data.select.labels] + ([data.select.pairs] if data.select.pairs is not None else [])
            ),
        }
        if stage is Stage.KD:
            parts["texts"] = data.corpus.fingerprint  # texts, second texts of pairs and labels
        else:
            parts["texts"] = json_digest([corpus_fingerprint(data.train.texts), data.train.labels])
            if data.train.pairs is not None:
                parts["pairs"] = corpus_fingerprint(data.train.pairs)
        if stage is Stage.KD or config.alpha > 0 or config.embedding_init == "teacher":
            parts["teacher"] = self.teacher.identity()
        if stage is Stage.FINETUNE:
            parts["starts_from"] = self.stage_fingerprint(Stage.KD)
        self._fingerprints[stage] = {name: json_digest(value) for name, value in parts.items()}
        return self._fingerprints[stage]

    def train(self, stage: Stage | str, resume: bool = True) -> StageSummary:
        """Run `stage`: `"kd"` (a new student on teacher logits), `"finetune"` (the KD student on gold labels) or
        `"scratch"` (the paper's baseline: a new student on gold labels only).

        A finished stage is reused, and an unfinished one resumed, only if it was trained from the same inputs
        (`stage_fingerprint`); otherwise its folder is cleared and it is trained again, with a warning naming what
        changed.
        """
        stage = Stage(stage)
        stage_dir = self.stage_dir(stage)
        self.tokenizer()
        fingerprint = self.stage_fingerprint(stage)
        inputs_file = stage_dir / STAGE_INPUTS
        recorded = json.loads(inputs_file.read_text()) if inputs_file.exists() else None
        finished = recorded == fingerprint and stage_finished(stage_dir)
        stale = stage_dir.exists() and recorded != fingerprint
        self.state.wait_for_everyone()  # every process decides before the main one changes the folder
        if finished:
            logger.info("stage %s already finished in %s", stage.value, stage_dir)
            return StageSummary.load(stage_dir / TRAINER_STATE)
        if stale:
            changed = sorted(k for k in fingerprint if (recorded or {}).get(k) != fingerprint[k])
            logger.warning(
                "stage %s in %s was trained from other inputs (changed: %s): training it again",
                stage.value, stage_dir, ", ".join(changed),
            )  # fmt: skip
            if self.state.is_main_process:
                shutil.rmtree(stage_dir)
        if stage is Stage.FINETUNE:
            kd_inputs = self.stage_dir(Stage.KD) / STAGE_INPUTS
            if not kd_inputs.exists() or json.loads(kd_inputs.read_text()) != self.stage_fingerprint(Stage.KD):
                raise RuntimeError("fine-tuning starts from the KD student of these inputs: train the kd stage first")
        if self.state.is_main_process:
            stage_dir.mkdir(parents=True, exist_ok=True)
            inputs_file.write_text(json.dumps(fingerprint, indent=2))
        self.state.wait_for_everyone()
        data, model = self.stage_inputs(stage)
        start = time.perf_counter()
        recipe = self.recipe
        trainer = StageTrainer(
            model,
            self.tokenizer(),
            data,
            self.eval_data("select"),
            self.stage_config(stage),
            stage_dir,
            mixed_precision=recipe.mixed_precision,
            report_to=recipe.report_to,
            seed=recipe.seed,
        )
        summary = trainer.train(resume=resume)
        self._timed(f"train_{stage.value}", start)
        return summary

    # 5. everything
    def run(self, stages: tuple[Stage | str, ...] | None = None) -> DistillationResults:
        """All steps; `stages` defaults to the enabled ones among scratch (baseline), KD and fine-tuning.

        Each stage keeps its best checkpoint on the selection split, and the student kept is the better of KD and
        KD+FT there; then every kept student and the teacher are measured once on dev, the report split. Returns
        (and saves) the results.
        """
        start = time.perf_counter()
        stages = tuple(Stage(s) for s in stages) if stages else tuple(s for s in STAGES if self.stage_config(s).enabled)
        candidates = [s for s in CANDIDATE_STAGES if s in stages]
        if not candidates:
            raise ValueError("nothing to distil: enable the kd stage (and optionally finetune)")
        data = self.data()
        self.tokenizer()
        self.teacher_logits("kd")
        selection = {"teacher": self.teacher_metrics("select")}
        for stage in stages:
            self.train(stage)
            selection[stage.value] = Metrics.from_dict(
                json.loads((self.stage_dir(stage) / BEST / EVAL_RESULTS).read_text())
            )
        chosen = max(candidates, key=lambda s: selection[s.value].score)
        results = DistillationResults(
            task=self.recipe.task,
            report_split="dev",
            selection_split=self._selection_description(),
            teacher=TeacherResult(self.recipe.teacher.model, str(self.teacher.dtype), self.teacher_metrics("dev")),
            stages={stage.value: self.report_metrics(stage) for stage in stages},
            selection=selection,
            student_stage=chosen.value,
            student_dir=str(self.output_dir / STUDENT_DIR),
            data=data.corpus.report,
            vocab_size=self.tokenizer().vocab_size,
            avg_ngrams=float(self.eval_data("dev").encoded.lengths.mean()),
            timings_s=self.timings,
        )
        self._timed("total", start)
        if self.state.is_main_process:
            results.speed = self._measure_speed(self.stage_dir(chosen) / BEST)
            (self.output_dir / RECIPE_FILE).write_text(json.dumps(self.recipe.to_dict(), indent=2))
            target = self.output_dir / STUDENT_DIR
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(self.stage_dir(chosen) / BEST, target)
            results.calibration = self._calibrate(target)
            results.save(self.output_dir / RESULTS_FILE)
        self.state.wait_for_everyone()
        return results

    def _calibrate(self, student_dir: Path) -> CalibrationResult | None:
        """Fit the kept student's temperature and choose its cascade threshold on the selection split (both written
        into `student_dir`), then measure calibration on the report split. Single-label students only (None
        otherwise)."""
        model = SparseDANForSequenceClassification.from_pretrained(student_dir).eval()
        if model.config.problem_type not in (None, "single_label_classification"):
            return None
        selection, report = self.eval_data("select"), self.eval_data("dev")
        calibration = calibrate_logits(
            predict_logits(model, selection.encoded), selection.teacher_logits, selection.labels,
            selection.encoded.example_lengths, "the selection split", self.recipe.cascade_target_retention,
        )  # fmt: skip
        calibration.save(student_dir)
        write_to_config(student_dir, calibration)
        logits = predict_logits(model, report.encoded)
        raw, scaled = softmax(logits), softmax(logits / calibration.temperature)
        teacher = softmax(report.teacher_logits)
        return CalibrationResult(
            temperature=calibration.temperature, threshold=calibration.threshold,
            target_retention=calibration.target_retention,
            selection_teacher_call_rate=calibration.chosen.teacher_call_rate,
            selection_accuracy=calibration.chosen.accuracy,
            student_ece=ece(scaled, report.labels), student_nll=nll(scaled, report.labels),
            student_ece_before=ece(raw, report.labels), student_nll_before=nll(raw, report.labels),
            teacher_ece=ece(teacher, report.labels), teacher_nll=nll(teacher, report.labels),
        )  # fmt: skip

    def _selection_description(self) -> str:
        config = self.recipe.data
        source = config.select.path if config.select is not None else "the train split"
        removed = "they and the word runs found only inside them" if config.select_drop_subtexts else "they"
        return (
            f"the selection split ({len(self.data().select):,} texts drawn from {source} with seed "
            f"{config.select_seed}; {removed} are left out of the training data)"
        )

    def _measure_speed(self, student_dir: Path) -> SpeedResult:
        """Student (batch 256) and teacher (batch `teacher.batch_size`) throughput on the dev texts. The teacher is
        timed as it would serve, `batch_size` texts per call, also where it labelled with `batch_tokens`."""
        dev = self.data().dev
        texts = dev.texts if dev.pairs is None else list(zip(dev.texts, dev.pairs))
        teacher = self.teacher
        if self.recipe.teacher.batch_tokens is not None:
            teacher = Teacher(replace(self.recipe.teacher, batch_tokens=None), self.state)
        return compare_speed(
            student_dir,
            teacher.predict,
            texts,
            self.recipe.teacher.batch_size,
            str(self.teacher.dtype),
            f"{self.recipe.task} dev ({len(texts)} texts)",
            min_seconds=self.recipe.speed_seconds,
        )
