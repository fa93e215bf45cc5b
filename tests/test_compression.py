"""Compressed students: pruned n-grams remapped in tokenizer and table, int8 / float16 tables, a size budget, and a
normal student folder (Auto classes, both pipelines, remote code without the package)."""

import json

import pytest
import torch
from conftest import make_model, random_texts, run_without_package
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

from hf_sparse_distill import SparseDANClassificationPipeline, SparseDANConfig
from hf_sparse_distill.cli import main
from hf_sparse_distill.compression import compress, folder_mb
from hf_sparse_distill.models.sparse_dan.modeling_sparse_dan import Int8EmbeddingBag

TEXTS = random_texts(60, seed=31) + ["", "the movie is good"]


def logits_of(folder, texts=TEXTS):
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.inference_mode():
        return model(**tokenizer.encode_bags(texts)).logits


def test_keeping_every_ngram_in_float32_changes_nothing(saved_student, tmp_path):
    report = compress(saved_student, tmp_path / "same", dtype="float32", fold_first_layer=False)
    assert report.kept_ngrams == report.original_ngrams
    torch.testing.assert_close(logits_of(tmp_path / "same"), logits_of(saved_student), rtol=0, atol=0)


def test_pruning_equals_dropping_the_ngrams_from_the_text(saved_student, tokenizer, tmp_path):
    """A pruned student sees exactly the kept n-grams: same logits as the full student fed only those ids."""
    compress(saved_student, tmp_path / "pruned", keep_ngrams=40, dtype="float32", rank_by="frequency")
    small_tokenizer = AutoTokenizer.from_pretrained(tmp_path / "pruned")
    assert small_tokenizer.vocab_size == 41 and small_tokenizer.pad_token_id == 0
    full = AutoModelForSequenceClassification.from_pretrained(saved_student).eval()
    batch = tokenizer.encode_bags(TEXTS)
    keep = batch["input_ids"] <= 40  # frequency order = id order: the first 40 n-grams are kept
    lengths = torch.diff(batch["offsets"], append=torch.tensor([batch["input_ids"].numel()]))
    kept_lengths = torch.bincount(
        torch.repeat_interleave(torch.arange(len(TEXTS)), lengths)[keep], minlength=len(TEXTS)
    )
    offsets = torch.cumsum(kept_lengths, 0) - kept_lengths
    with torch.inference_mode():
        expected = full(input_ids=batch["input_ids"][keep], offsets=offsets).logits
    torch.testing.assert_close(logits_of(tmp_path / "pruned"), expected)


@pytest.mark.parametrize("pooling", ["mean", "sum"])
def test_folding_the_first_layer_into_the_table_is_exact(tokenizer, tmp_path, pooling):
    """The first hidden layer's weight commutes with mean and sum pooling: folded into the table (16 → 12 wide
    here), it gives the same logits, empty texts included, and the head keeps only its bias."""
    source = tmp_path / "student"
    make_model(tokenizer, pooling=pooling).save_pretrained(source)
    tokenizer.save_pretrained(source)
    report = compress(source, tmp_path / "folded", dtype="float32")
    folded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "folded")
    assert report.folded_first_layer and folded.config.folded_first_layer
    assert folded.config.embed_dim == 12 and folded.get_input_embeddings().weight.shape[1] == 12
    assert "classifier.layers.1.weight" not in folded.state_dict() and "classifier.layers.1.bias" in folded.state_dict()
    torch.testing.assert_close(logits_of(tmp_path / "folded"), logits_of(source), atol=1e-5, rtol=1e-5)


def test_max_pooling_is_not_folded(tokenizer, tmp_path):
    source = tmp_path / "student"
    make_model(tokenizer, pooling="max").save_pretrained(source)
    tokenizer.save_pretrained(source)
    assert not compress(source, tmp_path / "kept", dtype="float32").folded_first_layer
    with pytest.raises(ValueError, match="cannot be folded"):
        compress(source, tmp_path / "refused", fold_first_layer=True)
    with pytest.raises(ValueError, match="folded_first_layer needs"):
        SparseDANConfig(embed_dim=8, hidden_dims=[8], pooling="max", folded_first_layer=True)


def test_int8_table_stays_int8_and_close(saved_student, tmp_path):
    report = compress(saved_student, tmp_path / "int8", dtype="int8", rank_by="norm", keep_ngrams=10_000)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "int8")
    table = model.get_input_embeddings()
    assert isinstance(table, Int8EmbeddingBag) and table.weight.dtype == torch.uint8
    assert table.weight.shape == (model.config.vocab_size, model.config.embed_dim + 8)  # codes, scale, offset
    assert model.config.table_quantization == "int8" and report.dtype == "int8"
    full = logits_of(saved_student)
    small = logits_of(tmp_path / "int8")
    assert (small.argmax(-1) == full.argmax(-1)).float().mean() >= 0.95
    torch.testing.assert_close(small, full, atol=0.05, rtol=0.05)
    assert report.size_mb < report.original_size_mb


def test_float16_table_halves_the_file_and_loads_in_float32(saved_student, tmp_path):
    compress(saved_student, tmp_path / "half", dtype="float16")
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "half")
    assert model.get_input_embeddings().weight.dtype == torch.float32
    torch.testing.assert_close(logits_of(tmp_path / "half"), logits_of(saved_student), atol=1e-2, rtol=1e-2)


def test_max_mb_keeps_the_most_that_fits(saved_student, tmp_path):
    full_mb = folder_mb(saved_student)
    budget = full_mb * 0.6
    report = compress(saved_student, tmp_path / "budget", max_mb=budget, dtype="float32")
    assert report.size_mb <= budget and report.kept_ngrams < report.original_ngrams
    bigger = compress(saved_student, tmp_path / "bigger", keep_ngrams=report.kept_ngrams + 50, dtype="float32")
    assert bigger.size_mb > budget * 0.97  # close to the budget: not much more would fit
    with pytest.raises(ValueError, match="no student of"):
        compress(saved_student, tmp_path / "none", max_mb=0.001)


def test_compressed_student_is_a_normal_student(saved_student, tmp_path, capsys):
    assert main(["compress", str(saved_student), str(tmp_path / "small"), "--keep-ngrams", "100"]) == 0
    assert json.loads(capsys.readouterr().out)["kept_ngrams"] == 100
    small = tmp_path / "small"
    stock = pipeline("text-classification", model=str(small))(TEXTS, top_k=None)
    fast = pipeline("text-classification", model=str(small), pipeline_class=SparseDANClassificationPipeline)
    for a, b in zip(fast(TEXTS, top_k=None), stock, strict=True):
        assert [r["label"] for r in a] == [r["label"] for r in b]
        assert [r["score"] for r in a] == pytest.approx([r["score"] for r in b], abs=1e-6)
    script = f"""
import json
from transformers import pipeline
classifier = pipeline("text-classification", model={str(small)!r}, trust_remote_code=True)
assert type(classifier).__name__ == "SparseDANClassificationPipeline"
print(json.dumps(classifier({TEXTS!r}, top_k=None)))
"""
    remote = json.loads(run_without_package(script, env={"HF_HOME": str(tmp_path / "hf")}).strip().splitlines()[-1])
    for a, b in zip(remote, stock, strict=True):
        assert [r["score"] for r in a] == pytest.approx([r["score"] for r in b], abs=1e-6)


def test_calibrated_threshold_is_not_carried_to_a_compressed_student(saved_student, tmp_path):
    """The cascade threshold was chosen on the full student's confidences: compress drops it (and keeps the
    temperature, which leaves every label unchanged)."""
    calibrated = tmp_path / "calibrated"
    model = AutoModelForSequenceClassification.from_pretrained(saved_student)
    model.config.update({"logit_temperature": 1.5, "cascade_threshold": 0.8})
    model.save_pretrained(calibrated)
    AutoTokenizer.from_pretrained(saved_student).save_pretrained(calibrated)
    compress(calibrated, tmp_path / "small", keep_ngrams=50)
    config = AutoModelForSequenceClassification.from_pretrained(tmp_path / "small").config
    assert config.cascade_threshold is None and config.logit_temperature == 1.5


def test_refresh_after_pruning_trains_on_the_recipe_and_keeps_the_better_student(tiny_recipe, tmp_path, capsys):
    assert main(["train", str(tiny_recipe), "--stage", "kd"]) == 0
    kd = tmp_path / "run" / "kd" / "best"
    capsys.readouterr()
    out = tmp_path / "refreshed"
    args = ["compress", str(kd), str(out), "--keep-ngrams", "150", "--refresh", str(tiny_recipe)]
    assert main([*args, "--refresh-steps", "30", "--set", "kd.learning_rate=5e-2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kept_ngrams"] == 150 and report["original_ngrams"] > 150 and report["source"] == str(kd)
    refresh = report["refresh"]
    assert refresh["steps"] == 30 and refresh["kept"] == (
        refresh["selection_accuracy_after"] > refresh["selection_accuracy_before"]
    )
    assert json.loads((out / "compression.json").read_text())["refresh"] == refresh
    compress(kd, tmp_path / "pruned", keep_ngrams=150)  # the same pruning without the refresh
    assert (
        AutoTokenizer.from_pretrained(out).get_vocab() == AutoTokenizer.from_pretrained(tmp_path / "pruned").get_vocab()
    )
    changed = not torch.equal(logits_of(out), logits_of(tmp_path / "pruned"))
    assert changed == refresh["kept"]
    with pytest.raises(ValueError, match="at least one step"):
        main([*args, "--refresh-steps", "0"])


@pytest.mark.parametrize("mode", ["mean", "sum", "max"])
def test_int8_table_pools_as_its_dequantized_rows(mode):
    """The quantized kernel (sum, mean) and the row-by-row path (max) both pool exactly the dequantized rows, which
    are within half a quantization step of the float table; empty bags give zeros."""
    table = torch.randn(50, 16)
    table[7] = 0.0  # an all-zero row keeps a finite scale
    int8 = Int8EmbeddingBag.quantize(table, mode)
    rows = int8.dequantized()
    step = table.abs().amax(dim=1, keepdim=True) / 127
    assert ((rows - table).abs() <= step / 2 + 1e-6).all() and torch.equal(rows[7], torch.zeros(16))
    input_ids = torch.tensor([3, 4, 5, 7, 1, 1, 49])
    offsets = torch.tensor([0, 3, 3, 5])  # the second bag is empty
    expected = torch.nn.functional.embedding_bag(input_ids, rows, offsets, mode=mode)
    torch.testing.assert_close(int8(input_ids, offsets), expected)
