"""Teacher-labelled augmentation of the train texts: deletion keeps the words' order, replacement puts a word only
where the train texts put it after the same previous word (or, with a word corpus, a word that shares a predecessor
with it)."""

from conftest import random_texts, write_jsonl

from hf_sparse_distill.distillation.augment import augment_pairs, augment_texts, followers_of, neighbours_of
from hf_sparse_distill.distillation.data import prepare_data
from hf_sparse_distill.distillation.recipe import AugmentConfig, DataConfig, DatasetSource, VocabConfig

QUESTIONS = [
    "What golfer won the open ?",
    "What ocean is the largest ?",
    "Who won the open in 1990 ?",
    "What is the largest city ?",
]


def _is_subsequence(short: list[str], long: list[str]) -> bool:
    rest = iter(long)
    return all(word in rest for word in short)


def test_followers_are_the_words_after_each_word_once_per_occurrence():
    followers = followers_of(QUESTIONS)
    assert followers[""] == ["What", "What", "Who", "What"]
    assert followers["What"] == ["golfer", "ocean", "is"]
    assert followers["the"] == ["open", "largest", "open", "largest"]


def test_replaced_words_follow_their_previous_word_as_in_the_train_texts():
    config = AugmentConfig(copies_per_example=50, mask_prob=0.0, ngram_sample_prob=0.0, replace_prob=1.0, seed=1)
    followers = followers_of(QUESTIONS)
    every_word = {word for question in QUESTIONS for word in question.split()}
    variants = augment_texts(QUESTIONS, config)
    assert len(variants) > 100
    for variant in variants:
        words = variant.split()
        for previous, word in zip(["", *words], words):
            # after a word that nothing follows in the train texts ("?"), the source's own word stays
            assert word in followers.get(previous, every_word)
    assert "What golfer won the largest ?" in variants  # a question no train text asks


def test_without_replacement_the_variants_are_those_of_earlier_versions():
    # cached corpora and teacher logits stay valid: the same seed gives the same texts as before replacement existed
    texts = ["What golfer won the open ?", "Who won the open in 1990 ?"]
    config = AugmentConfig(copies_per_example=3, mask_prob=0.3, ngram_sample_prob=0.25, seed=7)
    assert augment_texts(texts, config) == [
        "golfer the open", "golfer open ?", "open ?", "Who won the in", "in 1990 ?", "won the open in",
    ]  # fmt: skip
    assert augment_pairs(texts, texts[::-1], config) == (
        ["What won open ?", "What the open ?", "What golfer the open ?", "Who won open in ?", "Who won open 1990 ?",
         "Who won the open in ?"],
        ["won open ?", "Who won open", "Who in 1990 ?", "What golfer won open", "What golfer won the open ?",
         "What golfer won open ?"],
    )  # fmt: skip


def test_without_replacement_variants_only_delete_words_and_are_reproducible():
    texts = random_texts(30, seed=4)
    config = AugmentConfig(copies_per_example=5, mask_prob=0.3, ngram_sample_prob=0.0)
    variants = augment_texts(texts, config)
    sources = [t.split() for t in texts for _ in range(5)]
    assert all(any(_is_subsequence(v.split(), s) for s in sources) for v in variants)
    assert augment_texts(texts, config) == variants
    replaced = augment_texts(
        texts, AugmentConfig(copies_per_example=5, mask_prob=0.3, ngram_sample_prob=0.0, replace_prob=0.3)
    )
    assert replaced != variants


def test_pairs_replace_words_in_each_text_from_both_sides_followers():
    config = AugmentConfig(copies_per_example=20, mask_prob=0.0, replace_prob=1.0)
    firsts, seconds = augment_pairs(QUESTIONS[:2], QUESTIONS[2:], config)
    followers = followers_of(QUESTIONS)
    assert firsts and len(firsts) == len(seconds)
    for text in firsts + seconds:
        words = text.split()
        assert all(w in followers.get(p, [w]) for p, w in zip(["", *words], words))
    assert set(firsts) - {q for q in QUESTIONS}


NEWS = ["Yesterday the golfer met the architect, who designed the tower.", "An architect designed the museum of Paris."]


def test_neighbours_are_the_words_before_and_after_each_word_in_train_texts_and_corpus():
    neighbours = neighbours_of(QUESTIONS[:1], NEWS[:1])
    assert neighbours.predecessors["golfer"] == ["What", "the"]
    assert neighbours.predecessors["the"] == ["won", "Yesterday", "met", "designed"]
    assert neighbours.followers["the"] == ["open", "golfer", "architect", "tower"]
    assert neighbours.followers[""] == ["What", "Yesterday"]
    assert neighbours.followers["architect"] == [","]  # punctuation of the corpus is a word of its own


def test_a_word_corpus_puts_its_words_where_a_train_word_that_shares_a_predecessor_stands():
    config = AugmentConfig(copies_per_example=200, mask_prob=0.0, ngram_sample_prob=0.0, replace_prob=1.0, seed=3)
    followers, neighbours = followers_of(QUESTIONS), neighbours_of(QUESTIONS, NEWS)
    every_word = {word for question in QUESTIONS for word in question.split()}
    variants = augment_texts(QUESTIONS, config, NEWS)
    for variant in variants:
        words = variant.split()
        for previous, word in zip(["", *words], words):
            # the train rule's word (the source's own after a word that nothing follows in the train texts, as
            # "tower"), then swapped for a follower of one of its predecessors in the train texts and the corpus
            # (a bound the train rule alone also keeps: the assertions after the loop show the corpus's words)
            drawn = followers.get(previous, every_word)
            assert word in {w for x in drawn for p in neighbours.predecessors[x] for w in neighbours.followers[p]}
    # "golfer" and "architect" both follow "the" in the corpus: the corpus's noun takes the train noun's place
    assert any(v.startswith("What architect") for v in variants)
    assert augment_texts(QUESTIONS, config, NEWS) == variants  # reproducible
    assert augment_texts(QUESTIONS, config) != variants


def test_recipe_words_from_sources_widen_replacement_and_are_not_labelled(tmp_path):
    questions = [{"text": q, "label": i % 2} for i, q in enumerate(QUESTIONS * 3)]
    config = DataConfig(
        train=DatasetSource(path=write_jsonl(tmp_path / "train.jsonl", questions)),
        dev=DatasetSource(path=write_jsonl(tmp_path / "dev.jsonl", [{"text": "Who is he ?", "label": 1}])),
        select_size=1,
    )
    words_from = [
        DatasetSource(path=write_jsonl(tmp_path / "news.jsonl", [{"text": t} for t in NEWS]), label_column=None)
    ]
    augment = AugmentConfig(enabled=True, copies_per_example=30, mask_prob=0.0, replace_prob=0.5, words_from=words_from)
    corpus = list(prepare_data(config, VocabConfig(), augment, {"a": 0, "b": 1}).corpus.texts)
    assert any("architect" in text for text in corpus) and not set(NEWS) & set(corpus)
