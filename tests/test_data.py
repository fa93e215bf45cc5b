"""Reading data through `datasets` (local files and a Hub dataset from the cache) and building the KD corpus."""

import json
import shutil
from unittest import mock

import numpy as np
import pytest
import torch
from conftest import random_texts

from hf_sparse_distill.distillation.data import (
    TextSet,
    build_kd_corpus,
    dedup_key,
    load_source,
    overlap_key,
    prepare_data,
    select_split,
    split_clauses,
    split_sentences,
)
from hf_sparse_distill.distillation.recipe import AugmentConfig, DataConfig, DatasetSource, VocabConfig
from hf_sparse_distill.results import DataReport

SST2_PATTERN = r"(?u)n't|\b\w+\b|[!?]"


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def test_local_formats(tmp_path):
    rows = [{"text": "Good movie.", "label": 1}, {"text": "Bad film!", "label": 0}]
    jsonl = write_jsonl(tmp_path / "a.jsonl", rows)
    (tmp_path / "b.csv").write_text("sentence,y\nGood movie.,positive\nBad film!,negative\n")
    (tmp_path / "c.txt").write_text("first line\nsecond line\n")
    data = load_source(DatasetSource(path=jsonl))
    assert data.texts == ["Good movie.", "Bad film!"] and data.labels == [1, 0]
    csv = load_source(
        DatasetSource(path=str(tmp_path / "b.csv"), text_column="sentence", label_column="y"),
        label2id={"negative": 0, "positive": 1},
    )
    assert csv.labels == [1, 0]
    txt = load_source(DatasetSource(path=str(tmp_path / "c.txt"), label_column=None))
    assert txt.texts == ["first line", "second line"] and txt.labels is None
    limited = load_source(DatasetSource(path=jsonl, max_rows=1))
    assert limited.texts == ["Good movie."]


def test_clear_errors(tmp_path):
    jsonl = write_jsonl(tmp_path / "a.jsonl", [{"body": "x", "label": "weird"}])
    with pytest.raises(FileNotFoundError):
        load_source(DatasetSource(path=str(tmp_path / "missing.jsonl")))
    with pytest.raises(ValueError, match="no text column 'text'"):
        load_source(DatasetSource(path=jsonl))
    with pytest.raises(ValueError, match="not among"):
        load_source(DatasetSource(path=jsonl, text_column="body"), label2id={"neg": 0})


def test_sentence_splitting(tmp_path):
    review = "I loved it. The acting was great!<br /><br />But the end? Weak... 3.5 stars out of 5."
    assert split_sentences(review) == [
        "I loved it.",
        "The acting was great!",
        "But the end?",
        "Weak...",
        "3.5 stars out of 5.",
    ]
    path = write_jsonl(tmp_path / "r.jsonl", [{"text": review}] * 3)
    data = load_source(DatasetSource(path=path, label_column=None, split_sentences=True, min_words=2, max_rows=4))
    assert data.texts == ["I loved it.", "The acting was great!", "But the end?", "3.5 stars out of 5."]


def test_clause_splitting(tmp_path):
    assert split_clauses("Slow at first, but the last act (with its score) works; see it.") == [
        "Slow at first",
        "the last act",
        "with its score",
        "works",
        "see it.",
    ]
    assert split_clauses("While it lasts -- fun.") == ["it lasts", "fun."]
    assert split_clauses("A plain sentence without a break.") == []  # no sub-clause: the sentence itself is not kept
    assert split_clauses("Butter and whiles are words, not breaks.") == ["Butter and whiles are words", "not breaks."]
    review = "Great cast, weak script. A fine film.<br />It drags, though the ending is good."
    path = write_jsonl(tmp_path / "r.jsonl", [{"text": review}] * 2)
    source = DatasetSource(path=path, label_column=None, split_clauses=True, min_words=2, max_rows=5)
    data = load_source(source)
    assert data.texts == ["Great cast", "weak script.", "It drags", "the ending is good.", "Great cast"]
    assert data.labels is None


def test_match_keeps_the_unlabeled_texts_it_finds(tmp_path, monkeypatch):
    """`match` keeps the pieces of a split source, or the rows of a whole one (pairs with their second text), in
    which it is found, the same through the memory-mapped and the streamed reader; labeled splits refuse it."""
    import datasets

    from hf_sparse_distill.distillation.data import load_unlabeled

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    review = "Who made this? I loved it. Why the long middle part? Weak."
    path = write_jsonl(tmp_path / "r.jsonl", [{"text": review, "other": "x"}, {"text": "Is it good?", "other": "y"}])
    split = DatasetSource(path=path, label_column=None, split_sentences=True, match=r"\?$")
    expected = ["Who made this?", "Why the long middle part?", "Is it good?"]
    assert list(load_unlabeled(split)["text"]) == expected
    assert list(load_unlabeled(DatasetSource(**{**split.__dict__, "streaming": True}))["text"]) == expected
    pairs = DatasetSource(path=path, label_column=None, text_pair_column="other", match=r"^Is ")
    for source in (pairs, DatasetSource(**{**pairs.__dict__, "streaming": True})):
        kept = load_unlabeled(source)
        assert list(kept["text"]) == ["Is it good?"] and list(kept["text_pair"]) == ["y"]
    with pytest.raises(ValueError, match="match applies to unlabeled text"):
        load_source(DatasetSource(path=path, label_column=None, match="x"))


def test_kd_corpus_removes_evaluation_texts_and_duplicates():
    train = TextSet(["a good movie", "a bad movie"], [1, 0])
    dev = TextSet(["It's a GREAT film!"], [1])
    test = TextSet(["truly awful"], [0])
    unlabeled = [
        TextSet(
            [
                "it's a great film",
                "fresh text here",
                "A GOOD movie!",
                "Fresh text here.",
                "truly, awful",
                "!!",
                "new one",
            ]
        ),
    ]
    corpus = build_kd_corpus(train, unlabeled, [dev, test], dedup_key(VocabConfig()))
    assert list(corpus.texts) == ["a good movie", "a bad movie", "fresh text here", "new one"]
    assert corpus.labels.tolist() == [1, 0, -1, -1] and corpus.num_train == 2
    assert corpus.report == DataReport(
        train=2,
        unlabeled_read=7,
        unlabeled_removed_eval_overlap=2,
        unlabeled_removed_duplicate=2,
        unlabeled_removed_empty=1,
        unlabeled_kept=2,
        kd_total=4,
    )
    key = dedup_key(VocabConfig())  # CountVectorizer's default analysis: 2+ word characters, no punctuation
    assert key("It's a GREAT film!") == key("it s a great film") == "it great film"


def test_unlabeled_sources_stay_on_disk_and_give_the_same_corpus(tmp_path, monkeypatch):
    """An unlabeled source is read as a memory-mapped dataset (sentences split by `datasets.map`); the corpus built
    from it, with the de-duplication keys sorted in several partitions, equals the one built from the same texts in
    memory with one partition (the fingerprint follows the texts, labels and shards); a corpus of the same identity
    is read back, another identity is built again."""
    import hf_sparse_distill.distillation.data as data_module
    from hf_sparse_distill.distillation.data import load_unlabeled

    reviews = [{"text": " ".join(random_texts(6, seed=i)).replace("!", ". The"), "label": i % 2} for i in range(60)]
    path = write_jsonl(tmp_path / "reviews.jsonl", reviews + reviews[:10])
    source = DatasetSource(path=path, label_column=None, split_sentences=True, min_words=2, max_rows=150)
    on_disk = load_unlabeled(source)
    in_memory = load_source(source)
    assert on_disk.column_names == ["text"] and list(on_disk["text"]) == in_memory.texts and len(on_disk) == 150
    train, dev = TextSet(in_memory.texts[:20], [1] * 20), TextSet(in_memory.texts[30:40], [0] * 10)
    key = dedup_key(VocabConfig())
    expected = build_kd_corpus(train, [in_memory], [dev], key, batch_size=50)
    monkeypatch.setattr(data_module, "_PARTITION_ROWS", 64)
    corpus = build_kd_corpus(train, [on_disk], [dev], key, folder=tmp_path / "kd", identity="a", batch_size=50)
    assert list(corpus.texts) == list(expected.texts) and corpus.report == expected.report
    assert corpus.report.unlabeled_removed_duplicate > 0 and corpus.report.unlabeled_removed_eval_overlap > 0
    assert corpus.fingerprint == expected.fingerprint and corpus.labels.tolist() == expected.labels.tolist()
    written = {path: path.stat().st_mtime_ns for path in (tmp_path / "kd" / "shards").glob("*.arrow")}
    assert len(written) > 3  # one shard per batch of 50 examples that kept any
    again = build_kd_corpus(train, [on_disk], [dev], key, folder=tmp_path / "kd", identity="a", batch_size=50)
    assert {path: path.stat().st_mtime_ns for path in written} == written and again.fingerprint == corpus.fingerprint
    other = build_kd_corpus(train, [on_disk], [], key, folder=tmp_path / "kd", identity="b")
    assert len(other) > len(corpus) and not (tmp_path / "kd" / "work").exists()


@pytest.mark.parametrize("max_words", [None, 5])
def test_a_few_sentences_of_a_large_source_do_not_split_all_of_it(tmp_path, monkeypatch, max_words):
    """`split_sentences` with `max_rows` splits the source window by window until it has `max_rows` sentences: the
    same sentences as splitting everything and taking the first ones, without splitting the rest (with a low
    `max_words`, most reviews give none and several windows are needed)."""
    import hf_sparse_distill.distillation.data as data_module
    from hf_sparse_distill.distillation.data import load_unlabeled

    reviews = [{"text": " ".join(random_texts(4, seed=i)).replace("!", ". The")} for i in range(8_000)]
    path = write_jsonl(tmp_path / "reviews.jsonl", reviews)
    options = {"path": path, "label_column": None, "split_sentences": True, "min_words": 2, "max_words": max_words}
    whole = list(load_unlabeled(DatasetSource(**options))["text"])
    split_texts = []
    pieces = data_module._pieces

    def counted(text, source):
        split_texts.append(text)
        return pieces(text, source)

    monkeypatch.setattr(data_module, "_pieces", counted)
    few = list(load_unlabeled(DatasetSource(**options, max_rows=1_500))["text"])  # windows: maps of their own
    assert few == whole[:1_500] and len(whole) > 1_500
    per_review = [len(pieces(r["text"], DatasetSource(**options))) for r in reviews]
    rows_needed = int(np.searchsorted(np.cumsum(per_review), 1_500)) + 1  # reviews that give the first 1,500
    assert rows_needed <= len(split_texts) < min(len(reviews), 1.5 * rows_needed + 1_000)  # not all 8,000


def test_a_streamed_source_is_copied_once_and_resumes(tmp_path, monkeypatch):
    """`streaming: true` reads the source as a stream into Arrow shards under the datasets cache: the same texts as
    the memory-mapped path; an interrupted copy resumes after its last shard, a finished one is not read again."""
    import datasets

    import hf_sparse_distill.distillation.data as data_module
    from hf_sparse_distill.distillation.data import load_unlabeled

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(data_module, "STREAM_SHARD_ROWS", 40)
    reviews = [{"text": " ".join(random_texts(5, seed=i)).replace("!", ". The")} for i in range(80)]
    path = write_jsonl(tmp_path / "reviews.jsonl", reviews)
    source = DatasetSource(path=path, label_column=None, split_sentences=True, min_words=2, max_rows=300)
    expected = list(load_unlabeled(source)["text"])
    streamed = DatasetSource(**{**source.__dict__, "streaming": True})
    real, calls = data_module._pieces, []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 30:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(data_module, "_pieces", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_unlabeled(streamed)
    monkeypatch.setattr(data_module, "_pieces", real)
    folder = next((tmp_path / "cache" / "hf_sparse_distill_streams").iterdir())
    first = {p: p.stat().st_mtime_ns for p in folder.glob("shard-*.arrow")}
    assert first, "some shards were finished before the interruption"
    assert list(load_unlabeled(streamed)["text"]) == expected
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in first.items())
    monkeypatch.setattr(data_module, "_pieces", None)  # a finished copy is not streamed again
    assert list(load_unlabeled(streamed)["text"]) == expected


@pytest.mark.parametrize("interrupt", ["key_digests", "_write_shard"])
def test_an_interrupted_corpus_build_resumes_from_its_last_batch(tmp_path, monkeypatch, interrupt):
    """Interrupted while hashing keys or while writing shards, the next build with the same identity redoes only
    the batch it was in (the calls it makes are those a build in one go makes, less the batches finished) and
    keeps the shards already written; the corpus equals one built in one go."""
    import hf_sparse_distill.distillation.data as data_module

    texts = random_texts(600, seed=4)
    train, unlabeled = TextSet(texts[:40], [1] * 40), [TextSet(texts[40:] + texts[100:150])]
    dev = [TextSet([texts[45].replace(" ", "")], [1])]  # the same letters as an unlabeled text of the first batch
    key = dedup_key(VocabConfig())
    real, calls = getattr(data_module, interrupt), []

    def counted(*args, **kwargs):
        calls.append(1)
        if len(calls) == stop_at:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(data_module, interrupt, counted)
    stop_at = None
    expected = build_kd_corpus(train, unlabeled, dev, key, batch_size=60)
    # key_digests hashes the held-out and train keys (3 calls), then each batch's overlap and de-duplication keys
    in_one_go, calls[:], stop_at = len(calls), [], 8 if interrupt == "key_digests" else 5
    folder = tmp_path / "kd"
    with pytest.raises(KeyboardInterrupt):
        build_kd_corpus(train, unlabeled, dev, key, folder=folder, identity="x", batch_size=60)
    shards = {p: p.stat().st_mtime_ns for p in (folder / "work" / "shards").glob("*.arrow")}
    calls[:], stop_at = [], None
    corpus = build_kd_corpus(train, unlabeled, dev, key, folder=folder, identity="x", batch_size=60)
    finished_calls = 2 * 2 if interrupt == "key_digests" else 4  # two batches hashed, or four shards written
    assert len(calls) == in_one_go - finished_calls
    assert list(corpus.texts) == list(expected.texts) and corpus.fingerprint == expected.fingerprint
    assert texts[45] not in corpus.texts and corpus.report.unlabeled_removed_eval_overlap == 1
    assert all((folder / "shards" / p.name).stat().st_mtime_ns == mtime for p, mtime in shards.items())
    assert len(shards) == (0 if interrupt == "key_digests" else 4) and not (folder / "work").exists()


def test_dedup_key_follows_the_recipe_word_pattern():
    """Under the SST-2 recipe's pattern "!" and "?" and one-letter words are words: texts that differ by them give
    the student different n-grams and are both kept; the default pattern would merge them."""
    sst2 = dedup_key(VocabConfig(token_pattern=SST2_PATTERN))
    assert sst2("great!") != sst2("great?") and sst2("a film") != sst2("film")
    assert sst2("Does n't work !") == sst2("does  n't work!")
    default = dedup_key(VocabConfig())
    assert default("great!") == default("great?")
    train = TextSet(["fine"], [1])
    unlabeled = [TextSet(["great!", "great?", "GREAT !"])]
    corpus = build_kd_corpus(train, unlabeled, [], sst2)
    assert list(corpus.texts) == ["fine", "great!", "great?"] and corpus.report.unlabeled_removed_duplicate == 1
    case_kept = dedup_key(VocabConfig(lowercase=False))
    assert case_kept("Great film") != case_kept("great film")


def test_hub_dataset_ids_go_to_load_dataset(monkeypatch):
    """A Hub id (with config, split, revision) is handed to `datasets.load_dataset` as is. The download itself
    cannot run offline (datasets resolves Hub repos through the API), so it is replaced by an in-memory dataset."""
    import datasets

    calls = []

    def fake_load_dataset(path, name=None, data_files=None, split=None, revision=None):
        calls.append((path, name, data_files, split, revision))
        return datasets.Dataset.from_dict({"sentence": ["good", "bad"], "label": [1, 0], "idx": [0, 1]})

    monkeypatch.setattr("hf_sparse_distill.distillation.data.datasets.load_dataset", fake_load_dataset)
    data = load_source(
        DatasetSource(path="nyu-mll/glue", name="sst2", split="validation", revision="abc", text_column="sentence")
    )
    assert calls == [("nyu-mll/glue", "sst2", None, "validation", "abc")]
    assert data.texts == ["good", "bad"] and data.labels == [1, 0]


def test_label_map_converts_and_drops(tmp_path):
    rows = [{"text": f"t{i}", "label": i} for i in range(5)]
    path = write_jsonl(tmp_path / "sst5.jsonl", rows)
    data = load_source(DatasetSource(path=path, label_map={0: 0, 1: 0, 3: 1, 4: 1}))
    assert data.texts == ["t0", "t1", "t3", "t4"] and data.labels == [0, 0, 1, 1]


def test_selection_from_the_train_split_is_removed_from_it():
    train = TextSet([f"text number {i:02d}" for i in range(50)], [i % 2 for i in range(50)])
    config = DataConfig(train=DatasetSource(path="x"), dev=DatasetSource(path="y"), select_size=10, select_seed=3)
    selection = select_split(config, train, dedup_key(VocabConfig()), {"neg": 0, "pos": 1})
    assert len(selection.texts) == 10 and len(selection.train) == 40 and selection.removed_from_train == 10
    assert not set(selection.texts.texts) & set(selection.train.texts)
    again = select_split(config, train, dedup_key(VocabConfig()), {"neg": 0, "pos": 1})
    assert again.texts == selection.texts  # seeded
    other = DataConfig(train=config.train, dev=config.dev, select_size=10, select_seed=4)
    assert select_split(other, train, dedup_key(VocabConfig()), {"neg": 0, "pos": 1}).texts != selection.texts


def test_held_out_sentences_take_the_phrases_seen_only_in_them(tmp_path):
    """SST-style data: full sentences in one file, their phrases in the train split. Holding sentences out removes
    the phrases found only inside them, and keeps phrases that other sentences share (as for dev sentences)."""
    sentences = [
        {"text": "a gripping and moving film", "label": 4},
        {"text": "a dull and lifeless film", "label": 0},
        {"text": "the plot is thin", "label": 2},  # neutral: dropped by the label map
        {"text": "moving performances all round", "label": 3},
    ]
    path = write_jsonl(tmp_path / "sentences.jsonl", sentences)
    phrases = TextSet(
        ["gripping and moving", "gripping", "moving", "a dull and lifeless film", "dull", "lifeless film", "film",
         "moving performances"],
        [1, 1, 1, 0, 0, 0, 1, 1],
    )  # fmt: skip
    config = DataConfig(
        train=DatasetSource(path="x"), dev=DatasetSource(path="y"), select_size=1, select_seed=0,
        select=DatasetSource(path=path, label_map={0: 0, 1: 0, 3: 1, 4: 1}), select_drop_subtexts=True,
    )  # fmt: skip
    key = dedup_key(VocabConfig())
    for seed in range(10):
        config.select_seed = seed
        selection = select_split(config, phrases, key, {"neg": 0, "pos": 1})
        held_out = selection.texts.texts[0]
        if held_out == "a gripping and moving film":
            # "moving" is also in "moving performances all round"; "film" in "a dull and lifeless film"
            assert selection.train.texts == ["moving", "a dull and lifeless film", "dull", "lifeless film", "film",
                                             "moving performances"]  # fmt: skip
            assert selection.texts.labels == [1]
            break
    else:
        raise AssertionError("no seed drew the first sentence")
    corpus = build_kd_corpus(
        selection.train, [TextSet(["gripping", "brand new text"])], [], key, excluded=selection.excluded_keys
    )
    assert corpus.texts[-1:] == ["brand new text"] and corpus.report.unlabeled_removed_eval_overlap == 1


def test_held_out_texts_tokenized_another_way_do_not_reach_the_student(tmp_path):
    """SST's sentences are Treebank-tokenized ("does n't", -LRB-, `` quotes); MR holds the same sentences as plain
    text, SST-2's train phrases a few of them in a third ("gon na"). A copy of a selection or dev sentence in another
    tokenization is held out like an exact copy, from the unlabeled texts and from train: the recipe's own key tells
    them apart, `overlap_key` does not."""
    selection = "The film does n't sustain its promise -LRB- sadly -RRB- , `` Elling '' aside ."
    dev = "It is n't a charming , often hilarious film ."
    in_select = "But on the whole , you 're gonna like this movie ."
    copies = [
        'the film doesn\'t sustain its promise (sadly), "elling" aside.',
        "it isn't a charming, often hilarious film.",
    ]
    key = dedup_key(VocabConfig(token_pattern=SST2_PATTERN))
    assert key(selection) != key(copies[0]) and overlap_key(selection) == overlap_key(copies[0])
    assert key(dev) != key(copies[1]) and overlap_key(dev) == overlap_key(copies[1])
    in_train = "but on the whole , you 're gon na like this movie"  # SST-2's phrase of the SST selection sentence
    config = DataConfig(
        train=DatasetSource(
            path=write_jsonl(tmp_path / "train.jsonl", [{"text": t, "label": 1} for t in ["a fine film", in_train]])
        ),
        dev=DatasetSource(path=write_jsonl(tmp_path / "dev.jsonl", [{"text": dev, "label": 1}])),
        select=DatasetSource(
            path=write_jsonl(tmp_path / "sentences.jsonl", [{"text": t, "label": 0} for t in [selection, in_select]])
        ),
        select_size=2,
        unlabeled=[
            DatasetSource(
                path=write_jsonl(tmp_path / "mr.jsonl", [{"text": t} for t in [*copies, "an unseen sentence ."]]),
                label_column=None,
            )
        ],
    )
    data = prepare_data(config, VocabConfig(token_pattern=SST2_PATTERN), AugmentConfig(), {"neg": 0, "pos": 1})
    assert data.select.texts == [selection, in_select] and data.train.texts == ["a fine film"]
    assert list(data.corpus.texts) == ["a fine film", "an unseen sentence ."]
    assert (
        data.corpus.report.unlabeled_removed_eval_overlap == 2 and data.corpus.report.train_removed_for_selection == 1
    )


def test_a_held_out_copy_written_without_accents_is_held_out_and_the_rule_is_part_of_the_corpus_identity(
    tmp_path, monkeypatch
):
    """SST writes "amélie" and "naiveté", other review sites "Amelie" and "naivete": a copy of a dev sentence without
    its accents is held out like an exact copy. A corpus kept in a folder records the version of that comparison, so
    a corpus built under an earlier rule (accents compared as written) is built again, not reused."""
    import hf_sparse_distill.distillation.data as data_module

    dev = "she 's as exuberant as she was in amélie ."
    assert overlap_key(dev) == overlap_key("She's as exuberant as she was in Amelie.") == overlap_key(dev.upper())
    config = DataConfig(
        train=DatasetSource(
            path=write_jsonl(tmp_path / "train.jsonl", [{"text": t, "label": 1} for t in ["a fine film", "dull"]])
        ),
        dev=DatasetSource(path=write_jsonl(tmp_path / "dev.jsonl", [{"text": dev, "label": 1}])),
        select_size=1,
        unlabeled=[
            DatasetSource(
                path=write_jsonl(tmp_path / "u.jsonl", [{"text": "She's as exuberant as she was in Amelie."}]),
                label_column=None,
            )
        ],
    )
    args = (config, VocabConfig(), AugmentConfig(), {"neg": 0, "pos": 1})
    data = prepare_data(*args, folder=tmp_path / "kd")
    assert len(data.corpus) == 1 and data.corpus.report.unlabeled_removed_eval_overlap == 1
    manifest = tmp_path / "kd" / data_module.CORPUS_MANIFEST
    built = manifest.stat().st_mtime_ns
    prepare_data(*args, folder=tmp_path / "kd")
    assert manifest.stat().st_mtime_ns == built  # same inputs, same rule: read back
    monkeypatch.setattr(data_module, "OVERLAP_KEY_VERSION", data_module.OVERLAP_KEY_VERSION + 1)
    prepare_data(*args, folder=tmp_path / "kd")
    assert manifest.stat().st_mtime_ns != built


def test_a_corpus_with_nothing_left_to_label_is_an_error():
    key = dedup_key(VocabConfig())
    dev = TextSet(["A dull film."], [0])
    with pytest.raises(ValueError, match="the KD corpus is empty"):
        build_kd_corpus(TextSet(["good"], [1]), [TextSet(["a dull film"])], [dev], key, include_train=False)


def test_dev_texts_found_in_train_in_another_tokenization_are_reported(tmp_path, caplog):
    """SST-2 train holds Treebank-tokenized text ("does n't"), a user's dev set may hold the same sentence as
    written ("doesn't"): the warning compares them as held-out texts are compared (`overlap_key`), not word by word."""
    config = DataConfig(
        train=DatasetSource(
            path=write_jsonl(
                tmp_path / "train.jsonl", [{"text": t, "label": 1} for t in ["it does n't work", "fine", "ok"]]
            )
        ),
        dev=DatasetSource(
            path=write_jsonl(tmp_path / "dev.jsonl", [{"text": t, "label": 0} for t in ["It doesn't work.", "new"]])
        ),
        select_size=1,
    )
    with caplog.at_level("WARNING", logger="hf_sparse_distill"):
        prepare_data(config, VocabConfig(token_pattern=SST2_PATTERN), AugmentConfig(), {"neg": 0, "pos": 1})
    assert "1 of the 2 dev texts are also train texts" in caplog.text


def test_a_text_with_the_words_of_a_held_out_copy_is_held_out_too():
    """Under the default word pattern (two letters or more) "its a film" and "its film" give the student the same
    n-grams; the first is dev's "It's a film." in other punctuation (the same letters), so both go."""
    key = dedup_key(VocabConfig())
    dev = TextSet(["It's a film."], [1])
    assert key(dev.texts[0]) != key("its a film") == key("its film")
    corpus = build_kd_corpus(TextSet(["good"], [1]), [TextSet(["its a film", "new text", "its film"])], [dev], key)
    assert list(corpus.texts) == ["good", "new text"] and corpus.report.unlabeled_removed_eval_overlap == 2


def test_encoding_on_disk_matches_memory_and_resumes(tokenizer, tmp_path):
    from hf_sparse_distill.distillation.encoding import encode_texts

    texts = random_texts(500, seed=21) + ["", "!!!"]
    in_memory = encode_texts(tokenizer, texts, max_ngrams=7, chunk_size=64, show_progress=False)
    folder = tmp_path / "encoded"
    on_disk = encode_texts(
        tokenizer, texts, max_ngrams=7, chunk_size=64, show_progress=False, folder=folder, identity="a"
    )
    assert isinstance(on_disk.ids, np.memmap) and not list(folder.glob("ids-*.npy"))  # chunks joined, then removed
    np.testing.assert_array_equal(on_disk.ids, in_memory.ids)
    np.testing.assert_array_equal(on_disk.lengths, in_memory.lengths)
    rows = np.array([3, 0, 501, 250])
    for a, b in zip(on_disk.batch(rows), in_memory.batch(rows)):
        assert a.dtype == b.dtype == torch.int64 and torch.equal(a, b)
    # an interrupted encoding: the chunks written are kept, the others encoded, the result the same
    shutil.rmtree(folder)
    calls = []
    real = tokenizer.matcher.encode
    with mock.patch.object(tokenizer.matcher, "encode", side_effect=lambda t, m: calls.append(len(t)) or real(t, m)):
        with pytest.raises(KeyboardInterrupt):
            with mock.patch("hf_sparse_distill.distillation.encoding.save_npy", side_effect=_interrupt_after(5)):
                encode_texts(tokenizer, texts, 7, 64, show_progress=False, folder=folder, identity="a")
        calls.clear()
        resumed = encode_texts(tokenizer, texts, 7, 64, show_progress=False, folder=folder, identity="a")
        assert len(calls) == 8 - 2  # 8 chunks, 2 finished before the interruption (ids + lengths files each)
        np.testing.assert_array_equal(resumed.ids, in_memory.ids)
        calls.clear()
        encode_texts(tokenizer, texts, 7, 64, show_progress=False, folder=folder, identity="a")
        assert calls == []  # read back
        encode_texts(tokenizer, texts[:100], 7, 64, show_progress=False, folder=folder, identity="b")
        assert calls == [64, 36]  # another identity: encoded again


def _interrupt_after(saves: int):
    from hf_sparse_distill.distillation.encoding import save_npy as real

    count = iter(range(10**6))

    def save(path, array):
        if next(count) == saves:
            raise KeyboardInterrupt
        real(path, array)

    return save


def test_pair_batches_interleave_the_two_encodings(tokenizer, tmp_path):
    """Sentence pairs are encoded as two corpora (on disk, nothing joined in memory); a batch holds the bags of
    each pair side by side, exactly as the texts' own encodings give them."""
    from hf_sparse_distill.distillation.encoding import EncodedPairs, encode_texts

    firsts, seconds = random_texts(300, seed=31), random_texts(300, seed=32)
    pairs = encode_texts(
        tokenizer, firsts, 6, chunk_size=64, show_progress=False, pairs=seconds, folder=tmp_path / "enc", identity="p"
    )
    assert isinstance(pairs, EncodedPairs) and isinstance(pairs.first.ids, np.memmap) and len(pairs) == 300
    rows = np.array([5, 0, 299, 5])
    ids, offsets = pairs.batch(rows)
    bounds = [*offsets.tolist(), len(ids)]
    for k, row in enumerate(np.repeat(rows, 2)):
        text = (firsts if k % 2 == 0 else seconds)[row]
        expected, _ = encode_texts(tokenizer, [text], 6, show_progress=False).batch(np.array([0]))
        assert ids[bounds[k] : bounds[k + 1]].tolist() == expected.tolist()
    np.testing.assert_array_equal(pairs.example_lengths, pairs.first.lengths + pairs.second.lengths)


def test_only_the_main_process_builds_the_corpus_and_settings_are_checked(tmp_path):
    """A process other than the main one reads the corpus the main one built and never writes the folder; options
    that do not apply to a split are refused instead of ignored."""
    from hf_sparse_distill.distillation.data import load_unlabeled

    train, key = TextSet(["a good film", "a bad film"], [1, 0]), dedup_key(VocabConfig())
    with pytest.raises(RuntimeError, match="main process builds it first"):
        build_kd_corpus(train, [], [], key, folder=tmp_path / "kd", identity="x", build=False)
    assert not (tmp_path / "kd").exists()
    built = build_kd_corpus(train, [], [], key, folder=tmp_path / "kd", identity="x")
    assert list(build_kd_corpus(train, [], [], key, folder=tmp_path / "kd", identity="x", build=False).texts) == list(
        built.texts
    )
    path = write_jsonl(tmp_path / "a.jsonl", [{"text": "fine", "label": 1}])
    with pytest.raises(ValueError, match="label_map applies to labeled splits"):
        load_unlabeled(DatasetSource(path=path, label_map={1: 1}))
    with pytest.raises(ValueError, match="streaming applies to unlabeled sources"):
        load_source(DatasetSource(path=path, streaming=True))
