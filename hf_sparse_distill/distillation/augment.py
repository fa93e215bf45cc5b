"""Teacher-labelled augmentation for small transfer corpora, after Tang et al. (2019), "Distilling
Task-Specific Knowledge from BERT into Simple Neural Networks": new texts are made from the train texts by
n-gram sampling (keep a random window of 1..`max_sample_words` words) or, otherwise, by word masking. A DAN
has no mask token, so a masked word is deleted (the teacher sees the same shortened text as the student).
The teacher then labels the new texts like any unlabeled text."""

from __future__ import annotations

import random
from collections.abc import Sequence

from .recipe import AugmentConfig


def augment_texts(texts: Sequence[str], config: AugmentConfig) -> list[str]:
    """`config.copies_per_example` variants of each text (variants equal to their source are skipped)."""
    rng = random.Random(config.seed)
    out = []
    for text in texts:
        words = text.split()
        for _ in range(config.copies_per_example):
            if len(words) > 1 and rng.random() < config.ngram_sample_prob:
                width = rng.randint(1, min(config.max_sample_words, len(words)))
                start = rng.randrange(len(words) - width + 1)
                variant = words[start : start + width]
            else:
                variant = [word for word in words if rng.random() >= config.mask_prob]
            new = " ".join(variant)
            if new and new != " ".join(words):
                out.append(new)
    return out
