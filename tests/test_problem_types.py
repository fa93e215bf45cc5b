"""Multi-label and regression teachers distilled from recipes: labels read as lists of classes or numbers, KD on the
teacher's sigmoid / regression outputs, and the metrics users expect (micro/macro-F1; Pearson/Spearman), checked
against scikit-learn and scipy."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import build_tiny_teacher
from scipy.stats import pearsonr, rankdata, spearmanr
from sklearn.metrics import f1_score

from hf_sparse_distill import SparseDANForSequenceClassification, SparseDANTokenizer
from hf_sparse_distill.cli import main
from hf_sparse_distill.distillation.evaluate import _ranks, classification_metrics
from hf_sparse_distill.results import DistillationResults

TOPICS = ("good", "bad", "plot")


def topics(text: str) -> list[str]:
    text = text.lower()
    return [name for name, words in zip(TOPICS, (("good", "great"), ("bad", "awful"), ("plot", "story")))
            if any(w in text for w in words)]  # fmt: skip


def score(text: str) -> float:
    text = text.lower()
    return float(sum(text.count(w) for w in ("good", "great", "fun")) - sum(text.count(w) for w in ("bad", "awful")))


def test_metrics_match_scikit_learn_and_scipy():
    rng = np.random.default_rng(0)
    logits, gold = rng.normal(size=(200, 3)), (rng.random((200, 3)) < 0.4).astype(float)
    metrics = classification_metrics(logits, gold, {0: "a", 1: "b", 2: "c"}, problem_type="multi_label_classification")
    predicted = (logits > 0).astype(int)
    assert metrics.micro_f1 == pytest.approx(f1_score(gold, predicted, average="micro"))
    assert metrics.macro_f1 == pytest.approx(f1_score(gold, predicted, average="macro"))
    assert metrics.accuracy == pytest.approx(np.mean((predicted == gold).all(axis=1)))
    assert metrics.score == metrics.micro_f1 and metrics.score_name == "micro-F1"
    outputs, targets = rng.normal(size=(100, 1)), np.round(rng.normal(size=100), 1)  # ties in the targets
    regression = classification_metrics(outputs, targets, problem_type="regression")
    assert regression.pearson == pytest.approx(pearsonr(outputs[:, 0], targets)[0])
    assert regression.spearman == pytest.approx(spearmanr(outputs[:, 0], targets)[0])
    assert regression.accuracy is None and regression.score == regression.pearson
    np.testing.assert_allclose(_ranks(targets), rankdata(targets))


@pytest.fixture(params=["multi_label_classification", "regression"])
def problem_recipe(request, tiny_recipe, tmp_path) -> tuple[Path, str]:
    """The tiny recipe with a teacher of another problem type and labels to match (lists of topic names, or a
    sentiment score)."""
    problem_type = request.param
    multi = problem_type == "multi_label_classification"
    teacher = build_tiny_teacher(
        tmp_path / f"teacher-{problem_type}", seed=5, labels=TOPICS if multi else ("score",), problem_type=problem_type
    )
    data = yaml.safe_load(tiny_recipe.read_text())
    for split in ("train", "dev"):
        rows = [json.loads(line) for line in (tmp_path / "data" / f"{split}.jsonl").read_text().splitlines()]
        for row in rows:
            row["label"] = topics(row["text"]) if multi else score(row["text"])
        path = tmp_path / "data" / f"{split}_{problem_type}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        data["data"][split] = {"path": str(path)}
    data["teacher"]["model"] = str(teacher)
    data["augment"] = {"enabled": False}
    recipe = tmp_path / f"{problem_type}.yaml"
    recipe.write_text(yaml.safe_dump(data))
    return recipe, problem_type


def test_distill_other_problem_types(problem_recipe, tmp_path):
    recipe, problem_type = problem_recipe
    assert main(["distill", str(recipe)]) == 0
    results = DistillationResults.load(tmp_path / "run" / "results.json")
    student_dir = Path(results.student_dir)
    model = SparseDANForSequenceClassification.from_pretrained(student_dir).eval()
    tokenizer = SparseDANTokenizer.from_pretrained(student_dir)
    assert model.config.problem_type == problem_type and results.calibration is None
    rows = [json.loads(line) for line in Path(yaml.safe_load(recipe.read_text())["data"]["dev"]["path"]).open()]
    with torch.inference_mode():
        logits = model(**tokenizer.encode_bags([r["text"] for r in rows])).logits.numpy()
    student = results.student
    if problem_type == "regression":
        gold = np.array([r["label"] for r in rows])
        assert student.pearson == pytest.approx(pearsonr(logits[:, 0], gold)[0], abs=1e-6)
        assert student.spearman == pytest.approx(spearmanr(logits[:, 0], gold)[0], abs=1e-6)
        assert results.teacher.metrics.pearson is not None and "| Pearson | Spearman |" in results.table()
    else:
        gold = np.array([[float(name in r["label"]) for name in TOPICS] for r in rows])
        assert student.micro_f1 == pytest.approx(f1_score(gold, (logits > 0).astype(int), average="micro"), abs=1e-9)
        assert set(student.per_class_f1) == set(TOPICS) and student.teacher_agreement is not None
        assert "| micro-F1 | macro-F1 |" in results.table()
    assert results.retention == pytest.approx(student.score / results.teacher.metrics.score)
    assert set(results.stages) == {"scratch", "kd", "finetune"}  # gold labels trained on (fine-tuning, scratch)
