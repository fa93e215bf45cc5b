"""Pre-encoded corpora: every text's n-gram ids once, in flat arrays, gathered into batches without copying
Python lists (the form `nn.EmbeddingBag` consumes).

A corpus encoded into a folder lives on disk: the ids are written chunk by chunk (an interrupted encoding resumes
from the chunks it wrote; the processes of a run share the chunks out), joined into one `.npy` file and
memory-mapped, so training reads its batches from the page cache instead of holding every id in the process's own
memory (sentence pairs: the first and the second texts in two such folders).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import PartialState
from tqdm.auto import tqdm

from ..models.sparse_dan.tokenization_sparse_dan import SparseDANTokenizer
from .files import reset_folder, save_npy, temporary_path
from .memory import release_free_memory


@dataclass
class EncodedTexts:
    """N-gram ids of many texts: `ids` (all texts concatenated), `starts` and `lengths` per text."""

    ids: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def example_lengths(self) -> np.ndarray:
        """Known n-gram occurrences of each example."""
        return self.lengths

    def batch(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat ids and offsets of the examples at `indices`, ready for the model."""
        lengths = self.lengths[indices]
        offsets = np.cumsum(lengths) - lengths
        positions = np.repeat(self.starts[indices] - offsets, lengths) + np.arange(int(lengths.sum()))
        return torch.from_numpy(self.ids[positions].astype(np.int64)), torch.from_numpy(offsets)


@dataclass
class EncodedPairs:
    """N-gram ids of sentence pairs: the first texts and the second texts, each encoded on its own (on disk or in
    memory); a batch holds two bags per pair, `2 i` and `2 i + 1` for the first and second text of example `i`."""

    first: EncodedTexts
    second: EncodedTexts

    def __len__(self) -> int:
        return len(self.first)

    @property
    def lengths(self) -> np.ndarray:
        """Known n-gram occurrences of each bag, two per pair."""
        return np.stack([self.first.lengths, self.second.lengths], axis=1).ravel()

    @property
    def example_lengths(self) -> np.ndarray:
        """Known n-gram occurrences of each example (both texts)."""
        return self.first.lengths + self.second.lengths

    def batch(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat ids and offsets of the examples at `indices` (two bags per pair), ready for the model."""
        bags = [part.lengths[indices] for part in (self.first, self.second)]
        lengths = np.stack(bags, axis=1).ravel()
        offsets = np.cumsum(lengths) - lengths
        ids = np.empty(int(lengths.sum()), dtype=np.int64)
        for k, (part, part_lengths) in enumerate(zip((self.first, self.second), bags)):
            part_ids, part_offsets = part.batch(indices)
            shift = np.repeat(offsets[k::2] - part_offsets.numpy(), part_lengths)
            ids[shift + np.arange(int(part_lengths.sum()))] = part_ids.numpy()
        return torch.from_numpy(ids), torch.from_numpy(offsets)


def encode_texts(
    tokenizer: SparseDANTokenizer,
    texts: Sequence[str],
    max_ngrams: int | None = None,
    chunk_size: int = 20_000,
    show_progress: bool = True,
    desc: str = "encoding n-grams",
    pairs: Sequence[str] | None = None,
    folder: str | os.PathLike | None = None,
    identity: str = "",
    state: PartialState | None = None,
) -> EncodedTexts | EncodedPairs:
    """Encode `texts` (and the second texts `pairs` of sentence pairs) with the tokenizer's vectorised matcher,
    keeping at most `max_ngrams` ids per text (int32 ids: vocabularies stay below 2**31 n-grams).

    With `folder`, the ids are written there and memory-mapped (see the module's docstring); `identity` names what
    was encoded (the tokenizer, the texts, `max_ngrams`): a folder holding another identity is encoded again, one
    holding this one is read back (or its encoding resumed) without encoding anything it already holds. With
    `state` (and a folder), every process of the run must call this: each encodes every N-th chunk."""
    if pairs is not None:
        first_folder, second_folder = (
            (None, None) if folder is None else (Path(folder) / "first", Path(folder) / "second")
        )
        first = encode_texts(tokenizer, texts, max_ngrams, chunk_size, show_progress, desc, folder=first_folder,
                             identity=identity, state=state)  # fmt: skip
        second = encode_texts(tokenizer, pairs, max_ngrams, chunk_size, show_progress, f"{desc} (second texts)",
                              folder=second_folder, identity=identity, state=state)  # fmt: skip
        return EncodedPairs(first, second)
    if folder is not None:
        return _encode_to_folder(
            tokenizer, texts, max_ngrams, chunk_size, show_progress, desc, Path(folder), identity, state
        )
    ids, lengths = [], []
    with tqdm(total=len(texts), desc=desc, unit="texts", disable=not show_progress) as bar:
        for start in range(0, len(texts), chunk_size):
            chunk_ids, chunk_lengths = tokenizer.matcher.encode(texts[start : start + chunk_size], max_ngrams)
            ids.append(chunk_ids.astype(np.int32))
            lengths.append(chunk_lengths)
            bar.update(len(chunk_lengths))
    all_lengths = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
    all_ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int32)
    return EncodedTexts(all_ids, np.cumsum(all_lengths) - all_lengths, all_lengths)


IDS_FILE, LENGTHS_FILE, STARTS_FILE, ENCODING_MANIFEST = "ids.npy", "lengths.npy", "starts.npy", "encoding.json"
_FORMAT = 2  # ids, lengths and starts, all memory-mapped


def _encode_to_folder(
    tokenizer: SparseDANTokenizer,
    texts: Sequence[str],
    max_ngrams: int | None,
    chunk_size: int,
    show_progress: bool,
    desc: str,
    folder: Path,
    identity: str,
    state: PartialState | None = None,
) -> EncodedTexts:
    world, rank = (state.num_processes, state.process_index) if state is not None else (1, 0)
    barrier = state.wait_for_everyone if state is not None else lambda: None
    if rank == 0:
        manifest = {"identity": identity, "texts": len(texts), "chunk_size": chunk_size, "format": _FORMAT}
        reset_folder(folder, ENCODING_MANIFEST, manifest)
    barrier()
    if not (folder / LENGTHS_FILE).exists():  # the same answer in every process: only written after the barrier below
        chunks = range(0, len(texts), chunk_size)
        mine = [k for k in range(len(chunks)) if k % world == rank]
        with tqdm(total=len(mine), desc=desc, unit="chunks", disable=not show_progress) as bar:
            for k in mine:
                if not (folder / f"lengths-{k:06d}.npy").exists():
                    part = texts[chunks[k] : chunks[k] + chunk_size]
                    chunk_ids, chunk_lengths = tokenizer.matcher.encode(part, max_ngrams)
                    save_npy(folder / f"ids-{k:06d}.npy", chunk_ids.astype(np.int32))
                    save_npy(folder / f"lengths-{k:06d}.npy", chunk_lengths)  # written last: the chunk is done
                    release_free_memory()
                bar.update(1)
        barrier()
        if rank == 0:
            _join_chunks(folder, len(chunks))
        barrier()
        release_free_memory(min_growth_mb=0.0)  # all the heap the chunks freed: the next step starts from less
    mode = "r" if len(texts) else None  # an empty array cannot be mapped
    lengths, starts = np.load(folder / LENGTHS_FILE, mmap_mode=mode), np.load(folder / STARTS_FILE, mmap_mode=mode)
    total = int(starts[-1] + lengths[-1]) if len(lengths) else 0
    ids = np.load(folder / IDS_FILE, mmap_mode="r" if total else None)
    return EncodedTexts(ids, starts, lengths)


def _join_chunks(folder: Path, num_chunks: int) -> None:
    """Join the chunk files into `ids.npy`, `lengths.npy` and `starts.npy` chunk by chunk (bounded memory), then
    remove them; `lengths.npy` is written last: the encoding is done once it exists."""
    sizes = [np.load(folder / f"lengths-{k:06d}.npy", mmap_mode="r").shape[0] for k in range(num_chunks)]
    totals = [int(np.load(folder / f"lengths-{k:06d}.npy").sum()) for k in range(num_chunks)]
    texts, total = sum(sizes), sum(totals)
    joined = {
        name: np.lib.format.open_memmap(temporary_path(folder / name), mode="w+", dtype=dtype, shape=(max(n, 1),))
        for name, dtype, n in ((IDS_FILE, np.int32, total), (STARTS_FILE, np.int64, texts), (LENGTHS_FILE, np.int64, texts))
    }  # fmt: skip
    row = at = 0
    for k in range(num_chunks):
        lengths = np.load(folder / f"lengths-{k:06d}.npy")
        joined[IDS_FILE][at : at + totals[k]] = np.load(folder / f"ids-{k:06d}.npy")
        joined[LENGTHS_FILE][row : row + len(lengths)] = lengths
        joined[STARTS_FILE][row : row + len(lengths)] = at + np.cumsum(lengths) - lengths
        row, at = row + len(lengths), at + totals[k]
    for name, n in ((IDS_FILE, total), (STARTS_FILE, texts), (LENGTHS_FILE, texts)):
        array = joined.pop(name)
        array.flush()
        tmp = Path(array.filename)
        del array
        if n == 0:  # nothing to map: a plain empty array
            save_npy(tmp, np.zeros(0, dtype=np.int32 if name == IDS_FILE else np.int64))
        os.replace(tmp, folder / name)
    for chunk_file in [*folder.glob("ids-*.npy"), *folder.glob("lengths-*.npy")]:
        chunk_file.unlink()
