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
    variants = augment_texts(QUESTIONS, config)
    for question in QUESTIONS:
        source = question.split()
        for variant in augment_texts([question], config):
            words = variant.split()
            assert len(words) == len(source)
            for previous, word, own in zip(["", *words], words, source):
                # a word after one that nothing follows in the train texts ("?") stays as it was
                assert word in followers.get(previous, [own])
    assert "What golfer won the largest ?" in variants  # a question no train text asks


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
