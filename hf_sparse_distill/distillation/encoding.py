"""Pre-encoded corpora: every text's n-gram ids once, in flat arrays, gathered into batches without copying
Python lists (the form `nn.EmbeddingBag` consumes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..models.sparse_dan.tokenization_sparse_dan import SparseDANTokenizer


@dataclass
class EncodedTexts:
    """N-gram ids of many texts: `ids` (all texts concatenated), `starts` and `lengths` per text. With `pairs`,
    examples are sentence pairs: bags `2 i` and `2 i + 1` are the first and the second text of example `i`."""

    ids: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    pairs: bool = False

    def __len__(self) -> int:
        return len(self.lengths) // 2 if self.pairs else len(self.lengths)

    @property
    def example_lengths(self) -> np.ndarray:
        """Known n-gram occurrences of each example (both texts of a pair)."""
        return self.lengths[0::2] + self.lengths[1::2] if self.pairs else self.lengths

    def batch(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat ids and offsets of the examples at `indices` (two bags per pair), ready for the model."""
        if self.pairs:
            indices = np.stack([2 * np.asarray(indices), 2 * np.asarray(indices) + 1], axis=1).ravel()
        lengths = self.lengths[indices]
        offsets = np.cumsum(lengths) - lengths
        positions = np.repeat(self.starts[indices] - offsets, lengths) + np.arange(int(lengths.sum()))
        return torch.from_numpy(self.ids[positions]), torch.from_numpy(offsets)


def encode_texts(
    tokenizer: SparseDANTokenizer,
    texts: Sequence[str],
    max_ngrams: int | None = None,
    chunk_size: int = 20_000,
    show_progress: bool = True,
    desc: str = "encoding n-grams",
    pairs: Sequence[str] | None = None,
) -> EncodedTexts:
    """Encode `texts` (and the second texts `pairs` of sentence pairs) with the tokenizer's vectorised matcher,
    keeping at most `max_ngrams` ids per text."""
    if pairs is not None:
        first = encode_texts(tokenizer, texts, max_ngrams, chunk_size, show_progress, desc)
        second = encode_texts(tokenizer, pairs, max_ngrams, chunk_size, show_progress, f"{desc} (second texts)")
        lengths = np.stack([first.lengths, second.lengths], axis=1).ravel()
        starts = np.stack([first.starts, first.ids.size + second.starts], axis=1).ravel()
        return EncodedTexts(np.concatenate([first.ids, second.ids]), starts, lengths, pairs=True)
    ids, lengths = [], []
    with tqdm(total=len(texts), desc=desc, unit="texts", disable=not show_progress) as bar:
        for start in range(0, len(texts), chunk_size):
            chunk_ids, chunk_lengths = tokenizer.matcher.encode(texts[start : start + chunk_size], max_ngrams)
            ids.append(chunk_ids)
            lengths.append(chunk_lengths)
            bar.update(len(chunk_lengths))
    all_lengths = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
    all_ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
    return EncodedTexts(all_ids, np.cumsum(all_lengths) - all_lengths, all_lengths)
