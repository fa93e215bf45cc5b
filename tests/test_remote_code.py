"""The saved student loads through transformers' remote-code path, from a folder and from a Hub cache,
in processes where hf_sparse_distill is not importable, and predicts exactly what the package predicts."""

import json

import numpy as np
import pytest
from conftest import place_in_hub_cache, random_texts, run_without_package
from transformers import pipeline

TEXTS = ["the movie is good", "", "!!!", "I hate this film -- terrible", "日本語 😀"] + random_texts(20, seed=4)

REMOTE_SCRIPT = """
import json, os
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer, pipeline
source, texts = os.environ["TEST_SOURCE"], json.loads(os.environ["TEST_TEXTS"])
model = AutoModelForSequenceClassification.from_pretrained(source, trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=True)
base = AutoModel.from_pretrained(source, trust_remote_code=True)
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
assert type(tokenizer).__module__.startswith("transformers_modules"), type(tokenizer).__module__
logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits.tolist()
classifier = pipeline("text-classification", model=source, trust_remote_code=True)
print(json.dumps({
    "pipeline": classifier(texts, batch_size=4),
    "logits": logits,
    "base_class": type(base).__name__,
    "model_class": type(model).__name__,
    "pipeline_class": type(classifier).__name__,
    "pipeline_module": type(classifier).__module__,
    "pipeline_top_k": classifier(texts, top_k=None, batch_size=7),
}))
"""


def run_remote(source: str, hf_home) -> dict:
    env = {"TEST_SOURCE": source, "TEST_TEXTS": json.dumps(TEXTS), "HF_HOME": str(hf_home)}
    return json.loads(run_without_package(REMOTE_SCRIPT, env=env).strip().splitlines()[-1])


def assert_same_predictions(remote: dict, model, tokenizer):
    local = pipeline("text-classification", model=model, tokenizer=tokenizer)(TEXTS, batch_size=4)
    assert [r["label"] for r in remote["pipeline"]] == [r["label"] for r in local]
    assert [r["score"] for r in remote["pipeline"]] == pytest.approx([r["score"] for r in local], abs=1e-6)
    labels = {r["label"] for r in local}
    assert labels == {"negative", "positive"}, "the fixture model should predict both labels"
    expected = model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits.tolist()
    np.testing.assert_allclose(remote["logits"], expected, atol=1e-6)
    assert remote["model_class"] == "SparseDANForSequenceClassification"
    assert remote["base_class"] == "SparseDANModel"
    # the folder's own batched pipeline serves `pipeline("text-classification", trust_remote_code=True)`
    assert remote["pipeline_class"] == "SparseDANClassificationPipeline"
    assert remote["pipeline_module"].startswith("transformers_modules")
    local_top_k = pipeline("text-classification", model=model, tokenizer=tokenizer)(TEXTS, top_k=None, batch_size=4)
    for got, want in zip(remote["pipeline_top_k"], local_top_k, strict=True):
        assert [r["label"] for r in got] == [r["label"] for r in want]
        assert [r["score"] for r in got] == pytest.approx([r["score"] for r in want], abs=1e-6)


def test_remote_code_from_a_folder(saved_student, model, tokenizer, tmp_path):
    remote = run_remote(str(saved_student), tmp_path / "hf_home")
    assert_same_predictions(remote, model, tokenizer)


def test_remote_code_from_the_hub_cache(saved_student, model, tokenizer, tmp_path):
    hf_home = tmp_path / "hf_home"
    place_in_hub_cache(saved_student, hf_home, "acme/sparse-dan-test")
    remote = run_remote("acme/sparse-dan-test", hf_home)
    assert_same_predictions(remote, model, tokenizer)


def test_without_trust_remote_code_a_clear_error(saved_student, tmp_path):
    out = run_without_package(
        f"""
from transformers import AutoModelForSequenceClassification
try:
    AutoModelForSequenceClassification.from_pretrained({str(saved_student)!r})
except ValueError as error:
    print("trust_remote_code" in str(error))
""",
        env={"HF_HOME": str(tmp_path / "hf_home")},
    )
    assert out.strip().splitlines()[-1].endswith("True")


def test_package_installed_needs_no_trust_remote_code(saved_student, model, tokenizer):
    classifier = pipeline("text-classification", model=str(saved_student))
    assert type(classifier.model).__module__ == "hf_sparse_distill.models.sparse_dan.modeling_sparse_dan"
    local = pipeline("text-classification", model=model, tokenizer=tokenizer)
    got, expected = classifier(TEXTS), local(TEXTS)
    assert [r["label"] for r in got] == [r["label"] for r in expected]
    assert [r["score"] for r in got] == pytest.approx([r["score"] for r in expected], abs=1e-6)
