"""SparseDANConfig / SparseDANModel / SparseDANForSequenceClassification."""

import json

import pytest
import torch
from conftest import make_model, random_texts
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from hf_sparse_distill import SparseDANConfig, SparseDANForSequenceClassification, SparseDANModel, SparseDANTokenizer


def test_config_defaults_follow_the_paper():
    config = SparseDANConfig()
    assert (config.embed_dim, config.hidden_dims, config.max_ngrams, config.ngram_range) == (1000, [1000], 2048, [1, 4])
    assert (config.pooling, config.feature_dropout, config.classifier_dropout) == ("mean", 0.1, 0.1)
    assert config.activation in ("tanh", "relu") and config.pad_token_id == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"pooling": "median"}, "pooling"),
        ({"activation": "swish"}, "activation"),
        ({"feature_dropout": 1.0}, "feature_dropout"),
        ({"ngram_range": (3, 2)}, "ngram_range"),
        ({"vocab_size": 5, "pad_token_id": 9}, "pad_token_id"),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SparseDANConfig(**kwargs)


def test_padded_and_flat_inputs_give_the_same_logits(model, tokenizer):
    texts = ["the movie is good", "", "!!!", "I hate this film -- terrible", "good good good"]
    padded = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    flat = model(**tokenizer.encode_bags(texts)).logits
    one_by_one = torch.cat([model(**tokenizer(t, return_tensors="pt")).logits for t in texts])
    torch.testing.assert_close(padded, flat)
    torch.testing.assert_close(padded, one_by_one)
    ids = tokenizer(texts, padding=True, return_tensors="pt")["input_ids"]
    torch.testing.assert_close(model(input_ids=ids).logits, padded)  # no mask: pad ids are skipped


@pytest.mark.parametrize("pooling", ["mean", "sum", "max"])
def test_pooling_matches_a_manual_computation(tokenizer, pooling):
    model = make_model(tokenizer, pooling=pooling)
    texts = ["the movie is not good", "good good", "", "zzz"]
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    pooled = model.dan(**enc).pooler_output
    table = model.get_input_embeddings().weight
    for i, text in enumerate(texts):
        ids = torch.tensor(tokenizer(text)["input_ids"], dtype=torch.long)
        if ids.numel() == 0:
            expected = torch.zeros(table.shape[1])
        else:
            rows = table[ids]
            expected = {"mean": rows.mean(0), "sum": rows.sum(0), "max": rows.max(0).values}[pooling]
        torch.testing.assert_close(pooled[i], expected)


def test_repeated_ngrams_count_in_the_mean():
    tokenizer = SparseDANTokenizer.from_ngrams(["good", "movie"])
    model = make_model(tokenizer)
    table = model.get_input_embeddings().weight
    good, movie = tokenizer.convert_tokens_to_ids(["good", "movie"])
    pooled = model.dan(**tokenizer("good good movie", return_tensors="pt")).pooler_output[0]
    torch.testing.assert_close(pooled, (2 * table[good] + table[movie]) / 3)


def test_feature_dropout_only_in_training(tokenizer):
    model = make_model(tokenizer, feature_dropout=0.5, classifier_dropout=0.0)
    enc = tokenizer.encode_bags(random_texts(20, seed=2))
    model.eval()
    torch.testing.assert_close(model(**enc).logits, model(**enc).logits)
    model.train()
    torch.manual_seed(0)
    first = model(**enc).logits
    torch.manual_seed(1)
    assert not torch.allclose(first, model(**enc).logits)
    assert torch.isfinite(first).all()


def test_losses_follow_problem_type(tokenizer):
    enc = tokenizer(["good movie", "bad film", "fun"], padding=True, return_tensors="pt")
    single = make_model(tokenizer)
    out = single(**enc, labels=torch.tensor([1, 0, 1]))
    torch.testing.assert_close(out.loss, nn.functional.cross_entropy(out.logits, torch.tensor([1, 0, 1])))
    assert single.config.problem_type == "single_label_classification"

    multi = make_model(tokenizer, id2label={0: "a", 1: "b", 2: "c"}, label2id=None)
    targets = torch.tensor([[1.0, 0, 1], [0, 0, 0], [0, 1, 0]])
    out = multi(**enc, labels=targets)
    torch.testing.assert_close(out.loss, nn.functional.binary_cross_entropy_with_logits(out.logits, targets))
    assert multi.config.problem_type == "multi_label_classification"

    regression = make_model(tokenizer, id2label={0: "score"}, label2id=None)
    targets = torch.tensor([0.5, -1.0, 2.0])
    out = regression(**enc, labels=targets)
    torch.testing.assert_close(out.loss, nn.functional.mse_loss(out.logits.squeeze(-1), targets))
    assert out.logits.shape == (3, 1)


def test_tuple_outputs(model, tokenizer):
    enc = tokenizer(["good"], return_tensors="pt")
    loss, logits = model(**enc, labels=torch.tensor([1]), return_dict=False)
    assert loss.dim() == 0 and logits.shape == (1, 2)


def test_sparse_gradients_on_request(tokenizer):
    model = make_model(tokenizer, feature_dropout=0.0)
    enc = tokenizer.encode_bags(["the movie is good", "bad"])
    model.train()
    model(**enc, labels=torch.tensor([1, 0])).loss.backward()
    assert not model.get_input_embeddings().weight.grad.is_sparse
    model.zero_grad(set_to_none=True)
    model.get_input_embeddings().sparse = True
    model(**enc, labels=torch.tensor([1, 0])).loss.backward()
    grad = model.get_input_embeddings().weight.grad
    assert grad.is_sparse
    assert set(grad.coalesce().indices()[0].tolist()) == set(enc["input_ids"].tolist())


def test_input_embeddings_accessors(model):
    new = nn.EmbeddingBag(model.config.vocab_size, model.config.embed_dim, mode="mean")
    model.set_input_embeddings(new)
    assert model.get_input_embeddings() is new and model.dan.get_input_embeddings() is new


def test_own_initialisation(tokenizer):
    model = make_model(tokenizer, vocab_size=20000, embedding_init_std=0.3, initializer_range=0.05, embed_dim=64)
    table = model.get_input_embeddings().weight
    assert abs(table.std().item() - 0.3) < 0.01
    first = model.classifier.layers[1]
    assert abs(first.weight.std().item() - 0.05) < 0.01 and (first.bias == 0).all()


def test_save_pretrained_round_trip(saved_student, model, tokenizer):
    files = sorted(p.name for p in saved_student.iterdir())
    assert files == [
        "config.json",
        "configuration_sparse_dan.py",
        "model.safetensors",
        "modeling_sparse_dan.py",
        "ngram_vocab.json",
        "pipeline_sparse_dan.py",
        "tokenization_sparse_dan.py",
        "tokenizer_config.json",
    ]
    config = json.loads((saved_student / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_sparse_dan.SparseDANConfig",
        "AutoModel": "modeling_sparse_dan.SparseDANModel",
        "AutoModelForSequenceClassification": "modeling_sparse_dan.SparseDANForSequenceClassification",
    }
    tok_config = json.loads((saved_student / "tokenizer_config.json").read_text())
    assert tok_config["auto_map"]["AutoTokenizer"][0] == "tokenization_sparse_dan.SparseDANTokenizer"

    reloaded = AutoModelForSequenceClassification.from_pretrained(saved_student)
    reloaded_tok = AutoTokenizer.from_pretrained(saved_student)
    assert isinstance(reloaded, SparseDANForSequenceClassification)
    assert isinstance(reloaded_tok, SparseDANTokenizer)
    assert isinstance(AutoConfig.from_pretrained(saved_student), SparseDANConfig)
    texts = random_texts(30, seed=9)
    expected = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    torch.testing.assert_close(reloaded(**reloaded_tok(texts, padding=True, return_tensors="pt")).logits, expected)
    base = AutoModel.from_pretrained(saved_student)
    assert isinstance(base, SparseDANModel)
    torch.testing.assert_close(base.get_input_embeddings().weight, model.get_input_embeddings().weight)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_load_and_device_map(saved_student, model, tokenizer, dtype):
    half = AutoModelForSequenceClassification.from_pretrained(saved_student, dtype=dtype, device_map="cpu")
    assert half.get_input_embeddings().weight.dtype == dtype
    texts = ["the movie is good", "", "awful boring plot"]
    with torch.inference_mode():
        logits = half(**tokenizer(texts, padding=True, return_tensors="pt")).logits
        reference = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    assert logits.dtype == dtype and torch.isfinite(logits).all()
    torch.testing.assert_close(logits.float(), reference, atol=0.1, rtol=0.05)


def test_temperature_scales_class_scores_but_never_regression_outputs(tokenizer):
    enc = tokenizer(["good movie", "bad film", "fun"], padding=True, return_tensors="pt")
    for overrides, scaled in [({}, True), ({"id2label": {0: "score"}, "label2id": None}, False)]:
        model = make_model(tokenizer, **overrides).eval()
        with torch.no_grad():
            before = model(**enc).logits
            model.config.logit_temperature = 2.0
            after = model(**enc).logits
        torch.testing.assert_close(after, before / 2.0 if scaled else before)
