"""Calibrated scores, the teacher fallback (cascade), n-gram explanations and coverage: in the package, through the
CLI and through remote code without the package."""

import json

import numpy as np
import pytest
import torch
from conftest import random_texts, run_without_package, write_jsonl
from transformers import AutoModelForSequenceClassification, pipeline

from hf_sparse_distill import SparseDANClassificationPipeline, SparseDANTokenizer
from hf_sparse_distill.calibration import (
    Calibration,
    cascade_curve,
    cheapest_threshold,
    ece,
    fit_temperature,
    nll,
    softmax,
)
from hf_sparse_distill.cli import main

TEXTS = random_texts(120, seed=41) + ["", "!!!", "日本語"]


def test_fit_temperature_recovers_the_temperature_of_the_data():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(4000, 3))
    labels = np.array([rng.choice(3, p=p) for p in softmax(logits / 2.5)])
    assert fit_temperature(logits, labels=labels) == pytest.approx(2.5, rel=0.1)
    targets = softmax(logits / 0.5)
    assert fit_temperature(logits, targets=targets) == pytest.approx(0.5, rel=0.02)
    calibrated, raw = softmax(logits / 2.5), softmax(logits)
    assert nll(calibrated, labels) < nll(raw, labels) and ece(calibrated, labels) < ece(raw, labels)


def test_cascade_curve_and_the_cheapest_threshold():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.45, 0.55], [0.2, 0.8]])
    labels = np.array([0, 1, 0, 1])  # the student gets rows 1 and 2 wrong
    teacher = np.array([0, 1, 0, 0])  # the teacher gets row 3 wrong
    curve = cascade_curve(probs, teacher, labels, known_ngrams=np.array([3, 3, 3, 3]))
    by_rate = {p.teacher_call_rate: p.accuracy for p in curve}
    assert by_rate[0.0] == 0.5 and by_rate[1.0] == 0.75 and by_rate[0.5] == 1.0  # rows 1, 2 to the teacher
    chosen = cheapest_threshold(curve, teacher_accuracy=0.75, target_retention=1.0)
    assert chosen.teacher_call_rate == 0.25 and chosen.accuracy == 0.75  # row 2 alone already reaches the teacher
    forced = cascade_curve(probs, teacher, labels, known_ngrams=np.array([0, 3, 3, 3]), min_ngrams=1)
    assert min(p.teacher_call_rate for p in forced) == 0.25  # no known n-gram: always the teacher


@pytest.fixture()
def pipe(model, tokenizer, tiny_teacher):
    return SparseDANClassificationPipeline(model=model, tokenizer=tokenizer, teacher=str(tiny_teacher))


def test_cascade_answers_with_the_student_or_the_teacher(pipe, tiny_teacher):
    student = pipe(TEXTS, cascade=False)
    assert all("model" not in o for o in student)
    teacher = pipeline("text-classification", model=str(tiny_teacher))(TEXTS)
    everything = pipe(TEXTS, threshold=1.01)
    assert {o["model"] for o in everything} == {"teacher"}
    assert [o["label"] for o in everything] == [o["label"] for o in teacher]
    assert [o["score"] for o in everything] == pytest.approx([o["score"] for o in teacher], abs=1e-5)
    nothing = pipe(TEXTS, threshold=0.0)
    empty = {i for i, t in enumerate(TEXTS) if not pipe.tokenizer.encode_bags([t])["input_ids"].numel()}
    assert {i for i, o in enumerate(nothing) if o["model"] == "teacher"} == empty  # min_ngrams = 1
    middle = pipe(TEXTS, threshold=0.55, batch_size=7)
    for got, s, t in zip(middle, student, teacher):
        assert got["label"] == (t["label"] if got["model"] == "teacher" else s["label"])
        assert (got["model"] == "teacher") == (s["score"] < 0.55 or got is middle[TEXTS.index("")])
    with pytest.raises(ValueError, match="no cascade threshold"):
        pipe(TEXTS)


def test_coverage_flags_texts_without_evidence(model, tokenizer):
    fast = SparseDANClassificationPipeline(model=model, tokenizer=tokenizer)
    out = fast(["the movie is good", "", "zzzz qqqq"], coverage=True)
    assert out[0]["known_ngrams"] > 0 and not out[0]["no_evidence"] and out[0]["known_words"] == out[0]["words"] == 4
    assert out[1]["no_evidence"] and out[1]["words"] == 0 and out[2]["no_evidence"] and out[2]["known_words"] == 0
    single = fast("the movie is good", coverage=True)  # a list of one, as the stock pipeline gives
    assert len(single) == 1 and single[0]["known_ngrams"] == out[0]["known_ngrams"]


def test_explanations_are_faithful(model, tokenizer):
    """Removing the 3 n-grams the explanation ranks first changes the predicted label more often than removing 3
    random known n-grams (100 texts, 5 random draws each)."""
    fast = SparseDANClassificationPipeline(model=model, tokenizer=tokenizer)
    texts = [t for t in random_texts(400, seed=43) if len(tokenizer.encode_bags([t])["input_ids"]) >= 8][:100]
    explained = fast(texts, explain=True)
    rng = np.random.default_rng(0)
    top_flips, random_flips = 0, 0
    for text, output in zip(texts, explained):
        assert 1 <= len(output["explanation"]) <= 5
        weights = [e["weight"] for e in output["explanation"]]
        assert weights == sorted(weights, reverse=True)
        ids = tokenizer.encode_bags([text])["input_ids"]
        unique = torch.unique(ids).tolist()

        def label_without(removed, ids=ids):
            kept = ids[~torch.isin(ids, torch.tensor(removed))]
            with torch.inference_mode():
                return int(model(input_ids=kept, offsets=torch.tensor([0])).logits.argmax())

        label = model.config.label2id[output["label"]]
        top = tokenizer.convert_tokens_to_ids([e["ngram"] for e in output["explanation"][:3]])
        top_flips += label_without(top) != label
        random_flips += sum(label_without(rng.choice(unique, 3, replace=False).tolist()) != label for _ in range(5)) / 5
    assert top_flips > random_flips, (top_flips, random_flips)


def test_calibrate_and_evaluate_commands(saved_student, tiny_teacher, tmp_path, capsys):
    rows = [{"text": t, "label": int("good" in t or "great" in t)} for t in random_texts(200, seed=44)]
    data = write_jsonl(tmp_path / "dev.jsonl", rows)
    before = AutoModelForSequenceClassification.from_pretrained(saved_student)
    assert main(["calibrate", str(saved_student), "--dev", data, "--teacher", str(tiny_teacher)]) == 0
    summary = json.loads(capsys.readouterr().out)
    config = json.loads((saved_student / "config.json").read_text())
    assert config["logit_temperature"] == summary["temperature"] and config["cascade_threshold"] == summary["threshold"]
    assert "custom_pipelines" in config  # the shipped pipeline stays registered
    calibration = Calibration.load(saved_student)
    assert calibration.student_nll <= calibration.student_nll_before + 1e-9
    assert (
        calibration.chosen.accuracy >= 0.995 * calibration.teacher_accuracy or calibration.chosen.teacher_call_rate == 1
    )
    after = AutoModelForSequenceClassification.from_pretrained(saved_student)
    encoded = SparseDANTokenizer.from_pretrained(saved_student).encode_bags(TEXTS)
    with torch.inference_mode():
        raw, scaled = before(**encoded).logits, after(**encoded).logits
    assert before.config.logit_temperature == 1.0
    torch.testing.assert_close(scaled, raw / summary["temperature"])  # scores change, labels do not
    assert main(["evaluate", str(saved_student), "--data", data, "--teacher", str(tiny_teacher)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {
        "accuracy",
        "teacher_accuracy",
        "student_accuracy",
        "teacher_call_rate",
        "texts_per_s",
        "threshold",
    }
    assert result["threshold"] == summary["threshold"]
    assert result["teacher_call_rate"] == pytest.approx(calibration.chosen.teacher_call_rate)
    assert result["accuracy"] == pytest.approx(calibration.chosen.accuracy)


def test_explain_coverage_and_cascade_through_remote_code(saved_student, tiny_teacher, tmp_path, model, tokenizer):
    texts = TEXTS[:30]
    script = f"""
import json
from transformers import pipeline
classifier = pipeline("text-classification", model={str(saved_student)!r}, trust_remote_code=True,
                      teacher={str(tiny_teacher)!r})
print(json.dumps(classifier({texts!r}, explain=True, coverage=True, threshold=0.6)))
"""
    remote = json.loads(run_without_package(script, env={"HF_HOME": str(tmp_path / "hf")}).strip().splitlines()[-1])
    local = SparseDANClassificationPipeline(model=model, tokenizer=tokenizer, teacher=str(tiny_teacher))
    expected = local(texts, explain=True, coverage=True, threshold=0.6)
    for got, want in zip(remote, expected, strict=True):
        assert got["label"] == want["label"] and got["model"] == want["model"]
        assert got["score"] == pytest.approx(want["score"], abs=1e-5)
        assert [e["ngram"] for e in got["explanation"]] == [e["ngram"] for e in want["explanation"]]
        assert got["known_ngrams"] == want["known_ngrams"] and got["no_evidence"] == want["no_evidence"]
