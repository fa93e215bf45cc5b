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
    """N-gram ids of many texts: `ids` (all texts concatenated), `starts` and `lengths` per text."""

    ids: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.lengths)

    def batch(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat ids and offsets of the texts at `indices`, ready for the model."""
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
) -> EncodedTexts:
    """Encode `texts` with the tokenizer's vectorised matcher, keeping at most `max_ngrams` ids per text."""
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
