"""Teacher-labelled augmentation for small transfer corpora, after Tang et al. (2019), "Distilling
Task-Specific Knowledge from BERT into Simple Neural Networks": new texts are made from the train texts by
n-gram sampling (keep a random window of 1..`max_sample_words` words) or, otherwise, by word masking and word
replacement. A DAN has no mask token, so a masked word is deleted (the teacher sees the same shortened text as the
student). Tang et al. replace a word with another of the same part of speech; here no tagger is needed: the new
word is drawn from the words that follow the same previous word somewhere in the train texts (a word after "What"
is replaced by another word seen after "What", so "What golfer ..." can become "What ocean ..."), which keeps the
text's shape and brings the teacher's view of words in places the train texts never put them. With a word corpus
(`augment.words_from`, e.g. news text for questions), each replacement goes one step further: the word drawn is
swapped for a word that follows, in the corpus or the train texts, a word that precedes it there ("golfer" follows
"the", so does "architect"), which brings words the train texts never use into the places they hold. The teacher
then labels the new texts like any unlabeled text."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .recipe import AugmentConfig

Followers = dict[str, list[str]]
"""The words that follow each word in the train texts (`""`: words that start a text), once per occurrence."""


def followers_of(texts: Sequence[str]) -> Followers:
    """The `Followers` of `texts` (split on whitespace, as the variants are)."""
    followers: Followers = {}
    for text in texts:
        words = text.split()
        for previous, word in zip(["", *words], words):
            followers.setdefault(previous, []).append(word)
    return followers


_CORPUS_WORD = re.compile(r"\w+|[^\w\s]")
"""A word of the word corpus: a run of word characters or one punctuation mark (train texts are split on
whitespace; questions like TREC's come with their punctuation apart). Contractions split at the apostrophe
("golfer's" -> golfer ' s, where TREC writes golfer 's): such corpus words meet few train words."""


@dataclass
class WordNeighbours:
    """Each word's predecessors and followers (`""`: the start of a text) in the train texts and the word corpus,
    once per occurrence."""

    predecessors: Followers
    followers: Followers


def neighbours_of(texts: Sequence[str], corpus: Sequence[str]) -> WordNeighbours:
    """The `WordNeighbours` of the train `texts` (split on whitespace) and the `corpus` texts (`_CORPUS_WORD`)."""
    neighbours = WordNeighbours({}, {})
    for words in [*(text.split() for text in texts), *(_CORPUS_WORD.findall(text) for text in corpus)]:
        for previous, word in zip(["", *words], words):
            neighbours.followers.setdefault(previous, []).append(word)
            neighbours.predecessors.setdefault(word, []).append(previous)
    return neighbours


@dataclass
class _Replacer:
    """Where replacement words come from: the train texts' `followers` and, with a word corpus, its neighbours."""

    followers: Followers
    neighbours: WordNeighbours | None

    @classmethod
    def of(cls, texts: Sequence[str], config: AugmentConfig, corpus: Sequence[str]) -> _Replacer:
        if config.replace_prob == 0:
            return cls({}, None)
        return cls(followers_of(texts), neighbours_of(texts, corpus) if corpus else None)

    def word(self, previous: str, word: str, rng: random.Random) -> str:
        """A follower of `previous` in the train texts (`word` if there is none), then, with a word corpus, a
        follower of one of its predecessors."""
        word = rng.choice(self.followers.get(previous, [word]))
        if self.neighbours is not None:
            word = rng.choice(self.neighbours.followers[rng.choice(self.neighbours.predecessors[word])])
        return word


def _delete_and_replace(words: list[str], config: AugmentConfig, replacer: _Replacer, rng: random.Random) -> list[str]:
    """The words left after deleting each with probability `mask_prob`; each word left is replaced, with
    probability `replace_prob`, by the `replacer`'s word for the word before it in the variant."""
    out: list[str] = []
    for word in words:
        if rng.random() < config.mask_prob:
            continue
        if config.replace_prob > 0 and rng.random() < config.replace_prob:
            word = replacer.word(out[-1] if out else "", word, rng)
        out.append(word)
    return out


def _variant(words: list[str], config: AugmentConfig, replacer: _Replacer, rng: random.Random) -> list[str]:
    """One variant of a text's words: an n-gram window (with probability `ngram_sample_prob`) or word deletion and
    replacement."""
    if len(words) > 1 and rng.random() < config.ngram_sample_prob:
        width = rng.randint(1, min(config.max_sample_words, len(words)))
        start = rng.randrange(len(words) - width + 1)
        return words[start : start + width]
    return _delete_and_replace(words, config, replacer, rng)


def augment_texts(texts: Sequence[str], config: AugmentConfig, corpus: Sequence[str] = ()) -> list[str]:
    """`config.copies_per_example` variants of each text (variants equal to their source are skipped); `corpus`:
    the texts of `config.words_from`."""
    rng = random.Random(config.seed)
    replacer = _Replacer.of(texts, config, corpus)
    out = []
    for text in texts:
        words = text.split()
        for _ in range(config.copies_per_example):
            new = " ".join(_variant(words, config, replacer, rng))
            if new and new != " ".join(words):
                out.append(new)
    return out


def augment_pairs(
    texts: Sequence[str], pairs: Sequence[str], config: AugmentConfig, corpus: Sequence[str] = ()
) -> tuple[list[str], list[str]]:
    """`config.copies_per_example` variants of each sentence pair, by word deletion and replacement in each text on
    its own (an n-gram window would cut away what the two texts share). Variants equal to their source, or with an
    empty text, are skipped. Returns the first and the second texts. `corpus`: the texts of `config.words_from`."""
    rng = random.Random(config.seed)
    replacer = _Replacer.of([*texts, *pairs], config, corpus)
    firsts, seconds = [], []
    for first, second in zip(texts, pairs, strict=True):
        words = (first.split(), second.split())
        for _ in range(config.copies_per_example):
            new = [" ".join(_delete_and_replace(side, config, replacer, rng)) for side in words]
            if all(new) and (new[0], new[1]) != (" ".join(words[0]), " ".join(words[1])):
                firsts.append(new[0])
                seconds.append(new[1])
    return firsts, seconds
