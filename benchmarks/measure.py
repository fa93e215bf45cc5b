"""Measurements shared by the benchmark workers: memory of this process, texts per second, benchmark texts."""

from __future__ import annotations

import gzip
import json
import os
import resource
from pathlib import Path

from hf_sparse_distill.speed import batches_per_second, machine_description, throughput

__all__ = [
    "batches_per_second",
    "machine_description",
    "throughput",
    "rss_mb",
    "peak_rss_mb",
    "shared_dir",
    "sst2_split",
    "long_reviews",
]


def rss_mb() -> float:
    """Resident memory of this process now (MB)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def shared_dir() -> Path:
    path = Path(os.environ.get("HFSD_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    if not (path / "data").is_dir():
        raise FileNotFoundError(f"shared data not found at {path}; set HFSD_SHARED")
    return path


def _jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def sst2_split(split: str) -> tuple[list[str], list[int]]:
    rows = _jsonl(shared_dir() / "data" / "sst2" / f"{split}.jsonl")
    return [r["text"] for r in rows], [r["label"] for r in rows]


def long_reviews(count: int, words: int = 300) -> list[str]:
    """`count` IMDB test reviews cut to their first `words` words (all have at least that many)."""
    out = []
    for row in _jsonl(shared_dir() / "data" / "imdb" / "test.jsonl.gz"):
        tokens = row["text"].split()
        if len(tokens) >= words:
            out.append(" ".join(tokens[:words]))
            if len(out) == count:
                break
    return out
