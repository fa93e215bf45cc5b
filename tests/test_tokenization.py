"""SparseDANTokenizer: CountVectorizer equivalence, transformers tokenizer conventions, fast paths."""

import json
import re
from collections import Counter

import numpy as np
import pytest
import torch
from conftest import CORPUS, random_texts
from sklearn.feature_extraction.text import CountVectorizer

from hf_sparse_distill import SparseDANTokenizer


def counts_by_vectorizer(vectorizer: CountVectorizer, texts: list[str]) -> list[Counter]:
    matrix = (
        CountVectorizer(ngram_range=(1, 4), token_pattern=vectorizer.token_pattern, vocabulary=vectorizer.vocabulary_)
        .transform(texts)
        .tocsr()
    )
    rows = []
    for i in range(len(texts)):
        row = matrix.getrow(i)
        # our ids are the vectorizer's column + 1 (id 0 is the padding token)
        rows.append(Counter({int(col) + 1: int(count) for col, count in zip(row.indices, row.data)}))
    return rows


def test_ids_equal_countvectorizer_counts(fitted_vectorizer, tokenizer):
    texts = CORPUS + random_texts(400, seed=7)
    expected = counts_by_vectorizer(fitted_vectorizer, texts)
    batch = tokenizer(texts)["input_ids"]
    assert [Counter(ids) for ids in batch] == expected
    single = [tokenizer(text)["input_ids"] for text in texts]
    assert single == batch


def test_equivalence_with_pruned_vocabulary():
    """With max_features most n-grams are out of vocabulary (and prefixes of kept n-grams may be missing)."""
    texts = random_texts(300, seed=3)
    vectorizer = CountVectorizer(ngram_range=(1, 4), max_features=150).fit(texts)
    tokenizer = SparseDANTokenizer.from_ngrams(vectorizer.get_feature_names_out().tolist())
    assert [Counter(ids) for ids in tokenizer(texts)["input_ids"]] == counts_by_vectorizer(vectorizer, texts)


def test_equivalence_with_a_custom_token_pattern():
    """The SST-2 recipes' pattern keeps "n't", one-letter words and "!"/"?"; CountVectorizer given the same pattern
    still agrees id for id."""
    pattern = r"(?u)n't|\b\w+\b|[!?]"
    texts = random_texts(300, seed=5) + ["it does n't work !", "I can't say a thing?", "wo n't , is n't"]
    vectorizer = CountVectorizer(ngram_range=(1, 4), token_pattern=pattern, max_features=400).fit(texts)
    tokenizer = SparseDANTokenizer.from_ngrams(vectorizer.get_feature_names_out().tolist(), token_pattern=pattern)
    assert [Counter(ids) for ids in tokenizer(texts)["input_ids"]] == counts_by_vectorizer(vectorizer, texts)
    assert tokenizer.convert_ids_to_tokens(tokenizer("it does n't work !")["input_ids"]) == ["it", "n't", "!"]


def test_vocabulary_with_only_long_ngrams_and_unproducible_terms():
    """A 3-gram whose 1- and 2-gram prefixes are not in the vocabulary is still found; terms the analyser can
    never produce (upper case, punctuation, one letter, more than four words) are never matched."""
    tokenizer = SparseDANTokenizer.from_ngrams(["not very good", "Good", "good!", "a", "one two three four five"])
    ids = tokenizer("It is not very good. Good! a one two three four five")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == ["not very good"]


def test_ids_come_in_position_order_and_truncation_keeps_the_start(tokenizer):
    words = "the movie is not good".split()
    vocab = tokenizer.get_vocab()
    expected = [
        " ".join(words[i : i + n])
        for i in range(len(words))
        for n in range(1, 5)
        if i + n <= len(words) and " ".join(words[i : i + n]) in vocab
    ]
    assert len(expected) > len(words)  # the fixture vocabulary holds longer n-grams of this text
    ids = tokenizer(" ".join(words))["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == expected
    assert tokenizer(" ".join(words), truncation=True, max_length=3)["input_ids"] == ids[:3]


def test_default_truncation_length_is_max_ngrams(tokenizer):
    long_text = " ".join(["the movie is good"] * 2000)
    assert tokenizer.model_max_length == 2048
    assert len(tokenizer(long_text, truncation=True)["input_ids"]) == 2048
    assert len(tokenizer(long_text)["input_ids"]) > 2048
    bags = tokenizer.encode_bags([long_text, "good"])
    assert bags["input_ids"].shape[0] == 2048 + 1
    assert bags["offsets"].tolist() == [0, 2048]


def test_padding_attention_mask_and_tensors(tokenizer):
    texts = ["good", "", "the movie is not good", "!!!"]
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    lengths = [len(tokenizer(t)["input_ids"]) for t in texts]
    assert enc["input_ids"].shape == (4, max(lengths))
    assert enc["attention_mask"].sum(1).tolist() == lengths
    assert (enc["input_ids"][enc["attention_mask"] == 0] == tokenizer.pad_token_id).all()
    left = tokenizer(texts, padding=True, padding_side="left", return_tensors="np")
    assert isinstance(left["input_ids"], np.ndarray)
    for mask, n in zip(left["attention_mask"], lengths):
        assert mask[len(mask) - n :].all() and not mask[: len(mask) - n].any()
    multiple = tokenizer(texts, padding=True, pad_to_multiple_of=8, return_tensors="pt")
    assert multiple["input_ids"].shape[1] % 8 == 0
    fixed = tokenizer(texts, padding="max_length", max_length=20, truncation=True)
    assert all(len(row) == 20 for row in fixed["input_ids"])
    single = tokenizer("the movie", return_tensors="pt")
    assert single["input_ids"].dim() == 2 and single["input_ids"].shape[0] == 1
    empty = tokenizer("", return_tensors="pt")
    assert empty["input_ids"].shape == (1, 0) and empty["input_ids"].dtype == torch.long


def test_encode_bags_matches_padded_form(tokenizer):
    texts = ["good", "", "the movie is not good", "I hate this film"]
    padded = tokenizer(texts, padding=True, return_tensors="pt")
    bags = tokenizer.encode_bags(texts)
    assert torch.equal(bags["input_ids"], padded["input_ids"][padded["attention_mask"].bool()])
    lengths = padded["attention_mask"].sum(1)
    assert bags["offsets"].tolist() == (torch.cumsum(lengths, 0) - lengths).tolist()
    assert tokenizer.encode_bags("good", return_tensors=None)["offsets"] == [0]


def test_slow_tokenize_path_agrees_with_fast_path(tokenizer):
    for text in CORPUS + random_texts(50, seed=11):
        assert tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text)) == tokenizer(text)["input_ids"]
    assert tokenizer.tokenize("[PAD] good") == ["good"]


def test_ids_to_ngram_strings_and_decode(tokenizer):
    ids = tokenizer("the movie is not good")["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert "not good" in tokens and "the movie" in tokens
    assert tokenizer.convert_tokens_to_ids(tokens) == ids
    assert tokenizer.decode(ids) == "the movie is not good"
    with pytest.raises(KeyError, match="not an n-gram"):
        tokenizer.convert_tokens_to_ids("no such ngram here")


def test_save_and_reload(tmp_path, tokenizer):
    tokenizer.save_pretrained(tmp_path)
    vocab = json.loads((tmp_path / "ngram_vocab.json").read_text(encoding="utf-8"))
    assert vocab == tokenizer.get_vocab() and vocab["[PAD]"] == 0
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["ngram_range"] == [1, 4] and config["model_max_length"] == 2048
    reloaded = SparseDANTokenizer.from_pretrained(tmp_path)
    texts = random_texts(50, seed=5)
    assert reloaded(texts)["input_ids"] == tokenizer(texts)["input_ids"]
    assert len(reloaded) == tokenizer.vocab_size == len(vocab)


@pytest.mark.parametrize("bad", [123, 1.5, b"bytes", ["ok", 3], ["ok", None]])
def test_non_string_input_raises_type_error(tokenizer, bad):
    with pytest.raises(TypeError):
        tokenizer(bad)
    with pytest.raises(TypeError):
        tokenizer.encode_bags(bad)


def test_invalid_vocabularies_are_rejected():
    with pytest.raises(ValueError, match="exactly one of"):
        SparseDANTokenizer()
    with pytest.raises(ValueError, match="pad_token"):
        SparseDANTokenizer(vocab={"good": 0})
    with pytest.raises(ValueError, match="0 .. len"):
        SparseDANTokenizer(vocab={"[PAD]": 0, "good": 5})
    with pytest.raises(ValueError, match="twice"):
        SparseDANTokenizer.from_ngrams(["good", "good"])


def test_custom_ngram_range_and_case(tmp_path):
    tokenizer = SparseDANTokenizer.from_ngrams(["good", "not good", "Good"], ngram_range=(2, 2), lowercase=False)
    assert tokenizer.convert_ids_to_tokens(tokenizer("not good Good")["input_ids"]) == ["not good"]
    tokenizer.save_pretrained(tmp_path)
    reloaded = SparseDANTokenizer.from_pretrained(tmp_path)
    assert reloaded.ngram_range == [2, 2] and reloaded.lowercase is False


def test_hash_index_equals_a_dict():
    from hf_sparse_distill.models.sparse_dan.tokenization_sparse_dan import HashIndex

    rng = np.random.default_rng(0)
    keys = np.unique(rng.integers(0, 2**40, size=50_000))
    values = rng.integers(0, 1_000_000, size=len(keys))
    index = HashIndex(keys, values)
    queries = np.concatenate([keys, rng.integers(0, 2**40, size=20_000)])
    reference = dict(zip(keys.tolist(), values.tolist()))
    assert index.get(queries).tolist() == [reference.get(q, -1) for q in queries.tolist()]
    assert HashIndex(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)).get(keys[:3]).tolist() == [-1] * 3


def test_hash_index_with_keys_crowding_one_slot():
    """Hundreds of keys with the same home slot (the last one): they probe past the end of the table into spare
    slots, which grow as needed, and every one is still found."""
    from hf_sparse_distill.models.sparse_dan.tokenization_sparse_dan import HashIndex

    rng = np.random.default_rng(1)
    candidates = np.unique(rng.integers(0, 2**40, size=2_000_000))
    probe = HashIndex(candidates[:300], np.zeros(300, dtype=np.int64))  # same table size as the index below
    crowd = candidates[probe._hash(candidates) == probe._hash(candidates).max()][:300]
    assert len(crowd) == 300
    index = HashIndex(crowd, np.arange(300))
    assert index.max_probe >= 299 and index.slot_keys.size > 1024 + 64
    absent = np.setdiff1d(candidates[:5000], crowd)
    assert index.get(np.concatenate([crowd, absent])).tolist() == list(range(300)) + [-1] * len(absent)


def test_hash_index_long_probe_far_from_the_end():
    """A crowd of keys in the middle of the table makes lookups read far ahead; a key whose home is the last slot
    then reads past the end of the build's own slots (they are padded for it)."""
    from hf_sparse_distill.models.sparse_dan.tokenization_sparse_dan import HashIndex

    rng = np.random.default_rng(2)
    candidates = np.unique(rng.integers(0, 2**40, size=2_000_000))
    homes = HashIndex(candidates[:201], np.zeros(201, dtype=np.int64))._hash(candidates)  # same table size
    crowd = candidates[homes == 200][:200]
    last = candidates[homes == homes.max()][:2]  # one stored, one absent, both with the last home slot
    index = HashIndex(np.concatenate([crowd, last[:1]]), np.arange(201))
    assert index.max_probe > 64
    assert index.get(np.concatenate([crowd, last])).tolist() == list(range(201)) + [-1]


@pytest.mark.parametrize("pattern", [r"(?u)\b\w\w+\b", r"(?u)n't|\b\w+\b|[!?]", r"\S+", r"[^\s,]+"])
def test_ascii_and_other_texts_agree_with_countvectorizer(pattern):
    """ASCII texts are read with the pattern compiled for bytes, the others with the str pattern, in one batch; the
    ids are CountVectorizer's either way, also where `\\s` differs between the two (`\\x1c`-`\\x1f`)."""
    texts = random_texts(200, seed=11) + ["a\x1cb c\x1fd", "plain ascii text", "naïve\x1ccafé", "x\x1d,y z"]
    texts += [f"plain {i} text, here" for i in range(20)]
    vectorizer = CountVectorizer(ngram_range=(1, 4), token_pattern=pattern, max_features=3000).fit(texts)
    tokenizer = SparseDANTokenizer.from_ngrams(vectorizer.get_feature_names_out().tolist(), token_pattern=pattern)
    assert tokenizer.matcher.findall_ascii is not None  # the bytes path is in use
    assert [Counter(ids) for ids in tokenizer(texts)["input_ids"]] == counts_by_vectorizer(vectorizer, texts)


def test_mixed_batch_equals_text_by_text():
    """In a batch, the texts the bytes pattern cannot read (non-ASCII, `\\x1c`-`\\x1f`) are read with the str
    pattern and put back in their place: first, last, empty or next to each other."""
    texts = random_texts(40, seed=3)
    texts = ["Élan café good", *texts[:5], "naïve\x1cfilm", "é", "", "x\x1dgood", *texts[5:], "the end, naïve"]
    vectorizer = CountVectorizer(ngram_range=(1, 3), token_pattern=r"(?u)\b\w+\b").fit(texts)
    tokenizer = SparseDANTokenizer.from_ngrams(
        vectorizer.get_feature_names_out().tolist(), ngram_range=(1, 3), token_pattern=r"(?u)\b\w+\b"
    )
    ids, lengths = tokenizer.matcher.encode(texts)
    one_by_one = [tokenizer.matcher.encode([text]) for text in texts]
    assert lengths.tolist() == [int(n[0]) for _, n in one_by_one]
    assert ids.tolist() == [i for text_ids, _ in one_by_one for i in text_ids.tolist()]
    assert lengths[0] > 0 and lengths[-1] > 0


@pytest.mark.parametrize("pattern", [r"(?u)\b\w\w+\b", r"(?u)n't|\b\w+\b|[!?]", r"\S+", r"^\w+", r"\w+ \w+"])
def test_batch_word_pass_equals_text_by_text(pattern):
    """Words are found for a whole batch at once when the pattern allows it; the result is the same as text by
    text, also for texts holding the separator word itself and for patterns that cannot be joined."""
    from hf_sparse_distill.models.sparse_dan.tokenization_sparse_dan import NgramMatcher

    texts = random_texts(200, seed=5)
    vocab = {"[PAD]": 0}
    for text in texts:
        for word in re.findall(pattern, text.lower()):
            vocab.setdefault(word, len(vocab))
    matcher = NgramMatcher(vocab, (1, 3), True, pattern, skip_ids=[0])
    assert matcher.joinable == (pattern in (r"(?u)\b\w\w+\b", r"(?u)n't|\b\w+\b|[!?]", r"\S+"))
    one_by_one = [matcher.encode([t]) for t in texts]
    for batch in (texts, texts[:50] + [f"a {matcher.SEPARATOR} b"] + texts[50:60]):
        ids, lengths = matcher.encode(batch)
        expected = [matcher.encode([t]) for t in batch] if batch is not texts else one_by_one
        assert lengths.tolist() == [int(e[1][0]) for e in expected]
        assert ids.tolist() == [i for e in expected for i in e[0].tolist()]
