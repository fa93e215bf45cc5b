"""The models compared by the benchmark, each wrapped as `predict(texts) -> labels` plus what it costs.

Every contestant is built inside its own worker process (see `run.py`), so its load time and memory are its own.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch


@dataclass
class Contestant:
    """A loaded model: `predict` maps texts to label ids, tokenization included; `predict_pretokenized` (if
    any) takes the output of `tokenize` and measures the model alone."""

    name: str
    predict: Callable[[list[str]], np.ndarray]
    load_seconds: float
    disk_bytes: int
    note: str = ""
    tokenize: Callable[[list[str]], object] | None = None
    predict_pretokenized: Callable[[object], object] | None = None
    train_seconds: float | None = None
    extra: dict = field(default_factory=dict)


def _folder_bytes(folder: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def student_direct(model_dir: str, name: str = "student (direct API)") -> Contestant:
    """The student through its batched API: `encode_bags` (flat ids + offsets) and the model."""
    from hf_sparse_distill import SparseDANForSequenceClassification, SparseDANTokenizer

    start = time.perf_counter()
    model = SparseDANForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = SparseDANTokenizer.from_pretrained(model_dir)
    _ = tokenizer.matcher  # the n-gram index is built on first use: count it as loading
    load = time.perf_counter() - start

    def tokenize(texts):
        return tokenizer.encode_bags(texts)

    @torch.inference_mode()
    def model_only(batch):
        return model(**batch).logits.argmax(-1).numpy()

    return Contestant(
        name,
        lambda texts: model_only(tokenize(texts)),
        load,
        _folder_bytes(model_dir),
        tokenize=tokenize,
        predict_pretokenized=model_only,
    )


def _through_pipeline(name: str, make_classifier: Callable[[], object], model_dir: str) -> Contestant:
    """A contestant that predicts through a text-classification pipeline (its batch size set per measurement)."""
    start = time.perf_counter()
    classifier = make_classifier()
    _ = classifier.tokenizer.matcher  # build the n-gram index now: part of loading
    load = time.perf_counter() - start
    label2id = classifier.model.config.label2id
    state = {"batch_size": 1}

    def predict(texts):
        return np.array([label2id[r["label"]] for r in classifier(texts, batch_size=state["batch_size"])])

    return Contestant(name, predict, load, _folder_bytes(model_dir), extra={"state": state})


def student_pipeline(model_dir: str, fast: bool) -> Contestant:
    """The student through `pipeline("text-classification")` (stock), or through the package's
    `SparseDANClassificationPipeline`, which tokenizes whole batches at once."""
    from transformers import pipeline

    import hf_sparse_distill  # noqa: F401  (registers the model type)
    from hf_sparse_distill import SparseDANClassificationPipeline

    kwargs = {"pipeline_class": SparseDANClassificationPipeline} if fast else {}
    name = "student (batched pipeline)" if fast else "student (stock pipeline)"
    return _through_pipeline(
        name, lambda: pipeline("text-classification", model=model_dir, device="cpu", **kwargs), model_dir
    )


def student_remote_code(model_dir: str) -> Contestant:
    """The student as a user without the package runs it: `pipeline("text-classification", model=...,
    trust_remote_code=True)` gives the files saved next to the weights: the model, the tokenizer and the batched
    pipeline (`custom_pipelines`). The classes are loaded from those files explicitly: with the package imported in
    this process, `from_pretrained(..., trust_remote_code=True)` would prefer the registered classes."""
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    def make():
        def remote(name: str):
            return get_class_from_dynamic_module(name, model_dir)

        model = remote("modeling_sparse_dan.SparseDANForSequenceClassification").from_pretrained(model_dir).eval()
        tokenizer = remote("tokenization_sparse_dan.SparseDANTokenizer").from_pretrained(model_dir)
        classifier = remote("pipeline_sparse_dan.SparseDANClassificationPipeline")(
            model=model, tokenizer=tokenizer, device="cpu"
        )
        for part in (classifier, classifier.model, classifier.tokenizer):
            assert type(part).__module__.startswith("transformers_modules"), type(part)
        return classifier

    return _through_pipeline("student (remote code, shipped pipeline)", make, model_dir)


def transformer(
    model_dir: str | None, shape: str | None, teacher_dir: str, dtype: torch.dtype = torch.float32
) -> Contestant:
    """A `AutoModelForSequenceClassification`: the real teacher (`model_dir`), or a model of a standard shape
    (`"roberta-large"`, `"distilbert"`) built from its config with random weights — speed does not depend on the
    weight values. Shaped models use the teacher's WordPiece tokenizer (sequence lengths close to BPE's)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    if model_dir is not None:
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=dtype).eval()
        disk = _folder_bytes(model_dir)
        note = ""
    else:
        configs = {
            "roberta-large": dict(
                model_type="roberta",
                hidden_size=1024,
                num_hidden_layers=24,
                num_attention_heads=16,
                intermediate_size=4096,
                max_position_embeddings=514,
                type_vocab_size=1,
            ),
            "distilbert": dict(
                model_type="distilbert", dim=768, n_layers=6, n_heads=12, hidden_dim=3072, max_position_embeddings=512
            ),
        }
        settings = dict(configs[shape])
        model_type = settings.pop("model_type")
        config = AutoConfig.for_model(model_type, vocab_size=len(tokenizer), num_labels=2, **settings)
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_config(config).eval()
        disk = sum(p.numel() for p in model.parameters()) * 4
        note = "random weights (speed only); disk = fp32 parameter bytes"
    load = time.perf_counter() - start
    max_length = 512

    def tokenize(texts):
        return tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")

    @torch.inference_mode()
    def model_only(batch):
        if "token_type_ids" in batch and model.config.model_type in ("roberta", "distilbert"):
            batch = {k: v for k, v in batch.items() if k != "token_type_ids"}
        return model(**batch).logits.argmax(-1).numpy()

    name = f"teacher MiniLM-L6 ({str(dtype).replace('torch.', '')})" if model_dir else f"{shape}-shaped"
    return Contestant(
        name,
        lambda texts: model_only(tokenize(texts)),
        load,
        disk,
        note=note,
        tokenize=tokenize,
        predict_pretokenized=model_only,
    )


def fasttext_classifier(train_texts: list[str], train_labels: list[int]) -> Contestant:
    """FastText supervised (bigrams, 5 epochs; its defaults otherwise) trained on the same train set."""
    import fasttext

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "train.txt")
        with open(path, "w", encoding="utf-8") as f:
            for text, label in zip(train_texts, train_labels):
                f.write(f"__label__{label} {' '.join(text.split())}\n")
        start = time.perf_counter()
        model = fasttext.train_supervised(path, epoch=5, wordNgrams=2, verbose=0, thread=torch.get_num_threads())
        train = time.perf_counter() - start
        model.save_model(os.path.join(tmp, "model.bin"))
        disk = os.path.getsize(os.path.join(tmp, "model.bin"))

    def predict(texts):
        labels, _ = model.predict([" ".join(t.split()) for t in texts])
        return np.array([int(label[0].replace("__label__", "")) for label in labels])

    return Contestant("fastText (bigrams)", predict, 0.0, disk, train_seconds=train)


def tfidf_logistic_regression(train_texts: list[str], train_labels: list[int]) -> Contestant:
    """scikit-learn TF-IDF (1-2-grams) + logistic regression trained on the same train set."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    start = time.perf_counter()
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True), LogisticRegression(C=4, max_iter=2000)
    )
    model.fit(train_texts, train_labels)
    train = time.perf_counter() - start
    vectorizer, classifier = model.steps[0][1], model.steps[1][1]
    disk = len(json.dumps(vectorizer.vocabulary_)) + classifier.coef_.nbytes
    return Contestant(
        "TF-IDF + logistic regression",
        model.predict,
        0.0,
        disk,
        train_seconds=train,
        note="disk = vocabulary JSON + coefficients",
    )
