"""The teacher's logits, cached on disk text by text.

Each text is known by the SHA-256 of its UTF-8 bytes, so a cached logit row serves any corpus that contains the
text, wherever it stands: a corpus that grows, shrinks or is reordered (another mix of transfer text, another
de-duplication) only sends its new texts to the teacher. New texts are labelled in shards of `chunk_size` texts
split into hash buckets; each shard is written atomically under the SHA-256 of its own bytes, which is checked
when it is read: a shard damaged on disk is set aside with a warning naming the file, and its texts are labelled
again. An interrupted run loses at most the shard it was computing, and runs labelling the same corpus at the
same time take turns bucket by bucket (a file lock per bucket) instead of computing everything twice: the shards
written for a bucket are listed in its journal, which the next run to take the bucket reads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load, save

from .files import atomic_file

logger = logging.getLogger(__name__)

SHARD_PREFIX = "shard-"
SHARD_NAME = re.compile(rf"{SHARD_PREFIX}[0-9a-f]{{64}}\.safetensors")
KEY_DTYPE = np.dtype([("hi", "<u8"), ("lo", "<u8")])  # a text key as one sortable item (see `text_keys`)


def bucket_count(num_texts: int, chunk_size: int) -> int:
    """How many hash buckets a corpus of `num_texts` texts is labelled in: a power of two, about one shard per
    bucket. It depends on the corpus only, so runs labelling the same corpus share the same buckets (and
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


class LogitCache:
    """Teacher logits of single texts in one folder (one folder per teacher identity).

    Args:
        folder: Where the shards live.
        num_labels: Width of a logit row.
    """

    def __init__(self, folder: str | os.PathLike, num_labels: int):
        self.folder = Path(folder)
        self.num_labels = num_labels

    def shards(self) -> list[Path]:
        """The shard files, in name order."""
        return sorted(self.folder.glob(f"{SHARD_PREFIX}*.safetensors"))

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
        return path

    def read_shard(self, path: Path) -> tuple[np.ndarray, np.ndarray] | None:
        """A shard's keys and logits; `None` if it is gone (set aside by another process), or (with a warning) if it
        is damaged: wrong checksum, unreadable, or logits that are not finite numbers of the right shape."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
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
        try:
            os.replace(path, quarantined)
        except FileNotFoundError:  # another process found it damaged first and set it aside
            return None
        logger.warning(
            "teacher logit cache: %s is set aside as %s: %s; its texts will be labelled again",
            path, quarantined.name, problem,
        )  # fmt: skip
        return None


def by_bucket(records: np.ndarray, num_buckets: int) -> Iterator[tuple[int, np.ndarray]]:
    """The records (with a `key` field of `KEY_DTYPE`) of each hash bucket (`key.hi % num_buckets`) present, in
    their original order within the bucket: one sort, not one pass per bucket."""
    bucket = records["key"]["hi"] % np.uint64(num_buckets)
    order = np.argsort(bucket, kind="stable")
    records, bucket = records[order], bucket[order]
    starts = np.flatnonzero(np.r_[True, np.diff(bucket) != 0])
    for start, stop in zip(starts, [*starts[1:], len(records)]):
        yield int(bucket[start]), records[start:stop]


def find_keys(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Row of each of `keys` in `sorted_keys` (sorted, distinct `KEY_DTYPE` items), or -1 where it is absent."""
    if len(sorted_keys) == 0:
        return np.full(len(keys), -1, dtype=np.int64)
    rows = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return np.where(sorted_keys[rows] == keys, rows, -1)


class BucketIndex:
    """The cached logits of the keys some texts need, split by hash bucket (`key.hi % num_buckets`), one file per
    bucket in `work`: the cache's shards are read once and split up, keeping only the keys `wanted` by their bucket,
    so finding a bucket's logits reads that bucket's file only and memory holds one bucket, not the cache (which
    may hold many more texts than the ones labelled now).

    Each bucket's wanted keys are read once. While they fit, with those of the buckets read before, in `flush_rows`
    keys, they stay in memory and the shards' records are filtered as they are split (a small split looked up in a
    large cache writes only its own rows). The buckets beyond that go in two passes: their records are appended to
    a raw file per bucket, and each raw file is then filtered against its bucket's wanted keys, `flush_rows`
    records at a time, so the wanted keys are not read again at every flush however large the cache.

    Args:
        cache: The logit cache.
        num_buckets: How many buckets the keys are hashed into.
        buckets: The buckets to index.
        work: A folder of this index's own.
        wanted: The keys (`KEY_DTYPE`) of a bucket that the index should hold (the same throughout its life).
        flush_rows: Records held in memory at a time, while splitting and while filtering; also the most wanted
            keys held in memory.
    """

    def __init__(
        self,
        cache: LogitCache,
        num_buckets: int,
        buckets: set[int],
        work: Path,
        wanted: Callable[[int], np.ndarray],
        flush_rows: int = 2_000_000,
    ):
        self.cache, self.num_buckets, self.buckets, self.work = cache, num_buckets, buckets, work
        self._wanted = wanted
        self.record = np.dtype([("key", KEY_DTYPE), ("logits", "<f4", (cache.num_labels,))])
        self._flush_rows = flush_rows
        self._seen: set[Path] = set()
        self._kept_keys: dict[int, np.ndarray] = {}  # wanted keys held in memory, sorted, by bucket
        self._kept_count = 0  # how many keys that is
        self._unfiltered: set[int] = set()  # buckets whose raw file is still to be filtered
        self._two_pass: set[int] = set()  # buckets whose wanted keys did not fit
        work.mkdir(parents=True, exist_ok=True)
        self.absorb_new_shards()

    def absorb_new_shards(self) -> None:
        """Split up the shards written since the index was last brought up to date (by any process or run)."""
        self.absorb(self.cache.shards())

    def absorb(self, paths: Iterable[Path]) -> None:
        """Split up those of the shard files `paths` that the index has not seen (a missing one is skipped)."""
        pending, rows = [], 0
        for path in paths:
            if path in self._seen:
                continue
            self._seen.add(path)
            shard = self.cache.read_shard(path)
            if shard is None:
                continue
            pending.append(self._records(*shard))
            rows += len(pending[-1])
            if rows >= self._flush_rows:
                self._split(np.concatenate(pending))
                pending, rows = [], 0
        if pending:
            self._split(np.concatenate(pending))
        for number in sorted(self._unfiltered):
            self._filter(number)
            self._unfiltered.discard(number)

    def add(self, path: Path, keys: np.ndarray, logits: np.ndarray) -> None:
        """Index a shard this process has just written (`LogitCache.add`) without reading it back (its keys are
        all wanted)."""
        self._seen.add(path)
        for number, group in by_bucket(self._records(keys, logits), self.num_buckets):
            if number in self.buckets:
                self._write("bucket", number, group)

    def logits(self, bucket: int) -> tuple[np.ndarray, np.ndarray]:
        """The distinct cached keys of `bucket`, sorted (`KEY_DTYPE`), and their logits."""
        path = self._file("bucket", bucket)
        records = np.fromfile(path, dtype=self.record) if path.exists() else np.zeros(0, dtype=self.record)
        keys, first = np.unique(records["key"], return_index=True)
        return keys, records["logits"][first]

    def _file(self, kind: str, bucket: int) -> Path:
        return self.work / f"{kind}-{bucket:07d}.bin"

    def _write(self, kind: str, bucket: int, records: np.ndarray) -> None:
        if len(records):
            with open(self._file(kind, bucket), "ab") as f:
                records.tofile(f)

    def _records(self, keys: np.ndarray, logits: np.ndarray) -> np.ndarray:
        records = np.empty(len(keys), dtype=self.record)
        records["key"], records["logits"] = keys.view(KEY_DTYPE).ravel(), logits
        return records

    def _kept(self, bucket: int) -> np.ndarray | None:
        """The bucket's wanted keys if they are (or now fit) in memory, else None (the bucket goes in two passes)."""
        if bucket in self._kept_keys or bucket in self._two_pass:
            return self._kept_keys.get(bucket)
        keys = np.unique(self._wanted(bucket))
        if self._kept_count + len(keys) > self._flush_rows:
            self._two_pass.add(bucket)
            return None
        self._kept_keys[bucket], self._kept_count = keys, self._kept_count + len(keys)
        return keys

    def _split(self, records: np.ndarray) -> None:
        """File `records` by bucket: the wanted ones of buckets whose keys are in memory, the rest raw."""
        for number, group in by_bucket(records, self.num_buckets):
            if number not in self.buckets:
                continue
            kept = self._kept(number)
            if kept is None:
                self._write("raw", number, group)
                self._unfiltered.add(number)
            else:
                self._write("bucket", number, group[find_keys(kept, group["key"]) >= 0])

    def _filter(self, bucket: int) -> None:
        """Move the records of `bucket`'s raw file whose keys it wants to its bucket file, `flush_rows` at a time."""
        raw = self._file("raw", bucket)
        wanted = np.unique(self._wanted(bucket))
        total = raw.stat().st_size // self.record.itemsize
        with open(self._file("bucket", bucket), "ab") as out:
            for start in range(0, total, self._flush_rows):
                count = min(self._flush_rows, total - start)
                group = np.fromfile(raw, dtype=self.record, count=count, offset=start * self.record.itemsize)
                group[find_keys(wanted, group["key"]) >= 0].tofile(out)
        raw.unlink()
