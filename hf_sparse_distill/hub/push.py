"""Publishing a student: one folder (weights, tokenizer, remote code, model card, plot) uploaded in one commit.

`transformers`' own `push_to_hub` replaces README.md with a generic card, so the folder is assembled here and sent
with `HfApi.upload_folder`, as model2vec and sentence-transformers do.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

from huggingface_hub import HfApi

from ..calibration import CALIBRATION_FILE, CALIBRATION_PLOT, Calibration
from ..compression import CompressionReport, save_with_half_table, source_run
from ..models.sparse_dan import SparseDANForSequenceClassification, SparseDANTokenizer
from ..results import DistillationResults
from .card import SparseDANModelCardData, build_model_card, model_facts, strongest_ngrams
from .plotting import cascade_plot, speed_accuracy_plot

logger = logging.getLogger(__name__)

PLOT_FILE = "speed_accuracy.png"


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
    speed-vs-accuracy plot. `results_path` defaults to `results.json` beside `model_dir` (a distillation run), or
    that of the student a compressed student was made from; the card of a compressed student states its size and
    its accuracy against the uncompressed student and the teacher (`compression.json`)."""
    model_dir, folder = Path(model_dir), Path(folder)
    compression = CompressionReport.load(model_dir)
    if results_path is None and compression is not None:
        run = source_run(compression.source)
        results_path = run / "results.json" if run else None
    results_path = Path(results_path) if results_path else model_dir.parent / "results.json"
    results = DistillationResults.load(results_path) if results_path.exists() else None
    recipe_path = results_path.parent / "recipe.json"
    recipe = json.loads(recipe_path.read_text()) if recipe_path.exists() else {}
    model = SparseDANForSequenceClassification.from_pretrained(model_dir)
    tokenizer = SparseDANTokenizer.from_pretrained(model_dir)
    facts = model_facts(model)
    if fp16_embeddings and model.config.table_quantization is not None:
        raise ValueError(f"{model_dir} has a {model.config.table_quantization} table already: drop --fp16-embeddings")
    folder.mkdir(parents=True, exist_ok=True)
    if fp16_embeddings:
        save_with_half_table(model, folder, max_shard_size=max_shard_size)
    else:
        model.save_pretrained(folder, max_shard_size=max_shard_size)
    tokenizer.save_pretrained(folder)
    plot_file = None
    if results is not None and results.speed is not None and compression is None:  # the run measured its student
        points = [
            ("teacher", results.speed.teacher_texts_per_s, results.teacher.metrics.score),
            ("this student", results.speed.student_texts_per_s, results.student.score),
        ]
        title = f"{results.task}: {results.teacher.metrics.score_name} vs speed ({results.report_split})"
        speed_accuracy_plot(points, folder / PLOT_FILE, title=title)
        plot_file = PLOT_FILE
    calibration = Calibration.load(model_dir)
    cascade_file = None
    if calibration is not None:
        shutil.copyfile(Path(model_dir) / CALIBRATION_FILE, folder / CALIBRATION_FILE)
        curve = calibration.curve
        cascade_plot(
            [p.teacher_call_rate for p in curve], [p.accuracy for p in curve],
            (calibration.chosen.teacher_call_rate, calibration.chosen.accuracy), calibration.teacher_accuracy,
            folder / CALIBRATION_PLOT,
        )  # fmt: skip
        cascade_file = CALIBRATION_PLOT
    card_data = SparseDANModelCardData(
        repo_id, facts, results, recipe, fp16_embeddings, plot_file, calibration, cascade_file,
        strongest_ngrams(model, tokenizer), compression,
    )  # fmt: skip
    build_model_card(card_data).save(folder / "README.md")
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
            folder_path=str(folder),
            repo_id=repo_id,
            repo_type="model",
            revision=revision,
            commit_message=commit_message,
        )
    logger.info("pushed %s to %s", model_dir, repo_id)
    return str(getattr(info, "commit_url", info))
