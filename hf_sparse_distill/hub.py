"""Publishing a student: one folder (weights, tokenizer, remote code, model card, plot) uploaded in one commit.

`transformers`' own `push_to_hub` replaces README.md with a generic card, so the folder is assembled here and sent
with `HfApi.upload_folder`, as model2vec and sentence-transformers do.
"""

from __future__ import annotations

import json
import logging
import tempfile
from importlib.resources import files
from pathlib import Path

import torch
from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData

from .modeling_sparse_dan import SparseDANForSequenceClassification
from .plotting import speed_accuracy_plot
from .tokenization_sparse_dan import DEFAULT_TOKEN_PATTERN, SparseDANTokenizer

logger = logging.getLogger(__name__)

PLOT_FILE = "speed_accuracy.png"
TAGS = ["sparse-distillation", "dan", "custom_code", "text-classification", "hf-sparse-distill"]
_STAGE_NAMES = {"scratch": "DAN from scratch (gold labels only)", "kd": "DAN (KD)", "finetune": "DAN (KD+FT)"}


def _human(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}"


def _load_json(path: Path | None) -> dict:
    return json.loads(path.read_text()) if path is not None and path.exists() else {}


def _teacher_hub_id(recipe: dict) -> str | None:
    teacher = recipe.get("teacher", {})
    if teacher.get("hub_id"):
        return teacher["hub_id"]
    model = teacher.get("model")
    return model if model and not Path(model).exists() and model.count("/") == 1 else None


def build_model_card(
    model: SparseDANForSequenceClassification,
    repo_id: str,
    results: dict | None = None,
    recipe: dict | None = None,
    fp16_embeddings: bool = False,
    plot_file: str | None = None,
) -> ModelCard:
    """The model card: metadata (base model = teacher, datasets, metrics as model-index) and a body whose every
    number comes from `results` (the `results.json` of a distillation run) or from the model itself."""
    results, recipe = results or {}, recipe or {}
    config = model.config
    table = model.get_input_embeddings().weight
    sparse_params = table.numel()
    dense_params = sum(p.numel() for p in model.parameters()) - sparse_params
    avg_ngrams = results.get("avg_ngrams_dev")
    teacher_id = _teacher_hub_id(recipe)
    task = results.get("task") or recipe.get("task") or "text classification"
    datasets = recipe.get("dataset_ids") or None
    eval_results = []
    student = results.get("student")
    if student:
        dataset_id = datasets[0] if datasets else task
        for metric, name in (("accuracy", "Accuracy"), ("macro_f1", "Macro F1")):
            eval_results.append(
                EvalResult(
                    task_type="text-classification", dataset_type=dataset_id, dataset_name=dataset_id,
                    dataset_split="validation", metric_type="f1" if metric == "macro_f1" else metric,
                    metric_name=name, metric_value=round(student[metric], 4),
                    metric_config="macro" if metric == "macro_f1" else None,
                )
            )
    card_data = ModelCardData(
        language=recipe.get("language"),
        license=recipe.get("license"),
        library_name="transformers",
        pipeline_tag="text-classification",
        tags=TAGS,
        base_model=teacher_id,
        datasets=datasets,
        model_name=repo_id.split("/")[-1],
        eval_results=eval_results or None,
    )
    teacher_name = teacher_id or Path(recipe.get("teacher", {}).get("model", "teacher")).name
    if teacher_id:
        teacher_text = f"[{teacher_id}](https://huggingface.co/{teacher_id})"
    elif recipe.get("teacher"):
        teacher_text = f"`{teacher_name}`, a fine-tuned transformer loaded from a local folder (not on the Hub)"
    else:
        teacher_text = "a fine-tuned transformer"
    rows = []
    if "teacher" in results:
        rows.append({"name": f"teacher ({teacher_name})", **results["teacher"]})
    for stage in ("scratch", "kd", "finetune"):
        if stage in results:
            chosen = " ← this model" if student and student.get("source") == stage else ""
            rows.append({"name": _STAGE_NAMES[stage] + chosen, **results[stage]})
    speed = results.get("speed") or None
    stages = [s for s in ("kd", "finetune") if s in results]
    hyperparameters = []
    for stage in stages:
        settings = recipe.get(stage, {})
        for key in ("epochs", "batch_size", "learning_rate", "embedding_learning_rate", "temperature", "alpha",
                    "weight_decay", "warmup_ratio"):
            if settings.get(key) is not None:
                hyperparameters.append((f"{stage}.{key}", settings[key]))
    hyperparameters += [
        ("feature dropout", config.feature_dropout), ("classifier dropout", config.classifier_dropout),
        ("optimizer", "SparseAdam (table, no weight decay) + AdamW (head), one linear warm-up/decay schedule"),
    ]
    data = results.get("data", {})
    training_text = (
        f"Teacher logits on {data.get('kd_total', 0):,} texts ({data.get('train', 0):,} labeled train texts and "
        f"{data.get('unlabeled_kept', 0):,} unlabeled texts, after removing {data.get('unlabeled_removed_eval_overlap', 0):,} "
        "unlabeled texts equal to evaluation texts); the student learns the teacher's output distribution "
        "(KL divergence), then is optionally fine-tuned on the gold labels."
        if data else "See the distillation recipe for the data and settings."
    )
    teacher_accuracy = results.get("teacher", {}).get("accuracy", 1.0)
    vocab = recipe.get("vocab", {})
    token_pattern = vocab.get("token_pattern", DEFAULT_TOKEN_PATTERN)
    table_cell_pattern = token_pattern.replace("|", "\\|")  # a bare | would split the markdown table cell
    words = "words of 2+ word characters" if token_pattern == DEFAULT_TOKEN_PATTERN else f"words matching `{table_cell_pattern}`"
    tokenization_text = ("lower-cased, " if vocab.get("lowercase", True) else "case kept, ") + words
    variables = dict(
        model_name=repo_id.split("/")[-1],
        repo_id=repo_id,
        task_description=task,
        vocab_size_text=_human(config.vocab_size - 1),
        ngram_range=config.ngram_range,
        teacher_text=teacher_text,
        total_params_text=_human(sparse_params + dense_params),
        sparse_params_text=_human(sparse_params),
        dense_params_text=_human(dense_params),
        active_params_text=_human(avg_ngrams * config.embed_dim + dense_params) if avg_ngrams else "n/a",
        avg_ngrams_text=f"{avg_ngrams:.1f}" if avg_ngrams else "n/a",
        speedup_text=f"{speed['speedup']:,.0f}× faster" if speed else "much faster",
        pooling=config.pooling,
        head_text=" → ".join(f"{d} ({config.activation})" for d in config.hidden_dims) or "linear",
        num_labels=config.num_labels,
        embed_dim=config.embed_dim,
        max_ngrams=config.max_ngrams,
        tokenization_text=tokenization_text,
        fp16_embeddings=fp16_embeddings or table.dtype == torch.float16,
        eval_split_text=f"the {task} dev split",
        eval_size=(student or {}).get("num_examples", "?"),
        result_rows=rows,
        teacher_accuracy=teacher_accuracy,
        speed=speed,
        plot_file=plot_file,
        example_text="A gripping, beautifully acted film.",
        training_text=training_text,
        hyperparameters=hyperparameters,
    )
    template = files("hf_sparse_distill.model_cards") / "template.md"
    return ModelCard.from_template(card_data, template_str=template.read_text(encoding="utf-8"), **variables)


def save_for_hub(
    model_dir: str | Path,
    folder: str | Path,
    repo_id: str,
    results_path: str | Path | None = None,
    fp16_embeddings: bool = False,
    max_shard_size: str = "2GB",
) -> Path:
    """Write everything a Hub repository of the student holds into `folder`: safetensors weights (sharded above
    `max_shard_size`; embedding table in float16 if asked), tokenizer, the three code files, README.md and the
    speed-vs-accuracy plot. `results_path` defaults to `results.json` beside `model_dir` (a distillation run)."""
    model_dir, folder = Path(model_dir), Path(folder)
    results_path = Path(results_path) if results_path else model_dir.parent / "results.json"
    results = _load_json(results_path)
    recipe = _load_json(results_path.parent / "recipe.json")
    model = SparseDANForSequenceClassification.from_pretrained(model_dir)
    tokenizer = SparseDANTokenizer.from_pretrained(model_dir)
    if fp16_embeddings:
        model.get_input_embeddings().half()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, max_shard_size=max_shard_size)
    if fp16_embeddings:
        # save_pretrained records the first weight's dtype (the table's float16) as the model dtype, which
        # would load the head in float16 too: the model computes in float32, only the table is stored smaller.
        config_file = folder / "config.json"
        config = json.loads(config_file.read_text())
        config["dtype"] = "float32"
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tokenizer.save_pretrained(folder)
    plot_file = None
    speed = results.get("speed")
    if speed and "teacher" in results and "student" in results:
        points = [("teacher", speed["teacher_texts_per_s"], results["teacher"]["accuracy"]),
                  ("this student", speed["student_texts_per_s"], results["student"]["accuracy"])]
        speed_accuracy_plot(points, folder / PLOT_FILE, title=f"{results.get('task', '')}: accuracy vs speed (dev)")
        plot_file = PLOT_FILE
    card = build_model_card(model, repo_id, results, recipe, fp16_embeddings, plot_file)
    card.save(folder / "README.md")
    return folder


def push_student(
    model_dir: str | Path,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str = "Upload sparse DAN student",
    fp16_embeddings: bool = False,
    results_path: str | Path | None = None,
    max_shard_size: str = "2GB",
) -> str:
    """Create (or reuse) the Hub repository `repo_id` and upload the student with its card in one commit.

    The token comes from `token`, else the usual places (`HF_TOKEN`, the stored `hf auth login`). Returns the
    URL of the commit.
    """
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    if revision:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hfsd-push-") as tmp:
        folder = save_for_hub(model_dir, tmp, repo_id, results_path, fp16_embeddings, max_shard_size)
        info = api.upload_folder(
            folder_path=str(folder), repo_id=repo_id, repo_type="model", revision=revision,
            commit_message=commit_message,
        )
    logger.info("pushed %s to %s", model_dir, repo_id)
    return str(getattr(info, "commit_url", info))
