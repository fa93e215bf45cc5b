"""Sentence-pair students (the paper's bi-encoder): both texts pooled with the same table, `[h1, h2, h1*h2, |h1-h2|]`
into the head; the tokenizer takes `text_pair` like every transformers tokenizer, and the student round-trips
through save/load, the Auto classes, the stock and batched pipelines and the remote-code path without the package."""

import json

import numpy as np
import pytest
import torch
from conftest import free_port, make_model, random_texts, run_without_package
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

import hf_sparse_distill  # noqa: F401  (registers the model type)
from hf_sparse_distill import SparseDANClassificationPipeline

FIRST = ["the movie is good", "", "a bad film", "I hate this film -- terrible"] + random_texts(12, seed=8)
SECOND = ["the film is great", "not good", "", "I love this movie"] + random_texts(12, seed=9)
PAIRS = [{"text": a, "text_pair": b} for a, b in zip(FIRST, SECOND)]


@pytest.fixture()
def pair_model(tokenizer):
    return make_model(tokenizer, seed=3, pair_mode=True)


def test_tokenizer_pairs_first_text_then_second(tokenizer):
    encoded = tokenizer("the movie is good", "not good")
    first, second = tokenizer("the movie is good")["input_ids"], tokenizer("not good")["input_ids"]
    assert encoded["input_ids"] == first + second
    assert encoded["token_type_ids"] == [0] * len(first) + [1] * len(second)
    padded = tokenizer(FIRST, SECOND, padding=True, truncation=True, max_length=3, return_tensors="pt")
    for row in range(len(FIRST)):
        mask = padded["attention_mask"][row].bool()
        types = padded["token_type_ids"][row][mask]
        assert int((types == 0).sum()) == min(3, len(tokenizer(FIRST[row])["input_ids"]))  # each side truncated
        assert int((types == 1).sum()) == min(3, len(tokenizer(SECOND[row])["input_ids"]))
    bags = tokenizer.encode_bags(FIRST, text_pair=SECOND, return_tensors=None)
    assert len(bags["offsets"]) == 2 * len(FIRST)
    with pytest.raises(ValueError, match="text pairs"):
        tokenizer.encode_bags(FIRST, text_pair=SECOND[:-1])


def test_pair_model_reads_both_texts_as_the_paper(pair_model, tokenizer):
    assert pair_model.classifier.layers[1].in_features == 4 * pair_model.config.embed_dim
    with torch.inference_mode():
        padded = pair_model(**tokenizer(FIRST, SECOND, padding=True, return_tensors="pt")).logits
        flat = pair_model(**tokenizer.encode_bags(FIRST, text_pair=SECOND)).logits
        left = pair_model(**tokenizer(FIRST, SECOND, padding=True, padding_side="left", return_tensors="pt")).logits
        h1 = pair_model.dan.embeddings(*tokenizer.encode_bags(FIRST).values())
        h2 = pair_model.dan.embeddings(*tokenizer.encode_bags(SECOND).values())
        expected = pair_model.classifier(torch.cat([h1, h2, h1 * h2, (h1 - h2).abs()], -1))
        swapped = pair_model(**tokenizer.encode_bags(SECOND, text_pair=FIRST)).logits
    torch.testing.assert_close(flat, expected)
    torch.testing.assert_close(padded, expected)
    torch.testing.assert_close(left, expected)
    assert not torch.allclose(swapped, flat)  # the order of the texts matters (h1, h2 are not symmetric)
    with pytest.raises(ValueError, match="token_type_ids"):
        pair_model(**tokenizer(FIRST, padding=True, return_tensors="pt"))


def overlap_model(tokenizer):
    model = make_model(tokenizer, seed=3, pair_mode=True, pair_overlap=True)
    model.dan.set_ngram_orders(tokenizer.ngram_orders())
    return model


def shares(first: str, second: str, tokenizer) -> list[float]:
    """The overlap features computed with Python sets from the n-gram strings."""
    grams = [tokenizer.tokenize(text) for text in (first, second)]
    out = []
    for mine, other in (grams, grams[::-1]):
        for n in range(1, 5):
            of_order = [g for g in mine if g.count(" ") == n - 1]
            out.append(sum(g in set(other) for g in of_order) / len(of_order) if of_order else 0.0)
    return out


def test_pair_overlap_adds_the_shares_of_shared_ngrams_order_by_order(tokenizer):
    model = overlap_model(tokenizer)
    assert tokenizer.ngram_orders()[tokenizer.pad_token_id] == 0
    dim = model.config.embed_dim
    assert model.classifier.layers[1].in_features == 4 * dim + 8
    first = FIRST + ["The movie is not good!", "I love this movie; it's wonderful"]
    second = SECOND + ["The movie is good.", "I love this movie; it's wonderful and fun."]
    with torch.inference_mode():
        flat = model.dan(**tokenizer.encode_bags(first, text_pair=second)).pooler_output
        padded = model(**tokenizer(first, second, padding=True, return_tensors="pt")).logits
        from_flat = model.classifier(flat)
    expected = torch.tensor([shares(a, b, tokenizer) for a, b in zip(first, second)])
    assert expected[-2].tolist() == pytest.approx([4 / 5, 2 / 4, 1 / 3, 0, 1, 2 / 3, 1 / 2, 0], abs=1e-6)
    assert expected[-1, :4].tolist() == [1, 1, 1, 1] and 0 < expected[-1, 4] < 1  # the first is in the second
    torch.testing.assert_close(flat[:, 4 * dim :], expected)
    torch.testing.assert_close(padded, from_flat)
    copy = make_model(tokenizer, seed=3, pair_mode=True, pair_overlap=True)
    with pytest.raises(ValueError, match="ngram_orders are not set"):
        copy(**tokenizer.encode_bags(FIRST, text_pair=SECOND))
    with pytest.raises(ValueError, match="needs pair_mode"):
        make_model(tokenizer, pair_overlap=True)


def test_overlap_is_read_from_the_whole_texts_under_feature_dropout(tokenizer):
    model = make_model(tokenizer, seed=3, pair_mode=True, pair_overlap=True, feature_dropout=0.5)
    model.dan.set_ngram_orders(tokenizer.ngram_orders())
    texts = [t for t in FIRST if t]
    batch = tokenizer.encode_bags(texts, text_pair=texts)
    with torch.no_grad():
        evaluated = model.dan(**batch).pooler_output[:, -8:]
        trained = model.train().dan(**batch).pooler_output
    has_order = torch.tensor([[s > 0 for s in shares(t, t, tokenizer)] for t in texts])
    assert has_order.any(0).all(), "the fixture should have n-grams of every order"
    torch.testing.assert_close(evaluated, has_order.float())  # a text shares all of its n-grams with itself
    torch.testing.assert_close(trained[:, -8:], evaluated)
    assert not torch.equal(trained[:, :-8], model.eval().dan(**batch).pooler_output[:, :-8])  # dropout did act


def test_ddp_leaves_the_constant_orders_alone_as_it_does_the_table(tokenizer, monkeypatch):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from hf_sparse_distill.distillation.distributed import exclude_from_ddp

    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        model = overlap_model(tokenizer)
        exclude_from_ddp(model, model.get_input_embeddings().weight)
        wrapped = DistributedDataParallel(model)
        assert wrapped.parameters_to_ignore == {"dan.embeddings.weight", "dan.ngram_orders"}
        assert not wrapped.will_sync_module_buffers()  # no broadcast of the orders before each forward
    finally:
        dist.destroy_process_group()


def test_compressed_overlap_student_keeps_the_orders_of_its_ngrams(tokenizer, tmp_path):
    from hf_sparse_distill.compression import compress

    overlap_model(tokenizer).save_pretrained(tmp_path / "full")
    tokenizer.save_pretrained(tmp_path / "full")
    logits = {}
    for name, keep in (("full", None), ("same", None), ("pruned", 60)):
        if name != "full":
            compress(tmp_path / "full", tmp_path / name, keep_ngrams=keep, dtype="float32", fold_first_layer=False)
        model = AutoModelForSequenceClassification.from_pretrained(tmp_path / name).eval()
        small_tokenizer = AutoTokenizer.from_pretrained(tmp_path / name)
        assert model.dan.ngram_orders.tolist() == small_tokenizer.ngram_orders()
        with torch.inference_mode():
            logits[name] = model(**small_tokenizer.encode_bags(FIRST, text_pair=SECOND)).logits
    torch.testing.assert_close(logits["same"], logits["full"], rtol=0, atol=0)
    assert small_tokenizer.vocab_size == 61
    full_mb = compress(tmp_path / "full", tmp_path / "int8", dtype="int8").size_mb
    for share in (0.99, 0.98, 0.97, 0.95):  # the budget counts each kept n-gram's order too (or compress raises)
        report = compress(tmp_path / "full", tmp_path / f"int8-{share}", max_mb=share * full_mb, dtype="int8")
        assert report.size_mb <= share * full_mb


@pytest.mark.parametrize("pair_overlap", [False, True])
def test_pair_student_round_trip_pipelines_and_remote_code(pair_overlap, tokenizer, tmp_path):
    pair_model = overlap_model(tokenizer) if pair_overlap else make_model(tokenizer, seed=3, pair_mode=True)
    folder = tmp_path / "pair-student"
    pair_model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    auto_tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model.config.pair_mode and model.config.pair_overlap == pair_overlap
    with torch.inference_mode():
        logits = model(**auto_tokenizer(FIRST, SECOND, padding=True, return_tensors="pt")).logits
        original = pair_model(**tokenizer(FIRST, SECOND, padding=True, return_tensors="pt")).logits
    torch.testing.assert_close(logits, original)

    stock = pipeline("text-classification", model=str(folder))
    assert "Sparse" not in type(stock).__name__
    one_by_one = stock(PAIRS)
    assert {r["label"] for r in one_by_one} == {"negative", "positive"}, "the fixture should predict both labels"
    assert [stock(p)["label"] for p in PAIRS[:3]] == [r["label"] for r in one_by_one[:3]]
    expected_scores = torch.softmax(logits, -1).max(-1).values.tolist()
    assert [r["score"] for r in one_by_one] == pytest.approx(expected_scores, abs=1e-6)
    fast = pipeline("text-classification", model=str(folder), pipeline_class=SparseDANClassificationPipeline)
    batched = fast(PAIRS, batch_size=5)
    assert [r["label"] for r in batched] == [r["label"] for r in one_by_one]
    assert [r["score"] for r in batched] == pytest.approx([r["score"] for r in one_by_one], abs=1e-6)
    top_k = fast(PAIRS, top_k=None, batch_size=5)
    assert top_k == stock(PAIRS, top_k=None) or all(
        [x["score"] for x in a] == pytest.approx([x["score"] for x in b], abs=1e-6)
        for a, b in zip(top_k, stock(PAIRS, top_k=None), strict=True)
    )

    script = f"""
import json
from transformers import pipeline
classifier = pipeline("text-classification", model={str(folder)!r}, trust_remote_code=True)
assert type(classifier).__module__.startswith("transformers_modules"), type(classifier).__module__
print(json.dumps({{"batched": classifier({PAIRS!r}, batch_size=5), "single": classifier({PAIRS[0]!r})}}))
"""
    remote = json.loads(run_without_package(script, env={"HF_HOME": str(tmp_path / "hf")}).strip().splitlines()[-1])
    assert [r["label"] for r in remote["batched"]] == [r["label"] for r in one_by_one]
    assert [r["score"] for r in remote["batched"]] == pytest.approx([r["score"] for r in one_by_one], abs=1e-6)
    single = remote["single"][0] if isinstance(remote["single"], list) else remote["single"]
    assert single["label"] == one_by_one[0]["label"]
    assert np.isclose(single["score"], one_by_one[0]["score"], atol=1e-6)


def test_pair_recipe_end_to_end(tiny_recipe, tmp_path, capsys):
    """A pair recipe: the teacher labels pairs with its own pair encoding, the vocabulary covers both texts, the
    student trains in pair mode (with the overlap of the two texts in its head) and its results and speed are
    measured on pairs."""
    import yaml

    from hf_sparse_distill.cli import main
    from hf_sparse_distill.distillation import Distiller, load_recipe
    from hf_sparse_distill.hub import save_for_hub
    from hf_sparse_distill.results import DistillationResults

    data = yaml.safe_load(tiny_recipe.read_text())
    rows = {
        split: [json.loads(line) for line in (tmp_path / "data" / f"{split}.jsonl").read_text().splitlines()]
        for split in ("train", "dev")
    }
    for split, split_rows in rows.items():
        pair_rows = []
        for i, row in enumerate(split_rows):
            other = split_rows[(i * 7 + 3) % len(split_rows)]["text"]
            second = row["text"] if i % 2 else other  # a text paired with itself is a paraphrase
            pair_rows.append({"text": row["text"], "text_pair": second, "label": int(second == row["text"])})
        (tmp_path / "data" / f"{split}_pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pair_rows))
        data["data"][split] = {"path": str(tmp_path / "data" / f"{split}_pairs.jsonl"), "text_pair_column": "text_pair"}
    data["data"]["unlabeled"] = []
    data["augment"] = {"enabled": True, "copies_per_example": 2}
    data.setdefault("student", {})["pair_overlap"] = True
    recipe = tmp_path / "pairs.yaml"
    recipe.write_text(yaml.safe_dump(data))

    assert main(["distill", str(recipe), "--stages", "kd,finetune"]) == 0
    results = DistillationResults.load(tmp_path / "run" / "results.json")
    student = AutoModelForSequenceClassification.from_pretrained(results.student_dir)
    assert student.config.pair_mode and results.teacher.metrics.num_examples == 60
    orders = AutoTokenizer.from_pretrained(results.student_dir).ngram_orders()
    assert student.config.pair_overlap and student.dan.ngram_orders.tolist() == orders and max(orders) == 4
    card = (save_for_hub(results.student_dir, tmp_path / "card", "acme/pairs") / "README.md").read_text()
    assert "[h1, h2, h1·h2, \\|h1−h2\\|] and the share of each text's n-grams found in the other" in card
    assert results.data.augmented_generated > 0 and results.speed.student_texts_per_s > 0
    # the teacher's logits of the dev pairs are its own pair predictions, not those of either text alone
    distiller = Distiller(load_recipe(recipe))
    dev = distiller.data().dev
    np.testing.assert_allclose(
        distiller.teacher_logits("dev"), distiller.teacher.predict(dev.texts, dev.pairs), atol=1e-5
    )
    single = distiller.teacher.predict(dev.texts)
    assert np.abs(distiller.teacher_logits("dev") - single).max() > 1e-4, "the second text must change the logits"
    # the student's dev accuracy in the table is its pipeline's accuracy on the pairs
    classifier = pipeline("text-classification", model=results.student_dir)
    predicted = [r["label"] for r in classifier([{"text": a, "text_pair": b} for a, b in zip(dev.texts, dev.pairs)])]
    gold = [student.config.id2label[label] for label in dev.labels]
    assert np.mean([p == g for p, g in zip(predicted, gold)]) == pytest.approx(results.student.accuracy)


def test_pair_cascade_calibrate_and_evaluate(pair_model, tokenizer, tiny_teacher, tmp_path, capsys):
    """The cascade takes sentence pairs (the hard ones go to the teacher in its own pair encoding), and `calibrate`
    and `evaluate` read the second texts from `--text-pair-column`."""
    from conftest import write_jsonl

    from hf_sparse_distill.calibration import Calibration
    from hf_sparse_distill.cli import main

    pipe = SparseDANClassificationPipeline(model=pair_model, tokenizer=tokenizer, teacher=str(tiny_teacher))
    teacher = pipeline("text-classification", model=str(tiny_teacher))(PAIRS)
    everything = pipe(PAIRS, threshold=1.01)
    assert {o["model"] for o in everything} == {"teacher"}
    assert [o["label"] for o in everything] == [o["label"] for o in teacher]
    # padded batches against one pair at a time: float32 noise only
    assert [o["score"] for o in everything] == pytest.approx([o["score"] for o in teacher], abs=5e-5)
    single_teacher = pipeline("text-classification", model=str(tiny_teacher))(FIRST)
    assert [o["score"] for o in everything] != pytest.approx([o["score"] for o in single_teacher], abs=1e-4)
    student = pipe(PAIRS, cascade=False)
    bags = tokenizer.encode_bags(FIRST, text_pair=SECOND, return_tensors="np")
    lengths = np.diff(bags["offsets"], append=len(bags["input_ids"]))
    known = lengths[0::2] + lengths[1::2]
    middle = pipe(PAIRS, threshold=0.55, batch_size=5)
    for got, s, t, n in zip(middle, student, teacher, known):
        assert (got["model"] == "teacher") == (s["score"] < 0.55 or n == 0)
        assert got["label"] == (t["label"] if got["model"] == "teacher" else s["label"])
    assert {o["model"] for o in middle} == {"student", "teacher"}, "the fixture should send some pairs each way"
    with pytest.raises(ValueError, match="sentence pairs"):
        pipe(FIRST, threshold=0.5)  # a pair student would read two consecutive texts as one pair
    with pytest.raises(ValueError, match="sentence pairs"):
        pipe(FIRST, cascade=False)
    with pytest.raises(TypeError, match="single texts"):
        pipe(PAIRS, explain=True, cascade=False)

    out = tmp_path / "student"
    pair_model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    firsts, others = random_texts(200, seed=45), random_texts(200, seed=46)
    rows = [{"a": a, "b": a if i % 2 else b, "label": i % 2} for i, (a, b) in enumerate(zip(firsts, others))]
    data = write_jsonl(tmp_path / "dev_pairs.jsonl", rows)
    columns = ["--text-column", "a", "--text-pair-column", "b"]
    with pytest.raises(ValueError, match="--text-pair-column"):
        main(["calibrate", str(out), "--dev", data, "--teacher", str(tiny_teacher), "--text-column", "a"])
    assert main(["calibrate", str(out), "--dev", data, "--teacher", str(tiny_teacher), *columns]) == 0
    summary = json.loads(capsys.readouterr().out)
    calibration = Calibration.load(out)
    assert json.loads((out / "config.json").read_text())["cascade_threshold"] == summary["threshold"]
    assert main(["evaluate", str(out), "--data", data, "--teacher", str(tiny_teacher), *columns]) == 0
    result = json.loads(capsys.readouterr().out)
    inputs = [{"text": r["a"], "text_pair": r["b"]} for r in rows]
    gold = np.asarray([r["label"] for r in rows])
    stock_teacher = pipeline("text-classification", model=str(tiny_teacher))(inputs)
    teacher_ids = np.asarray([int(o["label"] == "positive") for o in stock_teacher])
    assert result["teacher_accuracy"] == pytest.approx(float((teacher_ids == gold).mean()))
    calibrated = pipeline("text-classification", model=str(out))(inputs)
    student_ids = np.asarray([int(o["label"] == "positive") for o in calibrated])
    assert result["student_accuracy"] == pytest.approx(float((student_ids == gold).mean()))
    assert result["num_examples"] == 200 and result["threshold"] == summary["threshold"]
    assert result["teacher_call_rate"] == pytest.approx(calibration.chosen.teacher_call_rate)
    assert result["accuracy"] == pytest.approx(calibration.chosen.accuracy)
