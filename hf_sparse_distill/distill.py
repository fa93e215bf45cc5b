"""The sparse distillation pipeline, step by step (each step is also a CLI command):

1. data: read train / dev / test / unlabeled, remove evaluation texts from the unlabeled corpus;
2. vocab: top-K n-grams of train ∪ unlabeled → the student's tokenizer;
3. label: teacher logits for the KD corpus and the dev set (cached, resumable);
4. train: KD on teacher logits, then optional fine-tuning on gold labels (and the from-scratch baseline);
5. the best student is saved with its tokenizer, code and results.

Every step reuses what an earlier (possibly interrupted) run left in `output_dir`.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import PartialState

from .augment import augment_texts
from .configuration_sparse_dan import SparseDANConfig
from .data import KDCorpus, TextSet, build_kd_corpus, load_splits
from .distributed import process_state
from .encoding import encode_texts
from .evaluate import classification_metrics
from .modeling_sparse_dan import SparseDANForSequenceClassification
from .recipe import Recipe, StageConfig
from .speed import machine_description, throughput
from .teacher import Teacher, corpus_fingerprint
from .tokenization_sparse_dan import SparseDANTokenizer
from .train import BEST, EvalData, StageData, train_stage
from .vocab import Analyzer, build_vocabulary

logger = logging.getLogger(__name__)

STAGES = ("scratch", "kd", "finetune")


@dataclass
class PreparedData:
    """The KD corpus (train first, then unlabeled) and the labeled evaluation splits."""

    corpus: KDCorpus
    train: TextSet
    dev: TextSet
    test: TextSet | None


class Distiller:
    """Runs the steps of a recipe, each reusing what is already in `recipe.output_dir`."""

    def __init__(self, recipe: Recipe, state: PartialState | None = None):
        self.recipe = recipe
        self.state = state or process_state()
        self.output_dir = Path(recipe.output_dir)
        self.timings: dict[str, float] = {}
        self._teacher: Teacher | None = None
        self._data: PreparedData | None = None
        self._tokenizer: SparseDANTokenizer | None = None
        self._logits: dict[str, np.ndarray] = {}
        self._eval: EvalData | None = None

    @property
    def teacher(self) -> Teacher:
        if self._teacher is None:
            self._teacher = Teacher(self.recipe.teacher, self.state)
        return self._teacher

    def _timed(self, name: str, start: float) -> None:
        self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - start, 2)

    # 1. data
    def data(self) -> PreparedData:
        if self._data is None:
            start = time.perf_counter()
            label2id = {name: i for i, name in self.teacher.id2label.items()}
            with self.state.main_process_first():
                splits = load_splits(self.recipe.data, label2id)
            train, dev = splits["train"], splits["dev"]
            unlabeled = list(splits["unlabeled"])
            if self.recipe.augment.enabled:
                unlabeled.append(TextSet(augment_texts(train.texts, self.recipe.augment)))
            labeled = {"train": train, "dev": dev, **({"test": splits["test"]} if "test" in splits else {})}
            evaluation = [split for name, split in labeled.items() if name != "train"]
            for name, split in labeled.items():
                if split.labels is not None and max(split.labels, default=0) >= self.teacher.num_labels:
                    raise ValueError(
                        f"{name} has label {max(split.labels)} but the teacher has {self.teacher.num_labels} labels"
                    )
            corpus = build_kd_corpus(train, unlabeled, evaluation, self.recipe.data.include_train_in_kd)
            if self.recipe.augment.enabled:
                corpus.report["augmented_generated"] = len(unlabeled[-1])
            self._data = PreparedData(corpus, train, dev, splits.get("test"))
            if self.state.is_main_process:
                self.output_dir.mkdir(parents=True, exist_ok=True)
                (self.output_dir / "data_report.json").write_text(json.dumps(corpus.report, indent=2))
            self._timed("data", start)
        return self._data

    # 2. vocabulary
    def tokenizer(self) -> SparseDANTokenizer:
        if self._tokenizer is None:
            folder = self.output_dir / "tokenizer"
            texts = self.data().corpus.texts
            vocab = self.recipe.vocab
            settings = {**asdict(vocab), "corpus": corpus_fingerprint(texts)}
            settings.pop("num_workers")
            stamp = folder / "vocab_settings.json"
            if self.state.is_main_process and not (stamp.exists() and json.loads(stamp.read_text()) == settings):
                start = time.perf_counter()
                analyzer = Analyzer(tuple(vocab.ngram_range), vocab.lowercase, vocab.token_pattern)
                ngrams = build_vocabulary(
                    texts, vocab.size, analyzer, min_count=vocab.min_count, num_workers=vocab.num_workers,
                    num_partitions=vocab.num_partitions, total=len(texts),
                )
                tokenizer = SparseDANTokenizer.from_ngrams(
                    ngrams, ngram_range=vocab.ngram_range, lowercase=vocab.lowercase,
                    token_pattern=vocab.token_pattern, model_max_length=self.recipe.student.max_ngrams,
                )
                shutil.rmtree(folder, ignore_errors=True)
                tokenizer.save_pretrained(folder)
                stamp.write_text(json.dumps(settings, indent=2))
                self._timed("vocab", start)
            self.state.wait_for_everyone()
            self._tokenizer = SparseDANTokenizer.from_pretrained(folder)
        return self._tokenizer

    # 3. teacher labels
    def teacher_logits(self, split: str) -> np.ndarray:
        """Teacher logits of `"kd"` (the KD corpus) or `"dev"` / `"test"`."""
        if split not in self._logits:
            start = time.perf_counter()
            data = self.data()
            texts = {"kd": data.corpus.texts, "dev": data.dev.texts, "test": data.test and data.test.texts}.get(split)
            if texts is None:
                raise ValueError(f"no split {split!r} to label")
            self._logits[split] = self.teacher.label(texts, self.recipe.cache_path)
            self._timed(f"label_{split}", start)
        return self._logits[split]

    def teacher_metrics(self) -> dict:
        data = self.data()
        metrics = classification_metrics(self.teacher_logits("dev"), np.asarray(data.dev.labels), self.teacher.id2label)
        metrics["dtype"] = str(self.teacher.dtype)
        return metrics

    # 4. training
    def _eval_data(self) -> EvalData:
        """The dev set, encoded once, with its gold labels and the teacher's logits."""
        if self._eval is None:
            data = self.data()
            encoded = encode_texts(self.tokenizer(), data.dev.texts, self.recipe.student.max_ngrams, show_progress=False)
            self._eval = EvalData(encoded, np.asarray(data.dev.labels), self.teacher_logits("dev"))
        return self._eval

    def _new_student(self) -> SparseDANForSequenceClassification:
        student = self.recipe.student
        id2label = self.teacher.id2label
        config = SparseDANConfig(
            vocab_size=self.tokenizer().vocab_size,
            embed_dim=student.embed_dim,
            hidden_dims=student.hidden_dims,
            activation=student.activation,
            pooling=student.pooling,
            feature_dropout=student.feature_dropout,
            classifier_dropout=student.classifier_dropout,
            max_ngrams=student.max_ngrams,
            ngram_range=self.recipe.vocab.ngram_range,
            embedding_init_std=student.embedding_init_std,
            initializer_range=student.initializer_range,
            id2label=id2label,
            label2id={name: i for i, name in id2label.items()},
            problem_type=getattr(self.teacher.model_config, "problem_type", None),
            pad_token_id=self.tokenizer().pad_token_id,
        )
        torch.manual_seed(self.recipe.seed)
        return SparseDANForSequenceClassification(config)

    def stage_config(self, name: str) -> StageConfig:
        return {"scratch": self.recipe.scratch, "kd": self.recipe.kd, "finetune": self.recipe.finetune}[name]

    def train(self, name: str, resume: bool = True) -> dict:
        """Run stage `name`: `"kd"` (student from scratch on teacher logits), `"finetune"` (the KD student on
        gold labels) or `"scratch"` (the paper's baseline: a new student on gold labels only)."""
        if name not in STAGES:
            raise ValueError(f"unknown stage {name!r}; stages are {STAGES}")
        stage_dir = self.output_dir / name
        done = stage_dir / "trainer_state.json"
        if done.exists() and (stage_dir / BEST).exists():
            logger.info("stage %s already finished in %s", name, stage_dir)
            return json.loads(done.read_text())
        data = self.data()
        stage = self.stage_config(name)
        tokenizer = self.tokenizer()
        if name == "kd":
            texts, labels, logits = data.corpus.texts, np.asarray(data.corpus.labels), self.teacher_logits("kd")
            model = self._new_student()
        else:
            texts, labels, logits = data.train.texts, np.asarray(data.train.labels), None
            if stage.alpha > 0:
                logits = self.teacher_logits("kd")[: data.corpus.num_train]
                if data.corpus.num_train != len(texts):
                    raise ValueError("fine-tuning with alpha > 0 needs the train set inside the KD corpus")
            if name == "finetune":
                kd_best = self.output_dir / "kd" / BEST
                if not kd_best.exists():
                    raise FileNotFoundError(f"fine-tuning starts from the KD student, but {kd_best} does not exist")
                model = SparseDANForSequenceClassification.from_pretrained(kd_best)
            else:
                model = self._new_student()
        start = time.perf_counter()
        encoded = encode_texts(tokenizer, texts, self.recipe.student.max_ngrams, desc=f"encoding {name} texts")
        summary = train_stage(
            model, tokenizer, StageData(encoded, logits, labels), self._eval_data(), stage, stage_dir,
            mixed_precision=self.recipe.mixed_precision, report_to=self.recipe.report_to, seed=self.recipe.seed,
            resume=resume,
        )
        self._timed(f"train_{name}", start)
        return summary

    # 5. everything
    def run(self, stages: tuple[str, ...] | None = None) -> dict:
        """All steps; `stages` defaults to the enabled ones among scratch (baseline), KD and fine-tuning.
        The student kept is the better of KD and KD+FT on dev. Returns (and saves) the results."""
        start = time.perf_counter()
        stages = stages or tuple(s for s in STAGES if self.stage_config(s).enabled)
        candidates = [s for s in ("kd", "finetune") if s in stages]
        if not candidates:
            raise ValueError("nothing to distil: enable the kd stage (and optionally finetune)")
        results: dict = {"task": self.recipe.task, "teacher": {"model": self.recipe.teacher.model}}
        results["data"] = self.data().corpus.report
        self.tokenizer()
        self.teacher_logits("kd")
        results["teacher"].update(self.teacher_metrics())
        results["vocab_size"] = self.tokenizer().vocab_size
        results["avg_ngrams_dev"] = float(self._eval_data().encoded.lengths.mean())
        for name in stages:
            results[name] = self.train(name)["best_metrics"]
        chosen = max(candidates, key=lambda s: results[s]["accuracy"])
        final = self.output_dir / chosen / BEST
        results["student"] = {"source": chosen}
        results["student"].update(json.loads((final / "eval_results.json").read_text()))
        results["retention"] = results["student"]["accuracy"] / results["teacher"]["accuracy"]
        self._timed("total", start)
        results["speed"] = self.measure_speed(final) if self.state.is_main_process else {}
        results["timings_s"] = self.timings
        if self.state.is_main_process:
            (self.output_dir / "recipe.json").write_text(json.dumps(self.recipe.to_dict(), indent=2))
            target = self.output_dir / "student"
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(final, target)
            (self.output_dir / "results.json").write_text(json.dumps(results, indent=2))
        self.state.wait_for_everyone()
        return results

    def measure_speed(self, student_dir: Path) -> dict:
        """Throughput on the dev texts, tokenization included: the student through its batched API (batch 256)
        and the teacher as configured for labelling (batch `teacher.batch_size`), same machine, same run."""
        texts = self.data().dev.texts
        model = SparseDANForSequenceClassification.from_pretrained(student_dir).eval()
        tokenizer = SparseDANTokenizer.from_pretrained(student_dir)

        def student(batch: list[str]) -> None:
            with torch.inference_mode():
                model(**tokenizer.encode_bags(batch))

        seconds = self.recipe.speed_seconds
        student_speed = throughput(student, texts, batch_size=256, min_seconds=seconds)
        teacher_speed = throughput(self.teacher.predict, texts, self.recipe.teacher.batch_size, min_seconds=seconds)
        return {
            "machine": machine_description(),
            "texts": f"{self.recipe.task} dev ({len(texts)} texts)",
            "student_texts_per_s": round(student_speed, 1),
            "student_batch_size": 256,
            "teacher_texts_per_s": round(teacher_speed, 1),
            "teacher_batch_size": self.recipe.teacher.batch_size,
            "teacher_dtype": str(self.teacher.dtype),
            "speedup": round(student_speed / teacher_speed, 1),
        }


def results_table(results: dict) -> str:
    """Markdown table: teacher and each trained student on the dev set."""
    rows = [("teacher", results["teacher"])]
    names = {"scratch": "DAN (from scratch)", "kd": "DAN (KD)", "finetune": "DAN (KD+FT)"}
    rows += [(names[s], results[s]) for s in STAGES if s in results]
    teacher_acc = results["teacher"]["accuracy"]
    lines = ["| model | dev accuracy | macro-F1 | % of teacher |", "|---|---|---|---|"]
    for name, metrics in rows:
        lines.append(
            f"| {name} | {metrics['accuracy']:.4f} | {metrics['macro_f1']:.4f} | {100 * metrics['accuracy'] / teacher_acc:.1f}% |"
        )
    return "\n".join(lines)
