"""Teacher labelling: run any fine-tuned `AutoModelForSequenceClassification` over a corpus and keep its logits.

The logits are cached text by text (`logit_cache`) in a folder keyed by the teacher, its exact revision and the
settings that change its outputs: only texts the teacher has not seen are labelled, an interrupted run resumes
from the shards already written, and under `accelerate launch` the shards to compute are shared out between the
processes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from accelerate import PartialState
from filelock import FileLock, Timeout
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from .data import TextColumn
from .distributed import process_state
from .evaluate import problem_type_of
from .files import remove_abandoned_files, temporary_path
from .logit_cache import (
    KEY_DTYPE,
    SHARD_NAME,
    BucketIndex,
    LogitCache,
    bucket_count,
    by_bucket,
    find_keys,
    identity_folder_name,
    text_keys,
)
from .memory import release_free_memory
from .recipe import TeacherConfig

logger = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
SHAPE_MULTIPLE = 8  # rows and tokens of a short teacher batch are padded to multiples of it (see `Teacher.predict`)


def _local_signature(folder: Path) -> list[tuple[str, str]]:
    """Name and SHA-256 of every file of a local model folder: the same teacher copied or moved elsewhere keeps its
    cached logits, a retrained one (any byte changed) does not."""
    signature = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        signature.append((path.name, digest.hexdigest()))
    return signature


class Teacher:
    """A fine-tuned classifier that labels texts with its logits.

    Args:
        config: Which model (Hub id + revision, or a local folder) and how to run it (`max_length`, `batch_size` or
            `batch_tokens`, `dtype`: `"auto"` = float16 on GPU and float32 on CPU, or `"float32"`, `"bfloat16"`,
            `"float16"`; `chunk_size`: texts per cache shard).
        state: The accelerate process state (defaults to the current one): each process labels its share.
    """

    def __init__(self, config: TeacherConfig, state: PartialState | None = None):
        self.config = config
        self.state = state or process_state()
        self.model_config = AutoConfig.from_pretrained(config.model, revision=config.revision)
        self._model = None
        self._tokenizer = None

    @property
    def id2label(self) -> dict[int, str]:
        """The teacher's label names by class id."""
        return {int(k): v for k, v in self.model_config.id2label.items()}

    @property
    def num_labels(self) -> int:
        """Number of classes (outputs) of the teacher."""
        return self.model_config.num_labels

    @property
    def problem_type(self) -> str:
        """The teacher's `single_label_classification`, `multi_label_classification` or `regression` (see
        `problem_type_of`)."""
        return problem_type_of(self.model_config)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the teacher runs in (`teacher.dtype` of the recipe; `auto`: float16 on GPU, float32 on CPU)."""
        if self.config.dtype == "auto":
            return torch.float16 if self.state.device.type == "cuda" else torch.float32
        if self.config.dtype not in _DTYPES:
            raise ValueError(f"teacher dtype must be auto or one of {sorted(_DTYPES)}, got {self.config.dtype!r}")
        return _DTYPES[self.config.dtype]

    @functools.cached_property
    def _local_files(self) -> list[tuple[str, str]]:
        """The local folder's file signature, hashed once per teacher (weights can be gigabytes)."""
        return _local_signature(Path(self.config.model))

    def identity(self) -> dict:
        """What determines the logits: model, exact revision (Hub commit or local file signature), settings."""
        if Path(self.config.model).is_dir():  # a local folder is known by its content, not by where it lies
            model, revision, resolved = "local folder", None, self._local_files
        else:
            model, revision = self.config.model, self.config.revision
            resolved = getattr(self.model_config, "_commit_hash", None)
        return {
            "model": model,
            "revision": revision,
            "resolved": resolved,
            "max_length": self.config.max_length,
            "dtype": str(self.dtype),
            **self.config.tokenizer_settings(),  # none by default: logits cached before they existed keep their key
        }

    def _load(self) -> None:
        if self._model is None:
            self._tokenizer = AutoTokenizer.from_pretrained(
                self.config.model, revision=self.config.revision, **self.config.tokenizer_settings()
            )
            model = AutoModelForSequenceClassification.from_pretrained(
                self.config.model, revision=self.config.revision, dtype=self.dtype
            )
            self._model = model.to(self.state.device).eval()

    def predict(self, texts: list[str], pairs: list[str] | None = None) -> np.ndarray:
        """Logits of `texts` (float32, input order): length-sorted batches with dynamic padding. Sentence pairs
        (`pairs`: the second text of each) go through the teacher's own pair encoding.

        A short batch (the last one, or with `batch_tokens` the last of each length class) has its rows and tokens
        padded up to multiples of `SHAPE_MULTIPLE` (never past a full batch's rows or the maximum length), so the
        teacher meets a bounded set of batch shapes however many texts it labels: the math libraries keep compiled
        kernels for every shape they meet (about 35 KB each on CPU), and the last batch of every shard would
        otherwise bring new ones. Full batches are not padded further (that would cost time on every batch)."""
        return self._run(texts, pairs, self.num_labels, lambda model, batch: model(**batch).logits)

    def embed(self, texts: list[str]) -> np.ndarray:
        """The teacher encoder's representation of each text (float32, input order): its last hidden layer averaged
        over the text's own tokens (special tokens left out), batched as `predict` batches."""

        def mean_of_text_tokens(model: torch.nn.Module, batch: dict) -> torch.Tensor:
            weights = (batch["attention_mask"] * (1 - batch.pop("special_tokens_mask"))).unsqueeze(-1)
            hidden = model.base_model(**batch).last_hidden_state.float()
            return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)

        return self._run(texts, None, self.model_config.hidden_size, mean_of_text_tokens, special_tokens_mask=True)

    def _run(
        self,
        texts: list[str],
        pairs: list[str] | None,
        width: int,
        forward: Callable[[torch.nn.Module, dict], torch.Tensor],
        special_tokens_mask: bool = False,
    ) -> np.ndarray:
        """`forward(model, batch)` over length-sorted, padded batches of `texts`: a `[len(texts), width]` array."""
        self._load()
        max_length = min(self.config.max_length, self._tokenizer.model_max_length)
        encoded = self._tokenizer(
            texts, pairs, truncation=True, max_length=max_length, return_special_tokens_mask=special_tokens_mask
        )
        lengths = np.array([len(ids) for ids in encoded["input_ids"]])
        out = np.zeros((len(texts), width), dtype=np.float32)
        with torch.inference_mode():
            for rows, full in self.plan_batches(lengths):
                features = [{key: encoded[key][i] for key in encoded.keys()} for i in rows]
                filler, tokens = call_padding(len(rows), full, int(lengths[rows].max()), max_length)
                features += features[:1] * filler  # their outputs are dropped
                batch = self._tokenizer.pad(
                    features, padding="max_length" if tokens else True, max_length=tokens, return_tensors="pt"
                )
                out[rows] = forward(self._model, dict(batch.to(self.state.device)))[: len(rows)].float().cpu().numpy()
        return out

    def plan_batches(self, lengths: np.ndarray) -> list[tuple[np.ndarray, int]]:
        """The rows of each call, texts sorted by length, with the number of rows of a full call: `batch_size` per
        call, or with `batch_tokens`, per length class (token counts rounded up to a multiple of `SHAPE_MULTIPLE`)
        as many as fit in `batch_tokens` padded tokens, a multiple of `SHAPE_MULTIPLE` (so that a full call of a
        class has one shape per length, and a short one is padded within the class)."""
        order = np.argsort(lengths, kind="stable")
        if self.config.batch_tokens is None:
            size = self.config.batch_size
            return [(order[start : start + size], size) for start in range(0, len(order), size)]
        classes = _round_up(lengths[order])
        batches = []
        for width in np.unique(classes):
            rows = order[classes == width]
            size = max(SHAPE_MULTIPLE, self.config.batch_tokens // int(width) // SHAPE_MULTIPLE * SHAPE_MULTIPLE)
            batches += [(rows[start : start + size], size) for start in range(0, len(rows), size)]
        return batches

    def label(
        self,
        texts: Sequence[str],
        cache_dir: str | os.PathLike,
        show_progress: bool = True,
        pairs: Sequence[str] | None = None,
        out: str | os.PathLike | None = None,
    ) -> np.ndarray:
        """Logits for every text (or sentence pair, with `pairs`), `[len(texts), num_labels]` float32, computed once
        per distinct text and cached on disk (see `logit_cache`).

        The texts are hashed into buckets of about `chunk_size` texts (their keys written to one file per bucket,
        so no step holds the keys of the whole corpus). The processes of a run share the buckets out; each bucket's
        texts without cached logits are labelled under the bucket's file lock, one cache shard per `chunk_size`
        texts. A bucket locked by another run is done last, after waiting for its lock, and only the texts that
        run did not label are labelled.

        Args:
            texts: The texts (any sequence; `data.TextColumn` reads them from disk).
            cache_dir: The folder of the logit caches (one per teacher identity).
            show_progress: Show a progress bar (main process).
            pairs: The second text of each sentence pair.
            out: A `.npy` file the logits are written to and memory-mapped from (every process fills its buckets);
                without it they are returned in memory, complete in every process.
        """
        identity = self.identity()
        cache = LogitCache(Path(cache_dir) / "teacher_logits" / identity_folder_name(identity), self.num_labels)
        state = self.state
        if state.is_main_process:
            cache.folder.mkdir(parents=True, exist_ok=True)
            (cache.folder / "identity.json").write_text(json.dumps(identity, indent=2, sort_keys=True))
            remove_abandoned_files(cache.folder)  # a shard a killed run was writing (this run's come after the barrier)
        num_buckets = bucket_count(len(texts), self.config.chunk_size)
        mine = {b for b in range(num_buckets) if b % state.num_processes == state.process_index}
        fill = mine if out is not None else set(range(num_buckets))  # the buckets whose logits this process returns
        if out is not None and state.is_main_process:
            folder = Path(out).parent
            folder.mkdir(parents=True, exist_ok=True)
            for stale in folder.glob("hfsd-label-*"):  # left by a killed run (this run's come after the barrier)
                shutil.rmtree(stale, ignore_errors=True)
            tmp = temporary_path(Path(out))  # a new file: a live map of the old one stays valid
            np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(texts), self.num_labels)).flush()
            os.replace(tmp, out)
        state.wait_for_everyone()
        if out is not None:
            logits = np.lib.format.open_memmap(out, mode="r+")
        else:
            logits = np.zeros((len(texts), self.num_labels), dtype=np.float32)
        with tempfile.TemporaryDirectory(prefix="hfsd-label-", dir=None if out is None else Path(out).parent) as work:
            keyed = _bucket_keys(texts, pairs, num_buckets, fill, Path(work) / "texts")
            index = BucketIndex(cache, num_buckets, fill, Path(work) / "cache", wanted=lambda bucket: keyed(bucket)[1])
            self._label_buckets(texts, pairs, keyed, index, sorted(mine), cache, logits, show_progress)
            state.wait_for_everyone()
            if fill != mine:
                index.absorb_new_shards()  # what the other processes labelled
                for bucket in sorted(fill - mine):
                    _fill(logits, keyed(bucket), index.logits(bucket))
        release_free_memory(min_growth_mb=0.0)  # all the heap labelling freed: the next step starts from less
        if out is None:
            return logits
        logits.flush()
        del logits
        state.wait_for_everyone()
        return np.load(out, mmap_mode="r")

    def _label_buckets(
        self,
        texts: Sequence[str],
        pairs: Sequence[str] | None,
        keyed: Callable[[int], tuple[np.ndarray, np.ndarray]],
        index: BucketIndex,
        buckets: list[int],
        cache: LogitCache,
        logits: np.ndarray,
        show_progress: bool,
    ) -> None:
        """Label what `buckets` miss, each under its file lock (a bucket another run holds is done last, after
        waiting for its lock), and fill their rows of `logits`."""
        todo = {}
        for bucket in buckets:
            keys = keyed(bucket)[1]
            todo[bucket] = len(np.unique(keys[find_keys(index.logits(bucket)[0], keys) < 0]))
        total = sum(todo.values())
        if total:
            logger.info("teacher: %d texts to label in %s", total * self.state.num_processes, cache.folder)
        with tqdm(
            total=total * self.state.num_processes, desc="teacher labelling", unit="texts", dynamic_ncols=True,
            disable=not (show_progress and self.state.is_main_process and total),
        ) as bar:  # fmt: skip
            deferred = []
            for blocking in (False, True):
                for bucket in deferred if blocking else buckets:
                    if todo[bucket]:
                        lock = FileLock(_bucket_file(cache, index.num_buckets, bucket, ".lock"))
                        try:
                            lock.acquire(blocking=blocking)
                        except Timeout:
                            deferred.append(bucket)
                            continue
                        try:
                            self._label_bucket(texts, pairs, keyed(bucket), index, bucket, cache)
                        finally:
                            lock.release()
                        bar.update(todo[bucket] * self.state.num_processes)
                        release_free_memory()  # the heap would otherwise grow with the texts labelled
                    _fill(logits, keyed(bucket), index.logits(bucket))

    def _label_bucket(
        self,
        texts: Sequence[str],
        pairs: Sequence[str] | None,
        keyed: tuple[np.ndarray, np.ndarray],
        index: BucketIndex,
        bucket: int,
        cache: LogitCache,
    ) -> None:
        """Label the texts (and pairs) of `bucket` that are not cached, `chunk_size` per shard. Another run may have
        labelled some since the index was made: each shard's name is listed in the bucket's journal (written under
        the bucket's lock), so only those are read, not the whole cache folder. (A shard a killed run wrote but did
        not list, or one of a run that splits the corpus into another number of buckets, is not seen there: its
        texts are labelled again, which costs time, never correctness.)"""
        journal = _bucket_file(cache, index.num_buckets, bucket, ".shards")
        if journal.exists():
            names = [name for name in journal.read_text().split() if SHARD_NAME.fullmatch(name)]  # a cut line: skipped
            index.absorb(cache.folder / name for name in names)
        rows, keys = keyed
        absent = np.flatnonzero(find_keys(index.logits(bucket)[0], keys) < 0)
        _, first = np.unique(keys[absent], return_index=True)
        todo = np.sort(rows[absent[first]])  # one row per distinct text, in corpus order
        for start in range(0, len(todo), self.config.chunk_size):
            chunk = todo[start : start + self.config.chunk_size]
            batch, batch_pairs = _take(texts, chunk), None if pairs is None else _take(pairs, chunk)
            cache_texts = batch if batch_pairs is None else pair_cache_texts(batch, batch_pairs)
            predicted = self.predict(batch, batch_pairs)
            path = cache.add(cache_texts, predicted)
            index.add(path, text_keys(cache_texts), predicted)
            with open(journal, "a") as f:
                f.write(f"\n{path.name}")  # on a line of its own even after a line cut short


def call_padding(rows: int, full: int, longest: int, max_length: int) -> tuple[int, int | None]:
    """Filler rows and token width of a teacher call of `rows` texts, the longest of `longest` tokens: a short call
    (fewer rows than a full one's `full`) is padded to multiples of `SHAPE_MULTIPLE` in rows and tokens, never past
    `full` or `max_length`; a full call gets no filler and None (padded to its longest text)."""
    if rows >= full:
        return 0, None
    return min(_round_up(rows), full) - rows, min(_round_up(longest), max_length)


def _round_up(size: int | np.ndarray) -> int | np.ndarray:
    """`size` rounded up to a multiple of `SHAPE_MULTIPLE`."""
    return -(-size // SHAPE_MULTIPLE) * SHAPE_MULTIPLE


def _bucket_file(cache: LogitCache, num_buckets: int, bucket: int, suffix: str) -> Path:
    """A file of the cache folder that belongs to one bucket of a split into `num_buckets` (its lock, its journal)."""
    return cache.folder / f"bucket-{num_buckets}-{bucket}{suffix}"


def _take(texts: Sequence[str], rows: np.ndarray) -> list[str]:
    """The texts at `rows` (a `TextColumn` reads them from disk in one go)."""
    return texts[rows] if isinstance(texts, TextColumn) else [texts[int(i)] for i in rows]


def _bucket_keys(
    texts: Sequence[str],
    pairs: Sequence[str] | None,
    num_buckets: int,
    buckets: set[int],
    work: Path,
    batch_size: int = 200_000,
) -> Callable[[int], tuple[np.ndarray, np.ndarray]]:
    """Hash the texts (as the cache knows them: see `pair_cache_texts`) batch by batch and write the row and key
    of each text of `buckets` to that bucket's file; returns a function giving a bucket's rows and keys."""
    record = np.dtype([("key", KEY_DTYPE), ("row", "<i8")])
    work.mkdir(parents=True)
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        if pairs is not None:
            batch = pair_cache_texts(batch, pairs[start : start + batch_size])
        records = np.empty(len(batch), dtype=record)
        records["key"], records["row"] = text_keys(batch).view(KEY_DTYPE).ravel(), np.arange(start, start + len(batch))
        for bucket, group in by_bucket(records, num_buckets):  # rows stay in corpus order within a bucket
            if bucket in buckets:
                with open(work / f"bucket-{bucket:07d}.bin", "ab") as f:
                    group.tofile(f)

    def keyed(bucket: int) -> tuple[np.ndarray, np.ndarray]:
        path = work / f"bucket-{bucket:07d}.bin"
        records = np.fromfile(path, dtype=record) if path.exists() else np.zeros(0, dtype=record)
        return records["row"], records["key"]

    return keyed


def _fill(logits: np.ndarray, keyed: tuple[np.ndarray, np.ndarray], cached: tuple[np.ndarray, np.ndarray]) -> None:
    """Write the cached logits of a bucket's texts into their rows of `logits`."""
    rows, keys = keyed
    found = find_keys(cached[0], keys)
    if (found < 0).any():
        raise RuntimeError(f"{int((found < 0).sum())} texts have no cached teacher logits")
    logits[rows] = cached[1][found]


def pair_cache_texts(texts: Sequence[str], pairs: Sequence[str]) -> list[str]:
    """The string a sentence pair is cached under: both texts, with the length of the first, behind a marker no
    ordinary text starts with."""
    return [f"\x00pair\x00{len(first)}\x00{first}{second}" for first, second in zip(texts, pairs, strict=True)]
