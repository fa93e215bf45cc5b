"""Teacher-labelled augmentation of the train texts: deletion keeps the words' order, replacement puts a word only
where the train texts put it after the same previous word."""

from conftest import random_texts

from hf_sparse_distill.distillation.augment import augment_pairs, augment_texts, followers_of
from hf_sparse_distill.distillation.recipe import AugmentConfig

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
