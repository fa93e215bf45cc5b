"""`hf-sparse-distill teacher`: a base encoder fine-tuned with transformers' Trainer into the recipe's teacher,
chosen on the selection split, reused when done, and trained first by `distill` when the recipe asks for it."""

import json
import logging
import os
from pathlib import Path

import pytest
import yaml
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, TrainingArguments

from hf_sparse_distill.cli import main
from hf_sparse_distill.distillation import load_recipe
from hf_sparse_distill.distillation.teacher_training import (
    CHECKPOINTS,
    FINGERPRINT_FILE,
    TRAINING_FILE,
    _clear_other_checkpoints,
    train_teacher,
)
from hf_sparse_distill.results import DistillationResults


def printed_json(out: str) -> dict:
    """The JSON object the command prints last (Trainer prints its logs on stdout before it)."""
    return json.loads(out[out.rindex("\n{\n") + 1 :] if "\n{\n" in out else out)


@pytest.fixture()
def teacher_recipe(tiny_recipe, tmp_path) -> Path:
    """The tiny recipe, three-way: labels by keyword, no teacher given, the tiny BERT as base encoder (its 2-class
    head is replaced by a 3-class one)."""
    data = yaml.safe_load(tiny_recipe.read_text())
    for split in ("train", "dev"):
        path = Path(data["data"][split]["path"].replace("${TINY_DATA}", str(tmp_path / "data")))
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        for row in rows:
            text = row["text"].lower()
            row["label"] = 2 if "bad" in text or "awful" in text else int("good" in text or "great" in text)
        (tmp_path / "data" / f"{split}3.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        data["data"][split]["path"] = str(tmp_path / "data" / f"{split}3.jsonl")
    data["teacher"] = {
        "model": str(tmp_path / "my-teacher"),
        "batch_size": 16,
        "chunk_size": 64,
        "training": {
            "base_model": "${TINY_TEACHER}",
            "labels": ["neutral", "positive", "negative"],
            "epochs": 3,
            "learning_rate": 1e-3,
            "batch_size": 16,
            "eval_steps": 5,
        },
    }
    data["finetune"]["enabled"] = data["scratch"]["enabled"] = False
    recipe = tmp_path / "teacher.yaml"
    recipe.write_text(yaml.safe_dump(data))
    return recipe


def test_teacher_command_fine_tunes_chooses_on_selection_and_reuses(teacher_recipe, tmp_path, capsys):
    assert main(["teacher", str(teacher_recipe)]) == 0
    result = printed_json(capsys.readouterr().out)
    folder = tmp_path / "my-teacher"
    config = AutoConfig.from_pretrained(folder)
    assert config.id2label == {0: "neutral", 1: "positive", 2: "negative"} and config.num_labels == 3
    AutoModelForSequenceClassification.from_pretrained(folder)  # loads without missing weights
    assert (folder / "model.safetensors").exists() and (folder / "tokenizer_config.json").exists()
    # 15 selection texts (10 % of train) held out of training; the kept step is the best evaluation on them
    assert result["train_texts"] <= 150 - 15 and result["best_step"] % 5 == 0
    assert 0 <= result["selection_accuracy"] <= 1 and 0 <= result["dev_accuracy"] <= 1
    readme = (folder / "README.md").read_text()
    assert f"Dev accuracy: {result['dev_accuracy']:.4f}" in readme and "base_model:" in readme
    assert "on the first 128 tokens of a longer text (`truncation_side: right`" in readme  # the base encoder's own
    assert not (tmp_path / "run" / "teacher_checkpoints").exists()  # checkpoints removed once the teacher is saved

    # done once: a second call reuses it without training
    weights = (folder / "model.safetensors").read_bytes()
    assert train_teacher(load_recipe(teacher_recipe)).fingerprint == result["fingerprint"]
    assert (folder / "model.safetensors").read_bytes() == weights
    relative = os.path.relpath(os.environ["TINY_TEACHER"])  # the same base encoder named another way: the same inputs
    again = train_teacher(load_recipe(teacher_recipe, [f"teacher.training.base_model={relative}"]))
    assert relative != os.environ["TINY_TEACHER"] and again.fingerprint == result["fingerprint"]

    # other inputs (here: the learning rate) and a folder made by this recipe: trained again
    assert main(["teacher", str(teacher_recipe), "--set", "teacher.training.learning_rate=5e-4"]) == 0
    assert printed_json(capsys.readouterr().out)["fingerprint"] != result["fingerprint"]

    # a teacher taught on the end of long texts: other inputs, and its saved tokenizer keeps reading the end
    assert main(["teacher", str(teacher_recipe), "--set", "teacher.truncation_side=left"]) == 0
    assert printed_json(capsys.readouterr().out)["fingerprint"] != result["fingerprint"]
    assert AutoTokenizer.from_pretrained(folder).truncation_side == "left"
    assert "on the last 128 tokens of a longer text (`truncation_side: left`" in (folder / "README.md").read_text()


@pytest.mark.parametrize("stamp", ["other inputs", None], ids=["other-inputs", "unmarked"])
def test_checkpoints_of_other_inputs_are_not_resumed(teacher_recipe, capsys, caplog, stamp):
    """An interrupted fine-tuning with other inputs (or unmarked, from an older version) leaves checkpoints that a
    run with these inputs must not resume; its own are kept."""
    checkpoints = Path(load_recipe(teacher_recipe).output_dir) / CHECKPOINTS
    (checkpoints / "checkpoint-5").mkdir(parents=True)  # resuming from it would fail: it holds no trainer state
    if stamp is not None:
        (checkpoints / FINGERPRINT_FILE).write_text(stamp)
    with caplog.at_level(logging.INFO, logger="hf_sparse_distill.distillation.teacher_training"):
        assert main(["teacher", str(teacher_recipe)]) == 0
    assert "made from other inputs" in caplog.text
    fingerprint = printed_json(capsys.readouterr().out)["fingerprint"]

    (checkpoints / "checkpoint-5").mkdir(parents=True)
    (checkpoints / FINGERPRINT_FILE).write_text(fingerprint)
    _clear_other_checkpoints(checkpoints, fingerprint, TrainingArguments(output_dir=str(checkpoints)))
    assert (checkpoints / "checkpoint-5").is_dir()  # its own: left to resume from


def test_teacher_command_never_overwrites_a_foreign_model(teacher_recipe, tmp_path, tiny_teacher):
    folder = tmp_path / "my-teacher"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(FileExistsError, match="--overwrite"):
        main(["teacher", str(teacher_recipe)])
    assert (folder / "config.json").read_text() == "{}"


def test_distill_fine_tunes_the_teacher_first(teacher_recipe, tmp_path, capsys):
    assert main(["distill", str(teacher_recipe)]) == 0
    record = json.loads((tmp_path / "my-teacher" / TRAINING_FILE).read_text())
    results = DistillationResults.load(tmp_path / "run" / "results.json")
    # the distillation labels with the fine-tuned teacher: its dev accuracy is the one the teacher's README states
    assert results.teacher.metrics.accuracy == pytest.approx(record["dev_accuracy"], abs=1e-6)
    assert set(results.teacher.metrics.per_class_f1) == {"neutral", "positive", "negative"}
