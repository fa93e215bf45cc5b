"""Teacher-labelled augmentation for small transfer corpora, after Tang et al. (2019), "Distilling
Task-Specific Knowledge from BERT into Simple Neural Networks": new texts are made from the train texts by
n-gram sampling (keep a random window of 1..`max_sample_words` words) or, otherwise, by word masking. A DAN
has no mask token, so a masked word is deleted (the teacher sees the same shortened text as the student).
The teacher then labels the new texts like any unlabeled text."""

from __future__ import annotations

import random
from collections.abc import Sequence

from .recipe import AugmentConfig


def _delete_words(words: list[str], config: AugmentConfig, rng: random.Random) -> list[str]:
    """The words left after deleting each with probability `mask_prob`."""
    return [word for word in words if rng.random() >= config.mask_prob]


def _variant(words: list[str], config: AugmentConfig, rng: random.Random) -> list[str]:
    """One variant of a text's words: an n-gram window (with probability `ngram_sample_prob`) or word deletion."""
    if len(words) > 1 and rng.random() < config.ngram_sample_prob:
        width = rng.randint(1, min(config.max_sample_words, len(words)))
        start = rng.randrange(len(words) - width + 1)
        return words[start : start + width]
    return _delete_words(words, config, rng)


def augment_texts(texts: Sequence[str], config: AugmentConfig) -> list[str]:
    """`config.copies_per_example` variants of each text (variants equal to their source are skipped)."""
    rng = random.Random(config.seed)
    out = []
    for text in texts:
        words = text.split()
        for _ in range(config.copies_per_example):
            new = " ".join(_variant(words, config, rng))
            if new and new != " ".join(words):
                out.append(new)
    return out


def augment_pairs(texts: Sequence[str], pairs: Sequence[str], config: AugmentConfig) -> tuple[list[str], list[str]]:
    """`config.copies_per_example` variants of each sentence pair, by word deletion in each text on its own (an
    n-gram window would cut away what the two texts share). Variants equal to their source, or with an empty
    text, are skipped. Returns the first and the second texts."""
    rng = random.Random(config.seed)
    firsts, seconds = [], []
    for first, second in zip(texts, pairs, strict=True):
        words = (first.split(), second.split())
        for _ in range(config.copies_per_example):
            new = [" ".join(_delete_words(side, config, rng)) for side in words]
            if all(new) and (new[0], new[1]) != (" ".join(words[0]), " ".join(words[1])):
                firsts.append(new[0])
                seconds.append(new[1])
    return firsts, seconds
