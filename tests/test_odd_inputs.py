"""Inference never crashes on odd text: every input gets a finite, defined prediction."""

import pytest
import torch
from conftest import make_model
from transformers import pipeline

ODD_TEXTS = [
    "",
    " ",
    "\n\t  \r\n",
    "!!! ??? ... --- ;;;",
    "a b c 1 2 3 x y z",  # only one-character tokens: no word at all
    "qwertyuiop asdfghjkl zxcvbnm",  # words, none in the vocabulary
    "日本語のテキストです",
    "Привет, как дела? Фильм хороший.",
    "مرحبا بالعالم",
    "😀🎉🔥 👍🏽",
    "the movie is good 😀",
    "\x00\x01\x7f control characters \u200b zero width",
    "good " * 250_000,  # ~1.2 MB of text
]


def test_model_defines_a_prediction_for_every_odd_text(model, tokenizer):
    with torch.inference_mode():
        for batch in (ODD_TEXTS, ODD_TEXTS[:1], ODD_TEXTS[-1:]):
            padded = model(**tokenizer(batch, padding=True, return_tensors="pt")).logits
            flat = model(**tokenizer.encode_bags(batch)).logits
            assert padded.shape == (len(batch), 2)
            assert torch.isfinite(padded).all() and torch.isfinite(flat).all()
        truncated = model(**tokenizer(ODD_TEXTS, padding=True, truncation=True, return_tensors="pt")).logits
        assert torch.isfinite(truncated).all()


@pytest.mark.parametrize("pooling", ["mean", "sum", "max"])
def test_empty_bags_for_every_pooling(tokenizer, pooling):
    model = make_model(tokenizer, pooling=pooling)
    with torch.inference_mode():
        logits = model(**tokenizer(["", "!!!"], padding=True, return_tensors="pt")).logits
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(logits[0], logits[1])  # both are the "no evidence" prediction


@pytest.mark.parametrize("batch_size", [1, 4])
def test_pipeline_on_odd_texts(model, tokenizer, batch_size):
    classifier = pipeline("text-classification", model=model, tokenizer=tokenizer)
    results = classifier(ODD_TEXTS, batch_size=batch_size, top_k=None)
    assert len(results) == len(ODD_TEXTS)
    for scores in results:
        assert {s["label"] for s in scores} == {"negative", "positive"}
        assert sum(s["score"] for s in scores) == pytest.approx(1.0, abs=1e-5)
    truncated = classifier(ODD_TEXTS, batch_size=batch_size, truncation=True)
    assert all(r["label"] in ("negative", "positive") for r in truncated)


@pytest.mark.parametrize("bad", [123, 4.5, b"bytes", ["fine", 7], None])
def test_non_string_input_gives_a_clear_error(model, tokenizer, bad):
    classifier = pipeline("text-classification", model=model, tokenizer=tokenizer)
    with pytest.raises((TypeError, ValueError)):
        classifier(bad)
