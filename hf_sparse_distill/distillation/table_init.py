"""A student table that starts from the teacher: each n-gram's row is the teacher encoder's representation of the
n-gram's text, reduced to the student's width by PCA (the `--init-embed` option of the paper's code; the paper found
it no better than random rows with 65M transfer texts, so it is a choice for tasks with little transfer text).

The table costs one teacher pass over the n-grams (on 2 CPU cores about 10 minutes for 1M n-grams, against 6 for
labelling 364k questions), so it is kept in `<cache_dir>/teacher_tables/`, keyed by the teacher, the vocabulary
and the width.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import torch
from accelerate import PartialState
from safetensors.torch import load_file, save
from tqdm.auto import tqdm

from .files import atomic_file, json_digest, save_npy
from .teacher import Teacher

logger = logging.getLogger(__name__)

TABLES_DIR = "teacher_tables"
CHUNK = 16384  # n-grams per teacher call (one progress-bar step)
_BLOCK = 65536  # rows per block of the PCA
TABLE_VERSION = 1  # of how a table is made (pooling, PCA): a table made otherwise is not reused


def pca_rows(vectors: np.ndarray, width: int, std: float, seed: int = 0) -> np.ndarray:
    """`vectors` centred and projected on their `width` leading principal components, scaled so that the result's
    entries have standard deviation `std` (float32). Past the vectors' own dimension, the extra columns are normal
    noise of the same standard deviation (from `seed`, not the recipe's: the table is shared by every seed). Works in
    blocks of rows: a million rows need no float64 copy."""
    mean = vectors.mean(axis=0, dtype=np.float64)
    covariance = np.zeros((vectors.shape[1], vectors.shape[1]))
    for start in range(0, len(vectors), _BLOCK):
        block = vectors[start : start + _BLOCK] - mean
        covariance += block.T @ block
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    leading = eigenvectors[:, np.argsort(eigenvalues)[::-1][:width]].astype(np.float32)
    rows = np.empty((len(vectors), width), dtype=np.float32)
    for start in range(0, len(vectors), _BLOCK):
        rows[start : start + _BLOCK, : leading.shape[1]] = (vectors[start : start + _BLOCK] - mean) @ leading
    rows[:, : leading.shape[1]] *= std / max(float(rows[:, : leading.shape[1]].std()), 1e-12)
    if leading.shape[1] < width:
        rows[:, leading.shape[1] :] = np.random.default_rng(seed).normal(
            0.0, std, (len(rows), width - leading.shape[1])
        )
    return rows


def teacher_table(
    teacher: Teacher,
    vocab: dict[str, int],
    special_ids: list[int],
    width: int,
    std: float,
    cache_dir: Path,
    state: PartialState,
) -> torch.Tensor:
    """The `[len(vocab), width]` table whose row `vocab[ngram]` is the teacher's PCA-reduced representation of the
    n-gram's text (special tokens' rows are zero), kept in `cache_dir` at standard deviation 1 (any `std` of the same
    teacher, vocabulary and width reuses it).

    The processes of the run share the teacher's chunks out; each chunk is kept as it is done (an interrupted run
    resumes from the chunks written), and the main process joins them and reduces them."""
    ngrams_in_id_order = sorted(vocab.items(), key=lambda item: item[1])
    key = {
        "teacher": teacher.identity(),
        "vocab": json_digest(ngrams_in_id_order),
        "width": width,
        "version": TABLE_VERSION,
    }
    path = Path(cache_dir) / TABLES_DIR / f"{json_digest(key)}.safetensors"
    if not path.exists():  # every process decides before the main one can write it (barrier below)
        skip = set(special_ids)
        text_ids = np.array(sorted(i for i in vocab.values() if i not in skip), dtype=np.int64)
        texts_by_id = {i: ngram for ngram, i in vocab.items()}
        parts = path.with_suffix(".parts")
        parts.mkdir(parents=True, exist_ok=True)
        chunks = [(start, min(start + CHUNK, len(text_ids))) for start in range(0, len(text_ids), CHUNK)]
        mine = chunks[state.process_index :: state.num_processes]
        for start, end in tqdm(mine, desc="teacher table", unit="chunk", disable=not state.is_main_process):
            part = parts / f"{start}-{end}.npy"  # named by its rows: a chunk of another size is never taken for it
            if not part.exists():
                save_npy(part, teacher.embed([texts_by_id[i] for i in text_ids[start:end]]))
        state.wait_for_everyone()
        if state.is_main_process:
            vectors = np.concatenate([np.load(parts / f"{start}-{end}.npy") for start, end in chunks])
            table = np.zeros((max(vocab.values()) + 1, width), dtype=np.float32)
            table[text_ids] = pca_rows(vectors, width, std=1.0)
            with atomic_file(path, "wb") as f:
                f.write(save({"table": torch.from_numpy(table)}, metadata={"made_from": json.dumps(key, default=str)}))
            shutil.rmtree(parts)
            logger.info("teacher table of %d n-grams written to %s", len(text_ids), path)
        state.wait_for_everyone()
    return load_file(path)["table"] * std


def start_from_teacher(
    model: torch.nn.Module, teacher: Teacher, tokenizer, cache_dir: Path, state: PartialState
) -> None:
    """Overwrite the table of `model` (a new `SparseDANForSequenceClassification`) with `teacher_table` over the
    n-grams of `tokenizer`, at the model's width and `embedding_init_std`."""
    config = model.config
    table = teacher_table(teacher, tokenizer.get_vocab(), tokenizer.all_special_ids, config.embed_dim,
                          config.embedding_init_std, cache_dir, state)  # fmt: skip
    with torch.no_grad():
        model.dan.embeddings.weight.copy_(table)
