"""The model card of a student: one typed dataclass holds what the card shows (as setfit's `SetFitModelCardData`);
its metadata becomes the card's YAML header, the rest fills the template in `model_cards/template.md`."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import CardData, EvalResult, ModelCard, ModelCardData

from ..calibration import Calibration
from ..compression import CompressionReport
from ..models.sparse_dan import SparseDANForSequenceClassification, SparseDANTokenizer
from ..models.sparse_dan.tokenization_sparse_dan import DEFAULT_TOKEN_PATTERN
from ..results import CANDIDATE_STAGES, STAGES, DistillationResults

TAGS = ["sparse-distillation", "dan", "custom_code", "text-classification", "hf-sparse-distill"]
EXAMPLE_TEXT = "A gripping, beautifully acted film."
# Hyper-parameters of each training stage shown on the card, in this order.
STAGE_SETTINGS = (
    "epochs",
    "batch_size",
    "learning_rate",
    "embedding_learning_rate",
    "temperature",
    "alpha",
    "weight_decay",
    "warmup_ratio",
)


def _human(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}"


def teacher_hub_id(recipe: dict[str, Any]) -> str | None:
    """The teacher's Hub id: the recipe's `teacher.hub_id`, else `teacher.model` when it looks like a Hub id and is
    not a local folder."""
    teacher = recipe.get("teacher", {})
    if teacher.get("hub_id"):
        return teacher["hub_id"]
    model = teacher.get("model")
    return model if model and not Path(model).exists() and model.count("/") == 1 else None


@dataclass
class SparseDANModelCardData(CardData):
    """Everything the model card of a student shows.

    Args:
        repo_id: The student's Hub repository (`org/name`).
        model_facts: Shape and size of the student, from `model_facts`.
        results: The distillation run's results (accuracy table, speed), when the student comes from a run.
        recipe: The run's recipe (`recipe.json`): teacher, data set ids, license, language, word pattern, settings.
        fp16_embeddings: Whether the uploaded table is stored in float16.
        plot_file: File name of the speed-vs-accuracy plot uploaded with the card, if any.
        calibration: The student's calibration and cascade threshold (`calibration.json`), if calibrated.
        cascade_plot_file: File name of the teacher-fallback curve uploaded with the card, if any.
        top_ngrams: The strongest n-grams of each label (see `strongest_ngrams`).
        compression: What `compress` did, for a compressed student (`results` then describe the run of the
            student it was made from).
    """

    repo_id: str
    model_facts: dict[str, Any]
    results: DistillationResults | None = None
    recipe: dict[str, Any] = field(default_factory=dict)
    fp16_embeddings: bool = False
    plot_file: str | None = None
    calibration: Calibration | None = None
    cascade_plot_file: str | None = None
    top_ngrams: dict[str, list[str]] = field(default_factory=dict)
    compression: CompressionReport | None = None

    @property
    def model_name(self) -> str:
        """The repository name, the card's title."""
        return self.repo_id.split("/")[-1]

    @property
    def task(self) -> str:
        """The task's name (from the results or the recipe)."""
        return (self.results.task if self.results else None) or self.recipe.get("task") or "text classification"

    def metadata(self) -> ModelCardData:
        """The YAML header: base model = teacher, datasets, tags and the student's metrics as `model-index`."""
        datasets = self.recipe.get("dataset_ids") or None
        eval_results = []
        if self.results is not None:
            dataset_id = datasets[0] if datasets else self.task
            student = self.results.student
            if student.pearson is not None:
                measured = [
                    (student.pearson, "pearsonr", "Pearson", None),
                    (student.spearman, "spearmanr", "Spearman", None),
                ]
            elif student.micro_f1 is not None:
                measured = [
                    (student.micro_f1, "f1", "Micro F1", "micro"),
                    (student.macro_f1, "f1", "Macro F1", "macro"),
                ]
            else:
                measured = [
                    (student.accuracy, "accuracy", "Accuracy", None),
                    (student.macro_f1, "f1", "Macro F1", "macro"),
                ]
            if self.compression is not None:  # the run measured the uncompressed student
                evaluation = self.compression.evaluation
                measured = [(evaluation["accuracy"], "accuracy", "Accuracy", None)] if evaluation else []
            for value, metric_type, name, config in measured:
                eval_results.append(
                    EvalResult(
                        task_type="text-classification",
                        dataset_type=dataset_id,
                        dataset_name=dataset_id,
                        dataset_split="validation",
                        metric_type=metric_type,
                        metric_name=name,
                        metric_value=round(value, 4),
                        metric_config=config,
                    )
                )
        return ModelCardData(
            language=self.recipe.get("language"),
            license=self.recipe.get("license"),
            library_name="transformers",
            pipeline_tag="text-classification",
            tags=TAGS,
            base_model=teacher_hub_id(self.recipe),
            datasets=datasets,
            model_name=self.model_name,
            eval_results=eval_results or None,
        )

    def to_dict(self) -> dict[str, Any]:
        """The metadata as a dict (what `CardData.to_yaml` writes into the header)."""
        return self.metadata().to_dict()

    def template_variables(self) -> dict[str, Any]:
        """The values the card template uses, every number taken from `results` or from the model itself."""
        facts, results, recipe = self.model_facts, self.results, self.recipe
        teacher_id = teacher_hub_id(recipe)
        teacher_name = teacher_id or Path(recipe.get("teacher", {}).get("model", "teacher")).name
        if teacher_id:
            teacher_text = f"[{teacher_id}](https://huggingface.co/{teacher_id})"
        elif recipe.get("teacher"):
            teacher_text = f"`{teacher_name}`, a fine-tuned transformer loaded from a local folder (not on the Hub)"
        else:
            teacher_text = "a fine-tuned transformer"
        rows, speed = [], None
        if results is not None:
            rows.append({"name": f"teacher ({teacher_name})", "metrics": results.teacher.metrics})
            for stage in STAGES:
                if stage.value in results.stages:
                    this = " ← the run's student" if self.compression else " ← this model"
                    chosen = this if results.student_stage == stage.value else ""
                    rows.append({"name": stage.display_name + chosen, "metrics": results.stages[stage.value]})
            speed = results.speed if self.compression is None else None  # measured on the uncompressed student
        avg_ngrams = results.avg_ngrams if results else None
        dense = facts["dense_params"]
        return dict(
            model_name=self.model_name,
            repo_id=self.repo_id,
            task_description=self.task,
            vocab_size_text=_human(facts["vocab_size"] - 1),
            ngram_range=facts["ngram_range"],
            teacher_text=teacher_text,
            total_params_text=_human(facts["sparse_params"] + dense),
            sparse_params_text=_human(facts["sparse_params"]),
            dense_params_text=_human(dense),
            active_params_text=_human(avg_ngrams * facts["embed_dim"] + dense) if avg_ngrams else "n/a",
            avg_ngrams_text=f"{avg_ngrams:.1f}" if avg_ngrams else "n/a",
            speedup_text=f"{speed.speedup:,.0f}× faster" if speed else "much faster",
            pooling=facts["pooling"],
            head_text=" → ".join(f"{d} ({facts['activation']})" for d in facts["hidden_dims"]) or "linear",
            num_labels=facts["num_labels"],
            embed_dim=facts["embed_dim"],
            max_ngrams=facts["max_ngrams"],
            tokenization_text=self._tokenization_text(),
            fp16_embeddings=self.fp16_embeddings,
            eval_split_text=f"the {self.task} {results.report_split if results else 'dev'} split",
            selection_text=results.selection_split if results else None,
            eval_size=results.student.num_examples if results else "?",
            result_rows=rows,
            teacher_accuracy=results.teacher.metrics.score if results else 1.0,
            score_name=results.teacher.metrics.score_name if results else "accuracy",
            second_name=results.teacher.metrics.second_name if results else "macro-F1",
            speed=speed,
            plot_file=self.plot_file,
            calibration=self.calibration,
            report_calibration=results.calibration if results else None,
            cascade_plot_file=self.cascade_plot_file,
            top_ngrams=self.top_ngrams,
            compression=self.compression,
            example_text=EXAMPLE_TEXT,
            pair_mode=facts["pair_mode"],
            pair_overlap=facts["pair_overlap"],
            training_text=self._training_text(),
            hyperparameters=self._hyperparameters(),
        )

    def _tokenization_text(self) -> str:
        vocab = self.recipe.get("vocab", {})
        pattern = vocab.get("token_pattern", DEFAULT_TOKEN_PATTERN)
        cell_pattern = pattern.replace("|", "\\|")  # a bare | would split the markdown table cell
        words = (
            "words of 2+ word characters" if pattern == DEFAULT_TOKEN_PATTERN else f"words matching `{cell_pattern}`"
        )
        return ("lower-cased, " if vocab.get("lowercase", True) else "case kept, ") + words

    def _training_text(self) -> str:
        if self.results is None:
            return "See the distillation recipe for the data and settings."
        data = self.results.data
        return (
            f"Teacher logits on {data.kd_total:,} texts ({data.train:,} labeled train texts and "
            f"{data.unlabeled_kept:,} unlabeled texts, after removing {data.unlabeled_removed_eval_overlap:,} "
            "unlabeled texts equal to evaluation texts); the student learns the teacher's output distribution "
            "(KL divergence), then is optionally fine-tuned on the gold labels."
        )

    def _hyperparameters(self) -> list[tuple[str, Any]]:
        trained = [s.value for s in CANDIDATE_STAGES if self.results and s.value in self.results.stages]
        rows = [
            (f"{stage}.{key}", self.recipe.get(stage, {})[key])
            for stage in trained
            for key in STAGE_SETTINGS
            if self.recipe.get(stage, {}).get(key) is not None
        ]
        return rows + [
            ("feature dropout", self.model_facts["feature_dropout"]),
            ("classifier dropout", self.model_facts["classifier_dropout"]),
            ("optimizer", "SparseAdam (table, no weight decay) + AdamW (head), one linear warm-up/decay schedule"),
        ]


def strongest_ngrams(
    model: SparseDANForSequenceClassification, tokenizer: SparseDANTokenizer, among: int = 50_000, top: int = 10
) -> dict[str, list[str]]:
    """For each label, the `top` n-grams that give it the highest probability on their own (one n-gram per text),
    among the `among` most frequent n-grams (the vocabulary is in frequency order). Empty for a sentence-pair
    student, whose labels depend on how two texts relate, not on one n-gram."""
    if model.config.pair_mode:
        return {}
    ids = torch.arange(1, min(among, model.config.vocab_size - 1) + 1)
    with torch.inference_mode():
        probs = torch.softmax(model(input_ids=ids, offsets=torch.arange(len(ids))).logits.float(), dim=-1)
    best = {}
    for label_id, name in model.config.id2label.items():
        rows = torch.argsort(probs[:, int(label_id)], descending=True)[:top]
        best[name] = tokenizer.convert_ids_to_tokens(ids[rows].tolist())
    return best


def model_facts(model: SparseDANForSequenceClassification) -> dict[str, Any]:
    """Shape and parameter counts of a student, as the card shows them."""
    config = model.config
    sparse = model.get_input_embeddings().weight.numel()
    return {
        "vocab_size": config.vocab_size,
        "ngram_range": list(config.ngram_range),
        "embed_dim": config.embed_dim,
        "hidden_dims": list(config.hidden_dims),
        "activation": config.activation,
        "pooling": config.pooling,
        "num_labels": config.num_labels,
        "pair_mode": config.pair_mode,
        "pair_overlap": config.pair_overlap,
        "max_ngrams": config.max_ngrams,
        "feature_dropout": config.feature_dropout,
        "classifier_dropout": config.classifier_dropout,
        "sparse_params": sparse,
        "dense_params": sum(p.numel() for p in model.parameters()) - sparse,
    }


def build_model_card(card_data: SparseDANModelCardData) -> ModelCard:
    """Render the card: the YAML header from the metadata, the body from the template in `model_cards/`."""
    template = files("hf_sparse_distill.model_cards") / "template.md"
    return ModelCard.from_template(
        card_data, template_str=template.read_text(encoding="utf-8"), **card_data.template_variables()
    )
