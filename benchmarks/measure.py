"""Measurements shared by the benchmark workers: memory of this process, texts per second, benchmark texts."""

from __future__ import annotations

import gzip
import json
import os
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from hf_sparse_distill.speed import batches_per_second, machine_description, throughput

__all__ = [
    "batches_per_second",
    "machine_description",
    "throughput",
    "interleaved_throughput",
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


def interleaved_throughput(
    predicts: dict[str, Callable[[list[str]], object]], texts: Sequence[str], batch_size: int, rounds: int = 30
) -> dict[str, float]:
    """Median texts per second of each predict over `rounds` rounds, where each round runs every predict once over
    all of `texts` (in batches), one after the other, starting one further along the list each round. The speed of
    a shared machine drifts by tens of percent within minutes; models measured in turns within each round see the
    same drift, so their ratio holds, and none always runs first or after the same model."""
    batches = [list(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
    speeds: dict[str, list[float]] = {name: [] for name in predicts}
    order = list(predicts)
    for round_index in range(rounds + 1):  # round 0 warms up
        shift = round_index % len(order)
        for name in order[shift:] + order[:shift]:
            predict = predicts[name]
            start = time.perf_counter()
            for batch in batches:
                predict(batch)
            if round_index:
                speeds[name].append(len(texts) / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in speeds.items()}
