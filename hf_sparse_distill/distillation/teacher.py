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
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from accelerate import PartialState
from filelock import FileLock, Timeout
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from .distributed import process_state
from .evaluate import problem_type_of
from .logit_cache import LogitCache, bucket_count, identity_folder_name, text_keys
from .recipe import TeacherConfig

logger = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


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
        config: Which model (Hub id + revision, or a local folder) and how to run it (`max_length`,
            `batch_size`, `dtype`: `"auto"` = float16 on GPU and float32 on CPU, or `"float32"`, `"bfloat16"`,
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
        }

    def _load(self) -> None:
        if self._model is None:
            self._tokenizer = AutoTokenizer.from_pretrained(self.config.model, revision=self.config.revision)
            model = AutoModelForSequenceClassification.from_pretrained(
                self.config.model, revision=self.config.revision, dtype=self.dtype
            )
            self._model = model.to(self.state.device).eval()

    def predict(self, texts: list[str], pairs: list[str] | None = None) -> np.ndarray:
        """Logits of `texts` (float32, input order): length-sorted batches with dynamic padding. Sentence pairs
        (`pairs`: the second text of each) go through the teacher's own pair encoding."""
        self._load()
        max_length = min(self.config.max_length, self._tokenizer.model_max_length)
        encoded = self._tokenizer(texts, pairs, truncation=True, max_length=max_length)
        order = np.argsort([len(ids) for ids in encoded["input_ids"]], kind="stable")
        logits = np.zeros((len(texts), self.num_labels), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self.config.batch_size):
                rows = order[start : start + self.config.batch_size]
                features = [{key: encoded[key][i] for key in encoded.keys()} for i in rows]
                batch = self._tokenizer.pad(features, return_tensors="pt").to(self.state.device)
                logits[rows] = self._model(**batch).logits.float().cpu().numpy()
        return logits

    def label(
        self,
        texts: Sequence[str],
        cache_dir: str | os.PathLike,
        show_progress: bool = True,
        pairs: Sequence[str] | None = None,
    ) -> np.ndarray:
        """Logits for every text (or sentence pair, with `pairs`), `[len(texts), num_labels]` float32, computed once
        per distinct text and cached on disk (see `logit_cache`).

        The texts without cached logits are split into hash buckets, each labelled under a file lock in shards of
        `chunk_size` texts. The processes of a run share the buckets out; a bucket locked by another run is done
        last, after waiting for its lock, and only the texts that run did not label are labelled. Every process
        returns the full array.
        """
        identity = self.identity()
        cache = LogitCache(Path(cache_dir) / "teacher_logits" / identity_folder_name(identity), self.num_labels)
        if self.state.is_main_process:
            cache.folder.mkdir(parents=True, exist_ok=True)
            (cache.folder / "identity.json").write_text(json.dumps(identity, indent=2, sort_keys=True))
        self.state.wait_for_everyone()
        inputs = (texts, pairs)
        texts = texts if pairs is None else pair_cache_texts(texts, pairs)  # what the cache knows each example by
        keys = text_keys(texts)
        todo = cache.missing(keys)
        num_buckets = bucket_count(len(np.unique(keys, axis=0)), self.config.chunk_size)
        bucket_of = keys[todo, 0] % np.uint64(num_buckets)
        mine = [b for b in range(num_buckets) if b % self.state.num_processes == self.state.process_index]
        if len(todo):
            logger.info("teacher: %d of %d texts to label in %s", len(todo), len(texts), cache.folder)
        with tqdm(
            total=len(todo), desc="teacher labelling", unit="texts", dynamic_ncols=True,
            disable=not (show_progress and self.state.is_main_process and len(todo)),
        ) as bar:  # fmt: skip
            deferred = []
            for blocking in (False, True):
                for bucket in deferred if blocking else mine:
                    lock = FileLock(cache.folder / f"bucket-{num_buckets}-{bucket}.lock")
                    try:
                        lock.acquire(blocking=blocking)
                    except Timeout:
                        deferred.append(bucket)
                        continue
                    try:
                        positions = todo[bucket_of == bucket]
                        done = self._label_bucket(inputs, texts, keys, positions, cache)
                    finally:
                        lock.release()
                    bar.update(done * self.state.num_processes)
        self.state.wait_for_everyone()
        cache.reload()
        return cache.lookup(texts)

    def _label_bucket(
        self,
        inputs: tuple[Sequence[str], Sequence[str] | None],
        cache_texts: Sequence[str],
        keys: np.ndarray,
        positions: np.ndarray,
        cache: LogitCache,
    ) -> int:
        """Label the texts (and pairs) at `positions` that no other run labelled meanwhile, `chunk_size` per shard,
        caching them under `cache_texts`."""
        elsewhere = cache.keys_added_elsewhere()
        if elsewhere:
            positions = np.asarray([i for i in positions if tuple(keys[i].tolist()) not in elsewhere], dtype=np.int64)
        texts, pairs = inputs
        for start in range(0, len(positions), self.config.chunk_size):
            rows = positions[start : start + self.config.chunk_size]
            batch = [texts[i] for i in rows]
            batch_pairs = None if pairs is None else [pairs[i] for i in rows]
            cache.add([cache_texts[i] for i in rows], self.predict(batch, batch_pairs))
        return len(positions)


def pair_cache_texts(texts: Sequence[str], pairs: Sequence[str]) -> list[str]:
    """The string a sentence pair is cached under: both texts, with the length of the first, behind a marker no
    ordinary text starts with."""
    return [f"\x00pair\x00{len(first)}\x00{first}{second}" for first, second in zip(texts, pairs, strict=True)]
