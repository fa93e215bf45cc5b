"""Top-K n-gram vocabulary over corpora larger than memory.

Counting is exact and streaming: the texts are cut into chunks; each chunk is counted in a worker process and its
counts are written to disk split into hash partitions; then each partition is summed on its own (an n-gram lives
in exactly one partition, so the sums are exact) and its K best entries are kept; a final merge of the sorted
partition lists gives the global top K. Memory is bounded by one chunk's and one partition's distinct n-grams,
not by the corpus. Ranking is by total count (as `CountVectorizer(max_features=K)`), ties broken by the n-gram
string, so the result does not depend on chunking or on the number of processes.

Under `accelerate launch` the processes share the chunks and then the partitions out (through a folder they all
see); with a lasting `counts_dir`, an interrupted count resumes from the chunks and partitions already written.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import os
import shutil
import tempfile
import zlib
from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path

from accelerate import PartialState
from tqdm.auto import tqdm

from ..models.sparse_dan.tokenization_sparse_dan import (
    DEFAULT_TOKEN_PATTERN,
    SparseDANTokenizer,
    word_ngrams,
    word_splitter,
)
from .files import atomic_file, reset_folder
from .recipe import VocabConfig


@dataclass(frozen=True)
class Analyzer:
    """The tokenizer's word analysis, picklable for worker processes."""

    ngram_range: tuple[int, int] = (1, 4)
    lowercase: bool = True
    token_pattern: str = DEFAULT_TOKEN_PATTERN

    def ngrams(self, texts: Iterable[str]) -> Iterator[str]:
        """Every n-gram occurrence of every text, as the tokenizer analyses text."""
        words = word_splitter(self.lowercase, self.token_pattern)
        for text in texts:
            yield from word_ngrams(words(text), self.ngram_range)


def _partition(ngram: str, num_partitions: int) -> int:
    return zlib.crc32(ngram.encode("utf-8")) % num_partitions


COUNTS_MANIFEST = "manifest.json"


def _chunk_done(work_dir: str | Path, chunk_index: int) -> Path:
    return Path(work_dir) / f"chunk{chunk_index:07d}.done"


def _count_chunk(texts: list[str], analyzer: Analyzer, chunk_index: int, work_dir: str, num_partitions: int) -> int:
    """Count one chunk and write its counts as `count<TAB>ngram` lines, one file per partition, then its marker."""
    counts = Counter(analyzer.ngrams(texts))
    parts: list[list[str]] = [[] for _ in range(num_partitions)]
    for ngram, count in counts.items():
        parts[_partition(ngram, num_partitions)].append(f"{count}\t{ngram}\n")
    for p, lines in enumerate(parts):
        with atomic_file(Path(work_dir) / f"chunk{chunk_index:07d}.part{p:04d}.tsv") as f:
            f.writelines(lines)
    _chunk_done(work_dir, chunk_index).touch()
    return len(texts)


def _top_of_partition(work_dir: str, partition: int, size: int, min_count: int) -> str:
    """Sum one partition over all chunks; write its `size` best entries, best first; return that file."""
    totals: Counter = Counter()
    for path in sorted(Path(work_dir).glob(f"chunk*.part{partition:04d}.tsv")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                count, ngram = line.rstrip("\n").split("\t", 1)
                totals[ngram] += int(count)
    best = heapq.nsmallest(size, ((-c, g) for g, c in totals.items() if c >= min_count))
    out = _top_file(work_dir, partition)
    with atomic_file(out) as f:
        f.writelines(f"{-neg}\t{g}\n" for neg, g in best)
    return str(out)


def _top_file(work_dir: str | Path, partition: int) -> Path:
    return Path(work_dir) / f"top.part{partition:04d}.tsv"


def _read_top(path: str) -> Iterator[tuple[int, str]]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            count, ngram = line.rstrip("\n").split("\t", 1)
            yield -int(count), ngram


def _chunks(texts: Iterable[str], chunk_size: int) -> Iterator[list[str]]:
    iterator = iter(texts)
    while chunk := list(itertools.islice(iterator, chunk_size)):
        yield chunk


TASKS_PER_POOL = 40


def _run_bounded(workers: int, calls: Iterable[tuple], limit: int, tasks_per_pool: int = TASKS_PER_POOL) -> Iterator:
    """Run `(fn, *args)` calls in `workers` worker processes (inline with one) with at most `limit` pending,
    yielding results. A worker's memory grows with the calls it runs (about 1 MB per chunk counted), so the pool is
    replaced by a fresh one every `tasks_per_pool` calls, once its last calls are done: no worker's memory grows with
    the corpus."""
    if workers <= 1:
        for fn, *args in calls:
            yield fn(*args)
        return
    calls = iter(calls)
    while (first := next(calls, None)) is not None:
        with ProcessPoolExecutor(max_workers=workers) as executor:  # a fresh pool for the next `tasks_per_pool`
            pending: set[Future] = set()
            for fn, *args in itertools.chain([first], itertools.islice(calls, tasks_per_pool - 1)):
                pending.add(executor.submit(fn, *args))
                if len(pending) >= limit:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield future.result()
            for future in pending:
                yield future.result()


def count_top_ngrams(
    texts: Iterable[str],
    size: int,
    analyzer: Analyzer = Analyzer(),
    min_count: int = 1,
    num_workers: int | None = None,
    num_partitions: int = 16,
    chunk_size: int = 20_000,
    work_dir: str | os.PathLike | None = None,
    total: int | None = None,
    show_progress: bool = True,
    counts_dir: str | os.PathLike | None = None,
    identity: dict | None = None,
    state: PartialState | None = None,
) -> list[tuple[str, int]]:
    """The `size` most frequent n-grams of `texts` with their counts, most frequent first (ties: by string).

    Args:
        texts: Any iterable of strings; it is read once, chunk by chunk (it may be a generator over a corpus
            that does not fit in memory).
        size: How many n-grams to keep (paper: 1,000,000).
        analyzer: Word analysis (must match the tokenizer that will use the vocabulary).
        min_count: Drop n-grams seen fewer times.
        num_workers: Processes for counting and merging (default: the CPU cores, shared between the processes of
            `state`; 0 or 1 counts in-process).
        num_partitions: Hash partitions of the on-disk counts; more partitions, less memory per merge.
        chunk_size: Texts per counting task.
        work_dir: Where the temporary count files go (default: the system temporary directory).
        total: Number of texts, for the progress bar only.
        show_progress: Show progress bars.
        counts_dir: A lasting folder for the counts (default: a temporary one in `work_dir`, removed at the end):
            a count interrupted and started again with the same texts and `identity` resumes from the chunks and
            partitions it finished. Needed with several processes: they must all see it.
        identity: What the counts in `counts_dir` belong to (e.g. a fingerprint of the texts); counts made with
            another identity or other settings are cleared first.
        state: The accelerate process state: each process counts every N-th chunk and merges every N-th
            partition (all processes must call this with the same texts); every process returns the result.
    """
    world, rank = (state.num_processes, state.process_index) if state is not None else (1, 0)
    workers = num_workers if num_workers is not None else max(1, (os.cpu_count() or 1) // world)
    if world > 1 and counts_dir is None:
        raise ValueError("several processes count n-grams into a counts_dir they all see: name one")
    manifest = {
        "analyzer": asdict(analyzer), "size": size, "min_count": min_count, "num_partitions": num_partitions,
        "chunk_size": chunk_size, "identity": identity,
    }  # fmt: skip
    with contextlib.ExitStack() as stack:
        if counts_dir is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=work_dir, prefix="hfsd-vocab-")))
        else:
            folder = Path(counts_dir)
            if rank == 0:
                reset_folder(folder, COUNTS_MANIFEST, manifest)
            if state is not None:
                state.wait_for_everyone()
        calls = (
            (_count_chunk, chunk, analyzer, i, str(folder), num_partitions)
            for i, chunk in enumerate(_chunks(texts, chunk_size))
            if i % world == rank and not _chunk_done(folder, i).exists()
        )
        share = None if total is None else -(-total // world)
        with tqdm(total=share, desc="counting n-grams", unit="texts", disable=not show_progress) as bar:
            for done in _run_bounded(workers, calls, limit=2 * max(workers, 1)):
                bar.update(done)
        if state is not None:
            state.wait_for_everyone()
        mine = [p for p in range(num_partitions) if p % world == rank and not _top_file(folder, p).exists()]
        merges = ((_top_of_partition, str(folder), p, size, min_count) for p in mine)
        for _ in tqdm(
            _run_bounded(workers, merges, limit=max(workers, 1)),
            total=len(mine), desc="merging partitions", disable=not show_progress,
        ):  # fmt: skip
            pass
        if state is not None:
            state.wait_for_everyone()
        tops = [_top_file(folder, p) for p in range(num_partitions)]
        best = itertools.islice(heapq.merge(*(_read_top(path) for path in tops)), size)
        return [(ngram, -neg) for neg, ngram in best]


def build_vocabulary(texts: Iterable[str], size: int, analyzer: Analyzer = Analyzer(), **kwargs) -> list[str]:
    """The `size` most frequent n-grams (see `count_top_ngrams`), most frequent first: tokenizer id order."""
    return [ngram for ngram, _ in count_top_ngrams(texts, size, analyzer, **kwargs)]


VOCAB_SETTINGS = "vocab_settings.json"
TEXTS_PER_PARTITION = 62_500


def partitions_for(num_texts: int) -> int:
    """Hash partitions of the counts for a corpus of `num_texts` (when the recipe names none): one per
    `TEXTS_PER_PARTITION` texts, at least 16, so the distinct n-grams a merge holds do not grow with the corpus."""
    return max(16, -(-num_texts // TEXTS_PER_PARTITION))


def vocabulary_settings(vocab: VocabConfig, corpus_fingerprint: str, max_ngrams: int) -> dict:
    """What determines a tokenizer built by `build_tokenizer` (recorded next to it; a change means a rebuild)."""
    settings = {**asdict(vocab), "corpus": corpus_fingerprint, "max_ngrams": max_ngrams}
    for runtime_only in ("num_workers", "num_partitions"):
        settings.pop(runtime_only)
    return settings


def build_tokenizer(
    texts: Collection[str],
    vocab: VocabConfig,
    max_ngrams: int,
    folder: Path,
    settings: dict,
    state: PartialState | None = None,
    chunk_size: int = 20_000,
) -> SparseDANTokenizer:
    """Count the top n-grams of `texts` as `vocab` says and save the tokenizer to `folder` (replacing what was
    there), with `settings` in `vocab_settings.json`.

    The counts are kept in `<folder>.counts/` until the tokenizer is saved, so an interrupted count resumes. With
    `state`, every process of the run must call this: they count their shares (`chunk_size` texts each) and the
    main process saves."""
    analyzer = Analyzer(tuple(vocab.ngram_range), vocab.lowercase, vocab.token_pattern)
    counts_dir = folder.with_name(folder.name + ".counts")
    ngrams = build_vocabulary(
        texts,
        vocab.size,
        analyzer,
        min_count=vocab.min_count,
        num_workers=vocab.num_workers,
        num_partitions=vocab.num_partitions or partitions_for(len(texts)),
        total=len(texts),
        chunk_size=chunk_size,
        counts_dir=counts_dir,
        identity=settings,
        state=state,
        show_progress=state is None or state.is_main_process,
    )
    tokenizer = SparseDANTokenizer.from_ngrams(
        ngrams,
        ngram_range=vocab.ngram_range,
        lowercase=vocab.lowercase,
        token_pattern=vocab.token_pattern,
        model_max_length=max_ngrams,
    )
    if state is not None:
        state.wait_for_everyone()  # every process has read the counts before they go
    if state is None or state.is_main_process:
        shutil.rmtree(folder, ignore_errors=True)
        tokenizer.save_pretrained(folder)
        (folder / VOCAB_SETTINGS).write_text(json.dumps(settings, indent=2))
        shutil.rmtree(counts_dir, ignore_errors=True)
    if state is not None:
        state.wait_for_everyone()
    return tokenizer


def saved_tokenizer_settings(folder: Path) -> dict | None:
    """The settings a tokenizer in `folder` was built with (`None` if there is none)."""
    path = folder / VOCAB_SETTINGS
    return json.loads(path.read_text()) if path.exists() else None
