"""The teacher's logits, cached on disk text by text.

Each text is known by the SHA-256 of its UTF-8 bytes, so a cached logit row serves any corpus that contains the
text, wherever it stands: a corpus that grows, shrinks or is reordered (another mix of transfer text, another
de-duplication) only sends its new texts to the teacher. New texts are labelled in shards of `chunk_size` texts
split into hash buckets; each shard is written atomically under the SHA-256 of its own bytes, which is checked
when it is read: a shard damaged on disk is set aside with a warning naming the file, and its texts are labelled
again. An interrupted run loses at most the shard it was computing, and runs labelling the same corpus at the
same time take turns bucket by bucket (a file lock per bucket) instead of computing everything twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load, save

from .files import atomic_file

logger = logging.getLogger(__name__)

SHARD_PREFIX = "shard-"


def bucket_count(num_texts: int, chunk_size: int) -> int:
    """How many hash buckets a corpus of `num_texts` distinct texts is labelled in: a power of two, about one shard
    per bucket. It depends on the corpus only, so runs labelling the same corpus share the same buckets (and
    locks)."""
    return 1 << max(0, math.ceil(math.log2(max(1, math.ceil(num_texts / chunk_size)))))


def text_keys(texts: Sequence[str]) -> np.ndarray:
    """Key of each text: the first 16 bytes of its SHA-256, as two uint64 columns `[n, 2]`."""
    digests = b"".join(hashlib.sha256(text.encode("utf-8")).digest()[:16] for text in texts)
    return np.frombuffer(digests, dtype="<u8").reshape(len(texts), 2).copy()


def identity_folder_name(identity: dict) -> str:
    """Folder name of a teacher identity (what determines its logits): a short hash of its JSON."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]


def _file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class _Index:
    """Keys and logits of every shard, sorted by key for lookup."""

    keys: np.ndarray
    logits: np.ndarray

    @classmethod
    def of(cls, keys: list[np.ndarray], logits: list[np.ndarray], num_labels: int) -> _Index:
        if not keys:
            return cls(np.zeros((0, 2), dtype=np.uint64), np.zeros((0, num_labels), dtype=np.float32))
        all_keys, all_logits = np.concatenate(keys), np.concatenate(logits)
        order = np.lexsort((all_keys[:, 1], all_keys[:, 0]))
        return cls(all_keys[order], all_logits[order])

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Row of each key in the index, or -1 where it is not cached."""
        if len(self.keys) == 0:
            return np.full(len(keys), -1, dtype=np.int64)
        lo = np.searchsorted(self.keys[:, 0], keys[:, 0], side="left")
        hi = np.searchsorted(self.keys[:, 0], keys[:, 0], side="right")
        rows = np.full(len(keys), -1, dtype=np.int64)
        # the first 8 bytes almost never repeat: walk the (rare) runs of equal first halves for the second half
        for i in np.flatnonzero(hi > lo):
            for row in range(lo[i], hi[i]):
                if self.keys[row, 1] == keys[i, 1]:
                    rows[i] = row
                    break
        return rows


class LogitCache:
    """Teacher logits of single texts in one folder (one folder per teacher identity).

    Args:
        folder: Where the shards live.
        num_labels: Width of a logit row.
    """

    def __init__(self, folder: str | os.PathLike, num_labels: int):
        self.folder = Path(folder)
        self.num_labels = num_labels
        self._index: _Index | None = None
        self._read_paths: list[Path] = []
        self._written: set[Path] = set()

    def shards(self) -> list[Path]:
        """The shard files, in name order."""
        return sorted(self.folder.glob(f"{SHARD_PREFIX}*.safetensors"))

    def reload(self) -> None:
        """Forget what was read: the next lookup reads the folder again (shards written since, by any process)."""
        self._index = None
        self._read_paths, self._written = [], set()

    def missing(self, keys: np.ndarray) -> np.ndarray:
        """Positions of the `keys` (see `text_keys`) without cached logits: the first occurrence of each."""
        absent = np.flatnonzero(self._read().find(keys) < 0)
        _, first = np.unique(keys[absent], axis=0, return_index=True)
        return absent[np.sort(first)]

    def keys_added_elsewhere(self) -> set[tuple[int, int]]:
        """Keys of the shards written since this cache was read, by another run (this one's own are excluded)."""
        known = set(self._read_paths) | self._written
        added = set()
        for path in self.shards():
            if path not in known:
                shard = self._read_shard(path)
                self._read_paths.append(path)
                if shard is not None:
                    added.update(map(tuple, shard[0].tolist()))
        return added

    def add(self, texts: Sequence[str], logits: np.ndarray) -> Path:
        """Store the logits of `texts` as one shard, written atomically under its own checksum."""
        logits = np.ascontiguousarray(logits, dtype=np.float32)
        if logits.shape != (len(texts), self.num_labels) or not np.isfinite(logits).all():
            raise ValueError(
                f"teacher logits must be finite, shape {(len(texts), self.num_labels)}; got {logits.shape}"
            )
        data = save({"keys": text_keys(texts), "logits": logits})
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{SHARD_PREFIX}{_file_sha256(data)}.safetensors"
        with atomic_file(path, "wb") as f:
            f.write(data)
        self._written.add(path)
        return path

    def lookup(self, texts: Sequence[str]) -> np.ndarray:
        """Logits of every text, `[len(texts), num_labels]` float32; every text must be cached."""
        index = self._read()
        rows = index.find(text_keys(texts))
        if (rows < 0).any():
            raise RuntimeError(f"{int((rows < 0).sum())} texts have no cached teacher logits in {self.folder}")
        return index.logits[rows]

    def _read(self) -> _Index:
        if self._index is None:
            keys, logits = [], []
            self._read_paths = self.shards()
            for path in self._read_paths:
                shard = self._read_shard(path)
                if shard is not None:
                    keys.append(shard[0])
                    logits.append(shard[1])
            self._index = _Index.of(keys, logits, self.num_labels)
        return self._index

    def _read_shard(self, path: Path) -> tuple[np.ndarray, np.ndarray] | None:
        """A shard's keys and logits, or `None` (with a warning) if it is damaged: wrong checksum, unreadable, or
        logits that are not finite numbers of the right shape."""
        data = path.read_bytes()
        expected = path.name.removeprefix(SHARD_PREFIX).removesuffix(".safetensors")
        problem = None
        if _file_sha256(data) != expected:
            problem = "its SHA-256 does not match its name (damaged or truncated)"
        else:
            try:
                tensors = load(data)
                keys, logits = tensors["keys"], tensors["logits"]
            except (SafetensorError, KeyError) as error:
                problem = f"it cannot be read ({error})"
            else:
                if logits.shape != (len(keys), self.num_labels) or not np.isfinite(logits).all():
                    problem = "its logits are not finite numbers of the teacher's width"
        if problem is None:
            return keys, logits
        quarantined = path.with_suffix(".corrupt")
        os.replace(path, quarantined)
        logger.warning(
            "teacher logit cache: %s is set aside as %s: %s; its texts will be labelled again",
            path, quarantined.name, problem,
        )  # fmt: skip
        return None
