"""N-gram tokenizer of the sparse DAN: text → ids of the word n-grams found in a fixed vocabulary.

Word analysis is scikit-learn `CountVectorizer`'s default (lower-casing, `token_pattern=r"(?u)\\b\\w\\w+\\b"`,
n-grams of consecutive words joined by one space), so a vocabulary fitted by `CountVectorizer` and this
tokenizer agree exactly. N-grams outside the vocabulary are dropped; repeated n-grams are kept, one id per
occurrence. Ids come out position by position (every n-gram starting at word 0, shortest first, then word 1,
...), so truncation keeps the beginning of a text.

This file is copied next to the weights when a model is saved, so it imports nothing but transformers and
numpy (a dependency of transformers).
"""

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import chain, repeat

import numpy as np
from transformers import BatchEncoding, PreTrainedTokenizer
from transformers.tokenization_utils_base import TruncationStrategy
from transformers.utils import PaddingStrategy

VOCAB_FILES_NAMES = {"vocab_file": "ngram_vocab.json"}
DEFAULT_TOKEN_PATTERN = r"(?u)\b\w\w+\b"


def word_splitter(lowercase: bool, token_pattern: str) -> Callable[[str], list[str]]:
    """The word analysis of `CountVectorizer`: optional lower-casing, then every match of `token_pattern`."""
    findall = re.compile(token_pattern).findall
    if lowercase:
        return lambda text: findall(text.lower())
    return findall


def word_ngrams(words: Sequence[str], ngram_range: Sequence[int]) -> list[str]:
    """All n-grams of `words` for n in `ngram_range`, in `CountVectorizer._word_ngrams` order."""
    min_n, max_n = ngram_range
    grams = list(words) if min_n == 1 else []
    for n in range(max(min_n, 2), max_n + 1):
        grams += [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
    return grams


class HashIndex:
    """A map from non-negative int64 keys to int64 values, built and queried with numpy: open addressing with
    linear probing at a low load, every probe round of the build vectorised over all pending keys. A lookup checks
    each key's home slot, then, for the few keys whose home slot holds another key, the next `max_probe` slots in
    one gather: two vectorised steps whatever the table size, about one random memory access per key."""

    _MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing

    def __init__(self, keys: np.ndarray, values: np.ndarray, max_load: float = 0.3):
        bits = max(4, int(np.ceil(np.log2(max(len(keys), 1) / max_load))))
        self.shift = np.uint64(64 - bits)
        # no wrap-around: a key probes past the last home slot into spare slots at the end
        self.slot_keys = np.full((1 << bits) + 64, -1, dtype=np.int64)
        self.slot_values = np.zeros(self.slot_keys.size, dtype=np.int64)
        pending, home = np.arange(len(keys)), self._hash(keys)
        slots, self.max_probe = home.copy(), 0
        while pending.size:
            if slots[pending].max() >= self.slot_keys.size:  # more spare slots
                self.slot_keys = np.concatenate([self.slot_keys, np.full(self.slot_keys.size, -1, np.int64)])
                self.slot_values = np.concatenate([self.slot_values, np.zeros(self.slot_values.size, np.int64)])
            # among the keys whose probed slot is free, the first one per slot takes it; all others probe on
            current = slots[pending]
            free = self.slot_keys[current] == -1
            _, first = np.unique(current[free], return_index=True)
            winners = pending[free][first]
            self.slot_keys[slots[winners]] = keys[winners]
            self.slot_values[slots[winners]] = values[winners]
            placed = np.zeros(len(keys), dtype=bool)
            placed[winners] = True
            pending = pending[~placed[pending]]
            slots[pending] += 1
        if len(keys):
            self.max_probe = int((slots - home).max())
        # a lookup reads up to max_probe slots past the last home slot, whatever the build itself reached
        missing = (1 << bits) + self.max_probe - self.slot_keys.size
        if missing > 0:
            self.slot_keys = np.concatenate([self.slot_keys, np.full(missing, -1, np.int64)])
            self.slot_values = np.concatenate([self.slot_values, np.zeros(missing, np.int64)])

    def _hash(self, keys: np.ndarray) -> np.ndarray:
        return ((keys.astype(np.uint64) * self._MULTIPLIER) >> self.shift).astype(np.int64)

    def get(self, keys: np.ndarray) -> np.ndarray:
        """The value of each key, or -1 where the key is absent."""
        home = self._hash(keys)
        found = self.slot_keys[home]
        out = np.where(found == keys, self.slot_values[home], -1)
        if self.max_probe:
            # keys whose home slot holds another key: look at the next max_probe slots at once
            rest = np.flatnonzero((found != keys) & (found != -1))
            if rest.size:
                slots = home[rest, None] + np.arange(1, self.max_probe + 1)
                match = self.slot_keys[slots] == keys[rest, None]
                hit = match.any(axis=1)
                out[rest[hit]] = self.slot_values[slots[hit, match[hit].argmax(axis=1)]]
        return out


class NgramMatcher:
    """Vectorised exact lookup of the vocabulary's word n-grams in batches of texts.

    Each vocabulary word gets an integer id; n-grams are found by walking a trie level by level over all word
    positions of a batch at once (a `HashIndex` on the `parent * n_words + word` keys), so no n-gram string is ever
    built at encoding time. The words of a whole batch are found by one regular-expression pass over the texts
    joined by a separator word, when the word pattern allows it (checked), otherwise text by text. ASCII texts are
    matched as bytes (a bytes pattern runs faster, and on ASCII text it finds the same words: checked at build).
    """

    SEPARATOR = "sparsedanseparatorword"

    def __init__(
        self,
        vocab: Mapping[str, int],
        ngram_range: Sequence[int],
        lowercase: bool,
        token_pattern: str,
        skip_ids: Iterable[int] = (),
    ):
        self.min_n, self.max_n = int(ngram_range[0]), int(ngram_range[1])
        self.words = word_splitter(lowercase, token_pattern)
        skip = set(skip_ids)
        # Every piece of the build is vectorised: a Python loop over a million n-grams takes seconds.
        terms, term_ids = [], []
        for term, idx in vocab.items():
            if idx not in skip and "\n" not in term:
                terms.append(term)
                term_ids.append(idx)
        blob = "\n".join(terms)
        flat_words = blob.replace("\n", " ").split(" ") if terms else []
        word_ids = {word: i for i, word in enumerate(dict.fromkeys(flat_words))}
        flat_wid = np.fromiter(map(word_ids.__getitem__, flat_words), dtype=np.int64, count=len(flat_words))
        raw = np.frombuffer(blob.encode("utf-8"), dtype=np.uint8)
        term_of_byte = np.cumsum(raw == 10)
        lengths = np.bincount(term_of_byte[raw == 32], minlength=len(terms)) + 1
        first_word = np.cumsum(lengths) - lengths
        wanted = (lengths >= self.min_n) & (lengths <= self.max_n)
        lengths, first_word = lengths[wanted], first_word[wanted]
        term_ids = np.asarray(term_ids, dtype=np.int64)[wanted]
        n_words = max(len(word_ids), 1)
        # Trie nodes: a word's own id is its depth-1 node; each deeper level numbers its distinct prefixes
        # after the previous ones. Keys `parent * n_words + word` never collide across levels.
        node = flat_wid[first_word]
        final_node = np.where(lengths == 1, node, -1)
        next_node, level_keys, level_nodes = n_words, [], []
        for depth in range(1, self.max_n):
            longer = np.flatnonzero(lengths > depth)
            if longer.size == 0:
                break
            keys = node[longer] * n_words + flat_wid[first_word[longer] + depth]
            unique_keys, inverse = np.unique(keys, return_inverse=True)
            node = np.full(len(lengths), -1, dtype=np.int64)
            node[longer] = next_node + inverse
            ends_here = lengths == depth + 1
            final_node[ends_here] = node[ends_here]
            level_keys.append(unique_keys)
            level_nodes.append(next_node + np.arange(unique_keys.size, dtype=np.int64))
            next_node += unique_keys.size
        self.word_ids = word_ids
        self.n_words = n_words
        keys = np.concatenate(level_keys) if level_keys else np.zeros(0, dtype=np.int64)
        nodes = np.concatenate(level_nodes) if level_nodes else np.zeros(0, dtype=np.int64)
        self.children = HashIndex(keys, nodes)
        self.node_term = np.full(next_node, -1, dtype=np.int64)
        self.node_term[final_node] = term_ids
        self.has_child = np.zeros(next_node, dtype=bool)
        self.has_child[keys // n_words] = True
        self.lowercase = lowercase
        self.findall = re.compile(token_pattern).findall
        self.word_or_separator = {**word_ids, self.SEPARATOR: -2}
        self.joinable = self._separator_is_safe()
        self.findall_ascii = self._ascii_findall(token_pattern)
        # `\s` matches \x1c-\x1f in a str pattern but not in a bytes one: texts holding them take the str path
        space_sensitive = "\\s" in token_pattern.lower()
        self._space_only_in_unicode = re.compile("[\x1c-\x1f]").search if space_sensitive else None
        self.ascii_word_or_separator = {
            word.encode(): idx for word, idx in self.word_or_separator.items() if word.isascii()
        }

    def _separator_is_safe(self) -> bool:
        """Whether finding the words of texts joined by ` SEPARATOR ` gives each text's words: the pattern must
        match the separator alone and never reach across it (no anchors, no match spanning a space)."""
        probes = ["a b", "The end.", "x", "", "n't don't", "A-B c!? 42"]
        joined = f" {self.SEPARATOR} ".join(probes)
        expected = [self.SEPARATOR if w is None else w for p in probes for w in [None, *self.words(p)]][1:]
        return self.words(joined) == expected and not any(" " in w for w in self.words("ab cd ef"))

    def _ascii_findall(self, token_pattern: str) -> Callable[[bytes], list[bytes]] | None:
        """`findall` of the pattern compiled for bytes, used on ASCII texts: there a str pattern's Unicode classes
        match the same characters as their ASCII forms, except that `\\s` also matches `\\x1c`-`\\x1f` (texts
        holding those take the str path). None when the batch pass is unsafe, the pattern does not compile for
        bytes, or it disagrees with the str pattern on the probes."""
        if not self.joinable:
            return None
        try:
            compiled = re.compile(token_pattern.replace("(?u)", "").encode("ascii"))
        except (UnicodeEncodeError, re.error):
            return None
        probes = "a b The end. x n't don't A-B c!? 42 snake_case e-mail 3.14 \t\n ... !!! UPPER"
        text = probes.lower() if self.lowercase else probes
        if [w.decode() for w in compiled.findall(text.encode())] != self.findall(text):
            return None
        return compiled.findall

    def _word_ids(self, texts: Sequence[str]) -> np.ndarray:
        """Vocabulary word id of every word of every text, flat, with -2 between texts and -1 for words outside the
        vocabulary."""
        if self.findall_ascii is None:
            wid = self._joined_word_ids(texts) if self.joinable and len(texts) > 1 else None
            return self._word_ids_one_by_one(texts) if wid is None else wid
        joined = f" {self.SEPARATOR} ".join(texts)
        space_only_in_unicode = self._space_only_in_unicode
        if joined.isascii() and not (space_only_in_unicode and space_only_in_unicode(joined)):
            others = []
        else:  # the texts the bytes pattern cannot read take the str pattern; they stand empty in the bytes pass
            mixed = space_only_in_unicode is not None and space_only_in_unicode(joined) is not None
            others = [i for i, t in enumerate(texts) if not t.isascii() or (mixed and space_only_in_unicode(t))]
            plain = list(texts)
            for i in others:
                plain[i] = ""
            joined = f" {self.SEPARATOR} ".join(plain)
        words = self.findall_ascii(joined.encode().lower() if self.lowercase else joined.encode())
        wid = np.fromiter(map(self.ascii_word_or_separator.get, words, repeat(-1)), dtype=np.int64, count=len(words))
        separators = np.flatnonzero(wid == -2)
        if separators.size != len(texts) - 1:  # a text holds the separator word itself
            return self._word_ids_one_by_one(texts)
        if not others:
            return wid
        rest = self._joined_word_ids([texts[i] for i in others])
        if rest is None:
            return self._word_ids_one_by_one(texts)
        # each text's words go right after the separator that precedes it
        in_text = rest != -2
        counts = np.bincount(np.cumsum(~in_text)[in_text], minlength=len(others))
        starts = np.concatenate([[0], separators + 1])[others]
        return np.insert(wid, np.repeat(starts, counts), rest[in_text])

    def _joined_word_ids(self, texts: Sequence[str]) -> np.ndarray | None:
        """Word ids of `texts` (-2 between texts) from one str pattern pass over the joined texts; None if a text
        holds the separator word itself."""
        joined = f" {self.SEPARATOR} ".join(texts)
        words = self.findall(joined.lower() if self.lowercase else joined)
        wid = np.fromiter(map(self.word_or_separator.get, words, repeat(-1)), dtype=np.int64, count=len(words))
        return wid if int((wid == -2).sum()) == len(texts) - 1 else None

    def _word_ids_one_by_one(self, texts: Sequence[str]) -> np.ndarray:
        """Word ids of `texts` (-2 between texts), text by text."""
        tokens = list(map(self.words, texts))
        counts = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
        wid = np.fromiter(
            map(self.word_ids.get, chain.from_iterable(tokens), repeat(-1)), dtype=np.int64, count=int(counts.sum())
        )
        return np.insert(wid, np.cumsum(counts)[:-1], -2)

    def encode(self, texts: Sequence[str], max_ngrams: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Ids of every in-vocabulary n-gram occurrence of each text.

        Returns `(ids, lengths)`: the flat concatenation of each text's ids (position order) and the number of
        ids of each text, after keeping at most `max_ngrams` per text (the first ones).
        """
        if not texts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        wid = self._word_ids(texts)
        n_positions = wid.size
        orders = self.max_n - self.min_n + 1
        # words past the end read as -1, so an n-gram never runs off the array; -2 (between texts) stops it too
        padded = np.concatenate([wid, np.full(self.max_n, -1, dtype=np.int64)])
        found = np.full((n_positions, orders), -1, dtype=np.int64)
        starts = np.flatnonzero(wid >= 0)  # positions whose (n-1)-gram is a trie node
        node = wid[starts]
        for n in range(1, self.max_n + 1):
            if n > 1:
                keep = self.has_child[node]
                starts, node = starts[keep], node[keep]
                word = padded[starts + n - 1]
                keep = word >= 0
                starts, node = starts[keep], self.children.get(node[keep] * self.n_words + word[keep])
                keep = node >= 0
                starts, node = starts[keep], node[keep]
            if n >= self.min_n:
                found[starts, n - self.min_n] = self.node_term[node]
        valid = found >= 0
        ids = found[valid]
        # ids found up to each text's end (the separator after it, or the end of the batch)
        found_before = np.concatenate([[0], np.cumsum(valid.sum(axis=1))])
        ends = np.append(np.flatnonzero(wid == -2), n_positions)
        lengths = np.diff(found_before[ends], prepend=0)
        if max_ngrams is not None and lengths.size and lengths.max() > max_ngrams:
            text_of_id = np.repeat(np.arange(len(texts)), lengths)
            first = np.cumsum(lengths) - lengths
            keep = np.arange(ids.size) - first[text_of_id] < max_ngrams
            ids, lengths = ids[keep], np.minimum(lengths, max_ngrams)
        return ids, lengths


def interleave_pairs(
    ids_a: np.ndarray, lengths_a: np.ndarray, ids_b: np.ndarray, lengths_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Merge the flat ids of the first and of the second texts of pairs into one flat array, pair after pair
    (first text of pair 0, second text of pair 0, first text of pair 1, ...); returns it with the `2 * n` bag
    lengths in that order."""
    bag_lengths = np.stack([lengths_a, lengths_b], axis=1).ravel()
    starts = np.stack([np.cumsum(lengths_a) - lengths_a, ids_a.size + np.cumsum(lengths_b) - lengths_b], axis=1).ravel()
    offsets = np.cumsum(bag_lengths) - bag_lengths
    positions = np.repeat(starts - offsets, bag_lengths) + np.arange(int(bag_lengths.sum()))
    return np.concatenate([ids_a, ids_b])[positions], bag_lengths


class SparseDANTokenizer(PreTrainedTokenizer):
    r"""Tokenizer of the sparse DAN: maps a text to the ids of its in-vocabulary word n-grams.

    Args:
        vocab_file (`str`, *optional*):
            JSON file mapping each n-gram (words joined by one space) to its id (`ngram_vocab.json`).
        vocab (`dict[str, int]`, *optional*):
            The same mapping given directly, instead of `vocab_file`.
        ngram_range (`tuple[int, int]`, defaults to `(1, 4)`):
            Smallest and largest n of the n-grams looked up.
        lowercase (`bool`, defaults to `True`):
            Lower-case the text before splitting it into words.
        token_pattern (`str`, defaults to `r"(?u)\b\w\w+\b"`):
            Regular expression of a word (must not match white space).
        pad_token (`str`, defaults to `"[PAD]"`):
            Padding token; it is in the vocabulary (id 0 for vocabularies built by `from_ngrams`) and never matched.
        model_max_length (`int`, defaults to 2048):
            N-gram occurrences kept per text with `truncation=True` (paper: 2048).

    Besides the usual `tokenizer(texts, padding=True, return_tensors="pt")`, [`encode_bags`] returns the flat
    `input_ids` + `offsets` form that the model consumes fastest. Sentence pairs (`tokenizer(text, text_pair)`) give
    the ids of the first text, then those of the second, with `token_type_ids` 0 and 1 (truncation keeps at most
    `max_length` n-grams of each text).
    """

    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(
        self,
        vocab_file: str | None = None,
        vocab: Mapping[str, int] | None = None,
        ngram_range: Sequence[int] = (1, 4),
        lowercase: bool = True,
        token_pattern: str = DEFAULT_TOKEN_PATTERN,
        pad_token: str = "[PAD]",
        model_max_length: int = 2048,
        **kwargs,
    ):
        if (vocab_file is None) == (vocab is None):
            raise ValueError("SparseDANTokenizer needs exactly one of vocab_file or vocab")
        if vocab_file is not None:
            with open(vocab_file, encoding="utf-8") as f:
                vocab = json.load(f)
        self.vocab: dict[str, int] = dict(vocab)
        if str(pad_token) not in self.vocab:
            raise ValueError(f"pad_token {pad_token!r} must be in the vocabulary")
        ids = sorted(self.vocab.values())
        if ids != list(range(len(ids))):
            raise ValueError("vocabulary ids must be exactly 0 .. len(vocab) - 1, each used once")
        self.ngram_range = [int(n) for n in ngram_range]
        self.lowercase = lowercase
        self.token_pattern = token_pattern
        self._matcher: NgramMatcher | None = None
        self._id_to_token: list[str] | None = None
        kwargs.setdefault("split_special_tokens", True)
        super().__init__(
            ngram_range=self.ngram_range,
            lowercase=lowercase,
            token_pattern=token_pattern,
            pad_token=pad_token,
            model_max_length=model_max_length,
            **kwargs,
        )

    @classmethod
    def from_ngrams(cls, ngrams: Iterable[str], pad_token: str = "[PAD]", **kwargs) -> "SparseDANTokenizer":
        """Build a tokenizer whose vocabulary is `pad_token` (id 0) followed by `ngrams` (ids 1, 2, ...)."""
        vocab = {pad_token: 0}
        for ngram in ngrams:
            if ngram in vocab:
                raise ValueError(f"n-gram {ngram!r} appears twice in the vocabulary")
            vocab[ngram] = len(vocab)
        return cls(vocab=vocab, pad_token=pad_token, **kwargs)

    @property
    def matcher(self) -> NgramMatcher:
        """The vectorised n-gram matcher, built on first use (about 2 s per million n-grams)."""
        if self._matcher is None:
            self._matcher = NgramMatcher(
                self.vocab, self.ngram_range, self.lowercase, self.token_pattern, skip_ids=self.all_special_ids
            )
        return self._matcher

    @property
    def vocab_size(self) -> int:
        """Number of ids (n-grams and special tokens)."""
        return len(self.vocab)

    def ngram_orders(self) -> list[int]:
        """The number of words of each id's n-gram, by id (0 for special tokens): what a pair model with
        `pair_overlap` keeps to compare the texts order by order."""
        orders = [0] * len(self.vocab)
        special = set(self.all_special_tokens)
        for token, idx in self.vocab.items():
            orders[idx] = 0 if token in special else token.count(" ") + 1
        return orders

    def get_vocab(self) -> dict[str, int]:
        """The n-gram → id mapping (a copy)."""
        return dict(self.vocab)

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        ids, _ = self.matcher.encode([text])
        return self.convert_ids_to_tokens(ids.tolist())

    def _convert_token_to_id(self, token: str) -> int:
        if token not in self.vocab:
            raise KeyError(f"{token!r} is not an n-gram of this tokenizer's vocabulary")
        return self.vocab[token]

    def _convert_id_to_token(self, index: int) -> str:
        if self._id_to_token is None:
            self._id_to_token = [""] * len(self.vocab)
            for token, idx in self.vocab.items():
                self._id_to_token[idx] = token
        return self._id_to_token[index]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """The unigrams among `tokens`, in order: the in-vocabulary words of the text."""
        return " ".join(token for token in tokens if " " not in token)

    def encode_bags(
        self,
        texts: str | Sequence[str],
        text_pair: str | Sequence[str] | None = None,
        truncation: bool = True,
        max_length: int | None = None,
        return_tensors: str | None = "pt",
    ) -> BatchEncoding:
        """Encode texts into the flat form of `nn.EmbeddingBag`: `input_ids` (all ids, concatenated) and
        `offsets` (where each text starts). The fastest input for [`SparseDANForSequenceClassification`].

        Args:
            texts: One text or a sequence of texts.
            text_pair: The second text of each pair (sentence-pair students): the bags are then the first and the
                second text of pair 0, of pair 1, ... (`2 * len(texts)` offsets).
            truncation: Keep at most `max_length` n-grams per text.
            max_length: The limit of `truncation` (default: `model_max_length`).
            return_tensors: `"pt"`, `"np"` or `None` (Python lists).
        """
        texts = self._check_texts(texts)
        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length must be >= 1 (n-grams kept per text), got {max_length}")
        limit = (max_length if max_length is not None else self.model_max_length) if truncation else None
        ids, lengths = self.matcher.encode(texts, max_ngrams=limit)
        if text_pair is not None:
            ids, lengths = self._with_pairs(texts, ids, lengths, text_pair, limit)
        offsets = np.cumsum(lengths) - lengths
        data = {"input_ids": ids, "offsets": offsets}
        if return_tensors is None:
            data = {key: value.tolist() for key, value in data.items()}
        return BatchEncoding(data, tensor_type=return_tensors)

    def _with_pairs(
        self, texts: list[str], ids: np.ndarray, lengths: np.ndarray, text_pair: str | Sequence[str], limit: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ids of `texts` (`ids`, `lengths`) merged pair by pair with those of `text_pair` (at most `limit`
        n-grams each): the flat ids and the `2 * len(texts)` bag lengths (see `interleave_pairs`)."""
        pairs = self._check_texts(text_pair)
        if len(pairs) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(pairs)} text pairs")
        return interleave_pairs(ids, lengths, *self.matcher.encode(pairs, max_ngrams=limit))

    @staticmethod
    def _check_texts(texts: str | Sequence[str]) -> list[str]:
        if isinstance(texts, str):
            return [texts]
        if not isinstance(texts, Sequence):
            raise TypeError(f"expected a string or a sequence of strings, got {type(texts).__name__}")
        if set(map(type, texts)) <= {str}:  # the common case, checked at C speed
            return list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text {i} is a {type(text).__name__}, not a string")
        return list(texts)

    def _encode_plus(
        self,
        text,
        text_pair=None,
        add_special_tokens: bool = True,
        padding_strategy: PaddingStrategy = PaddingStrategy.DO_NOT_PAD,
        truncation_strategy: TruncationStrategy = TruncationStrategy.DO_NOT_TRUNCATE,
        max_length: int | None = None,
        stride: int = 0,
        is_split_into_words: bool = False,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_tensors=None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        verbose: bool = True,
        **kwargs,
    ) -> BatchEncoding:
        kwargs.pop("split_special_tokens", None)  # set by transformers itself; text never matches a special token
        if kwargs:
            raise TypeError(f"SparseDANTokenizer got unexpected argument(s) {sorted(kwargs)}")
        if return_offsets_mapping:
            raise NotImplementedError(
                "return_offsets_mapping is not available: an n-gram id covers several words, not one span of text"
            )
        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length must be >= 1 (n-grams kept per text), got {max_length}")
        batched = isinstance(text, (list, tuple))
        plain_texts = isinstance(text, str) or (batched and all(isinstance(t, str) for t in text))
        plain_pairs = text_pair is None or (
            isinstance(text_pair, str) == isinstance(text, str)
            and (isinstance(text_pair, str) or all(isinstance(t, str) for t in text_pair))
        )
        special_request = is_split_into_words or return_overflowing_tokens or return_special_tokens_mask
        if text_pair is not None and not (plain_texts and plain_pairs and not special_request):
            raise TypeError("text_pair takes a string (with one text) or a list of strings (with a list of texts)")
        if not plain_texts or special_request:
            if not batched and not isinstance(text, str):
                raise TypeError(f"expected a string or a list of strings, got {type(text).__name__}")
            if batched and any(not isinstance(t, (str, int, list, tuple)) for t in text):
                bad = next(t for t in text if not isinstance(t, (str, int, list, tuple)))
                raise TypeError(f"expected strings in the batch, got a {type(bad).__name__}")
            return super()._encode_plus(
                text,
                text_pair=text_pair,
                add_special_tokens=add_special_tokens,
                padding_strategy=padding_strategy,
                truncation_strategy=truncation_strategy,
                max_length=max_length,
                stride=stride,
                is_split_into_words=is_split_into_words,
                pad_to_multiple_of=pad_to_multiple_of,
                padding_side=padding_side,
                return_tensors=return_tensors,
                return_token_type_ids=return_token_type_ids,
                return_attention_mask=return_attention_mask,
                return_overflowing_tokens=return_overflowing_tokens,
                return_special_tokens_mask=return_special_tokens_mask,
                return_length=return_length,
                verbose=verbose,
            )
        texts = [text] if isinstance(text, str) else list(text)
        truncate = truncation_strategy != TruncationStrategy.DO_NOT_TRUNCATE and max_length is not None
        limit = max_length if truncate else None
        ids, lengths = self.matcher.encode(texts, max_ngrams=limit)
        types = None
        if text_pair is not None:
            ids, bag_lengths = self._with_pairs(texts, ids, lengths, text_pair, limit)
            types = np.repeat(np.tile([0, 1], len(texts)), bag_lengths)
            lengths = bag_lengths[0::2] + bag_lengths[1::2]
        data = self._pad_ids(ids, lengths, padding_strategy, max_length, pad_to_multiple_of, padding_side, types)
        if return_attention_mask is False:
            data.pop("attention_mask")
        if types is None and return_token_type_ids:
            data["token_type_ids"] = [[0] * len(row) for row in data["input_ids"]]
        elif types is not None and return_token_type_ids is False:
            data.pop("token_type_ids")
        if return_length:
            data["length"] = lengths.tolist()
        if return_tensors is None:
            data = {key: value.tolist() if isinstance(value, np.ndarray) else value for key, value in data.items()}
            if not batched:
                data = {key: value[0] for key, value in data.items()}
        return BatchEncoding(data, tensor_type=return_tensors)

    def _pad_ids(
        self,
        ids: np.ndarray,
        lengths: np.ndarray,
        padding_strategy: PaddingStrategy,
        max_length: int | None,
        pad_to_multiple_of: int | None,
        padding_side: str | None,
        token_types: np.ndarray | None = None,
    ) -> dict[str, np.ndarray | list[list[int]]]:
        """`input_ids` and `attention_mask` (and `token_type_ids` given the flat `token_types` of pairs), padded as
        the strategy asks: 2-D arrays, or lists of rows when there is no padding."""
        longest = int(lengths.max()) if lengths.size else 0
        if padding_strategy == PaddingStrategy.LONGEST:
            width = longest
        elif padding_strategy == PaddingStrategy.MAX_LENGTH and max_length is not None:
            width = max(max_length, longest)
        else:
            width = None
        if width is not None and pad_to_multiple_of:
            width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
        starts = np.cumsum(lengths) - lengths
        if width is None:
            spans = list(zip(starts.tolist(), lengths.tolist()))
            rows = [ids[s : s + n].tolist() for s, n in spans]
            data = {"input_ids": rows, "attention_mask": [[1] * len(row) for row in rows]}
            if token_types is not None:
                data["token_type_ids"] = [token_types[s : s + n].tolist() for s, n in spans]
            return data
        row_of_id = np.repeat(np.arange(lengths.size), lengths)
        column = np.arange(ids.size) - starts[row_of_id]
        if (padding_side or self.padding_side) == "left":
            column += width - lengths[row_of_id]
        input_ids = np.full((lengths.size, width), self.pad_token_id, dtype=np.int64)
        attention_mask = np.zeros((lengths.size, width), dtype=np.int64)
        input_ids[row_of_id, column] = ids
        attention_mask[row_of_id, column] = 1
        data = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_types is not None:
            data["token_type_ids"] = np.zeros((lengths.size, width), dtype=np.int64)
            data["token_type_ids"][row_of_id, column] = token_types
        return data

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        """Write the vocabulary (JSON, ids in order) atomically; return its path."""
        prefix = f"{filename_prefix}-" if filename_prefix else ""
        path = os.path.join(save_directory, prefix + VOCAB_FILES_NAMES["vocab_file"])
        ordered = dict(sorted(self.vocab.items(), key=lambda item: item[1]))
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(ordered, f, ensure_ascii=False)
        os.replace(tmp, path)
        return (path,)


__all__ = ["SparseDANTokenizer", "NgramMatcher", "interleave_pairs", "word_ngrams", "word_splitter"]
