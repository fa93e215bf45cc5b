"""Text data for distillation: read splits through `datasets`, split reviews into sentences or clauses, and
assemble the KD corpus (train ∪ unlabeled) with evaluation texts removed from the unlabeled part."""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
import numpy as np
from datasets.arrow_writer import ArrowWriter
from tqdm.auto import tqdm

from ..models.sparse_dan.tokenization_sparse_dan import word_splitter
from ..results import DataReport
from .augment import augment_pairs, augment_texts
from .files import atomic_file, read_json, reset_folder, save_npy, temporary_path
from .logit_cache import KEY_DTYPE, text_keys
from .recipe import AugmentConfig, DataConfig, DatasetSource, VocabConfig

logger = logging.getLogger(__name__)

DEFAULT_SELECT_SIZE = 2000
_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|<br\s*/?>|\n+")
_CLAUSE_BREAK = re.compile(r"\s*(?:[,;:()]|--|\b(?:but|though|although|while)\b)\s*", re.IGNORECASE)
_TREEBANK_BRACKET = re.compile(r"-[lr][rsc]b-")  # Penn Treebank's escaped brackets: -LRB- -RRB- -LSB- ... -RCB-
_NOT_LETTER_OR_DIGIT = re.compile(r"[\W_]+")


@dataclass
class TextSet:
    """Texts with optional integer labels (`None` for unlabeled data) and, for sentence-pair data, the second text
    of each example (`pairs`)."""

    texts: list[str]
    labels: list[int] | None = None
    pairs: list[str] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, rows: Sequence[int]) -> TextSet:
        """The examples at `rows`, in that order."""
        return TextSet(
            [self.texts[i] for i in rows],
            None if self.labels is None else [self.labels[i] for i in rows],
            None if self.pairs is None else [self.pairs[i] for i in rows],
        )

    def keys(self, key: Callable[[str], str]) -> list[str]:
        """The de-duplication key of each example (see `dedup_key`); for a pair, the keys of both texts on two
        lines (a key has no line break) and empty if either text has no word."""
        if self.pairs is None:
            return [key(t) for t in self.texts]
        out = []
        for first, second in zip(self.texts, self.pairs):
            first, second = key(first), key(second)
            out.append(f"{first}\n{second}" if first and second else "")
        return out


class TextColumn(Sequence[str]):
    """One text column of a memory-mapped dataset, read slice by slice: a sequence of texts that never holds
    every text as a Python object (indexing by a slice or an array of rows reads only those rows)."""

    def __init__(self, dataset: datasets.Dataset, column: str, batch_size: int = 10_000):
        self._dataset = dataset.select_columns([column])
        self._column = column
        self._batch_size = batch_size

    def __len__(self) -> int:
        return len(self._dataset)

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return self._dataset[int(index)][self._column]
        if isinstance(index, slice):
            return self._dataset[index][self._column] if index.step in (None, 1) else self[range(len(self))[index]]
        return self._dataset[np.asarray(index, dtype=np.int64)][self._column] if len(index) else []

    def __iter__(self) -> Iterator[str]:
        for start in range(0, len(self), self._batch_size):
            yield from self[start : start + self._batch_size]


class ChainedTexts(Collection[str]):
    """Several text sequences read one after the other (e.g. both texts of sentence pairs, for the vocabulary)."""

    def __init__(self, *parts: Sequence[str]):
        self._parts = parts

    def __len__(self) -> int:
        return sum(len(part) for part in self._parts)

    def __iter__(self) -> Iterator[str]:
        for part in self._parts:
            yield from part

    def __contains__(self, text: object) -> bool:
        return any(text in part for part in self._parts)


CORPUS_LABELS, CORPUS_MANIFEST = "labels.npy", "corpus.json"
TEXT, TEXT_PAIR = "text", "text_pair"


@dataclass
class KDCorpus:
    """The texts the teacher labels: the train set first (with gold labels), then the unlabeled texts (label -1),
    in Arrow shards memory-mapped through `datasets` (`dataset`: columns `text` and, for sentence-pair data,
    `text_pair`) with the labels in a memory-mapped `.npy` beside them.

    Args:
        dataset: The texts (and second texts of pairs), in KD order.
        labels: One label per text: gold for the train part, the recipe's missing label for the rest.
        num_train: How many texts at the start are the train set.
        report: What went in and what was removed.
        fingerprint: SHA-256 (hex) of the shards' texts and second texts (in order) and of the labels.
    """

    dataset: datasets.Dataset
    labels: np.ndarray
    num_train: int
    report: DataReport
    fingerprint: str
    _temporary: tempfile.TemporaryDirectory | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def texts(self) -> TextColumn:
        """The texts, read from disk slice by slice."""
        return TextColumn(self.dataset, TEXT)

    @property
    def pairs(self) -> TextColumn | None:
        """The second text of each example for sentence-pair data, else `None`."""
        return TextColumn(self.dataset, TEXT_PAIR) if TEXT_PAIR in self.dataset.column_names else None

    @property
    def vocabulary_texts(self) -> Collection[str]:
        """Every text the student's table must cover: the texts, then the second texts of pairs."""
        return self.texts if self.pairs is None else ChainedTexts(self.texts, self.pairs)


def _update_digest(digest: hashlib._Hash, texts: Iterable[str]) -> None:
    """Feed each text, preceded by its length, to a running SHA-256."""
    for text in texts:
        encoded = text.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)


def corpus_fingerprint(texts: Sequence[str]) -> str:
    """SHA-256 over the texts and their order (hex)."""
    digest = hashlib.sha256()
    _update_digest(digest, texts)
    return digest.hexdigest()


def dedup_key(vocab: VocabConfig) -> Callable[[str], str]:
    """Comparison key for de-duplication: the words of a text as the recipe's tokenizer analyses it (its
    `lowercase` and `token_pattern`), joined by spaces. Two texts with the same key give the student exactly the
    same n-grams; a text with an empty key gives it none."""
    words = word_splitter(vocab.lowercase, vocab.token_pattern)
    return lambda text: " ".join(words(text))


# part of every KD corpus's identity: a corpus whose held-out texts were compared by another `overlap_key` is rebuilt
OVERLAP_KEY_VERSION = 2


def overlap_key(text: str) -> str:
    """Comparison key for held-out texts: the text's letters and digits alone, lowercased, accents dropped ("amélie"
    and "Amelie" compare equal), Treebank brackets dropped. Coarser than `dedup_key` on purpose: one sentence
    tokenized or written two ways (Treebank's "does n't" and `` quotes in SST, "doesn't" and plain quotes in MR) has
    one overlap key, so its other copy cannot reach the student."""
    text = text.lower()
    if not text.isascii():
        text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return _NOT_LETTER_OR_DIGIT.sub("", _TREEBANK_BRACKET.sub(" ", text))


def split_sentences(text: str) -> list[str]:
    """Split a review into sentences (after `.`, `!` or `?` followed by a capital or digit, and at `<br />`)."""
    return [s.strip() for s in _SENTENCE_BREAK.split(text) if s and s.strip()]


def split_clauses(sentence: str) -> list[str]:
    """Split a sentence into clauses: at `,` `;` `:` `--`, parentheses and before but / though / although / while
    (the connective is dropped). A sentence without such a break gives an empty list: it has no sub-clause."""
    clauses = [c for c in _CLAUSE_BREAK.split(sentence) if c and c.strip()]
    return clauses if len(clauses) > 1 else []


def _local_builder(path: str) -> str | None:
    name = path[:-3] if path.endswith(".gz") else path
    for suffix, builder in _BUILDERS.items():
        if name.endswith(suffix):
            return builder
    return None


def load_source(
    source: DatasetSource, label2id: dict[str, int] | None = None, problem_type: str | None = None
) -> TextSet:
    """Read one split with `datasets.load_dataset` and return its texts (and labels when it has them): class ids
    or names (single-label, the default), a list of class ids or names per text, turned into multi-hot rows
    (`problem_type="multi_label_classification"`; needs `label2id`), or numbers (`"regression"`)."""
    if source.streaming:
        raise ValueError(f"{source.path}: streaming applies to unlabeled sources; labeled splits are read whole")
    if source.match is not None:
        raise ValueError(f"{source.path}: match applies to unlabeled text, not to labeled splits")
    dataset = _open(source)
    _check_columns(dataset, source)
    has_labels = source.label_column is not None and source.label_column in dataset.column_names
    split = source.split_sentences or source.split_clauses  # then max_rows counts sentences / clauses, not rows
    if source.max_rows is not None and not split:
        dataset = dataset.select(range(min(source.max_rows, len(dataset))))
    texts = _text_column(dataset, source.text_column, source.path)
    pairs = _text_column(dataset, source.text_pair_column, source.path) if source.text_pair_column else None
    labels = _labels(list(dataset[source.label_column]), label2id, source, problem_type) if has_labels else None
    if split:
        texts = _sentences(texts, source)
        labels = None
    result = TextSet(texts=texts, labels=labels, pairs=pairs)
    if labels is not None and source.label_map is not None:
        kept = [i for i, label in enumerate(labels) if label in source.label_map]
        result = result.subset(kept)
        result.labels = [source.label_map[label] for label in result.labels]
    return result


def _text_column(dataset: datasets.Dataset, column: str, path: str) -> list[str]:
    """The texts of `column` as a list (`datasets` returns a lazy column); an error names a row that is not text."""
    texts = list(dataset[column])
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise TypeError(f"{path}: row {bad} of column {column!r} is {texts[bad]!r}, not text")
    return texts


def _labels(
    values: Sequence, label2id: dict[str, int] | None, source: DatasetSource, problem_type: str | None = None
) -> list:
    if problem_type == "regression":
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise ValueError(
                f"{source.path}: column {source.label_column!r} must hold numbers for a regression teacher"
            )
        return [float(v) for v in values]
    if problem_type == "multi_label_classification":
        if label2id is None or not all(isinstance(v, (list, tuple)) for v in values):
            raise ValueError(
                f"{source.path}: column {source.label_column!r} must hold a list of class ids or names per text for a "
                "multi-label teacher"
            )
        rows = []
        for value in values:
            row = [0.0] * len(label2id)
            for label in _labels(list(value), label2id, source) if value else []:
                if not 0 <= label < len(label2id):
                    raise ValueError(f"{source.path}: class id {label} is not in [0, {len(label2id)})")
                row[label] = 1.0
            rows.append(row)
        return rows
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return list(values)
    if label2id is not None and all(isinstance(v, str) for v in values):
        unknown = sorted({v for v in values if v not in label2id})
        if unknown:
            raise ValueError(f"{source.path}: labels {unknown[:5]} are not among {sorted(label2id)}")
        return [label2id[v] for v in values]
    raise ValueError(f"{source.path}: column {source.label_column!r} must hold class ids or label names")


def _pieces(text: str, source: DatasetSource) -> list[str]:
    """The sentences (or, with `split_clauses`, the clauses) of `text` whose word count is within the source's
    bounds and that the source's `match` finds."""
    out = []
    for sentence in split_sentences(text):
        for piece in split_clauses(sentence) if source.split_clauses else [sentence]:
            words = len(piece.split())
            if words >= source.min_words and (source.max_words is None or words <= source.max_words):
                out.append(piece)
    return _matching(out, source)


def _matches(texts: Sequence[str], source: DatasetSource) -> list[bool]:
    """Whether the source's `match` is found in each of `texts` (True for all without one)."""
    if source.match is None:
        return [True] * len(texts)
    pattern = re.compile(source.match)
    return [pattern.search(text) is not None for text in texts]


def _matching(texts: list[str], source: DatasetSource) -> list[str]:
    """The texts in which the source's `match` is found (all of them without one)."""
    return [text for text, found in zip(texts, _matches(texts, source)) if found]


def _sentences(texts: Iterable[str], source: DatasetSource) -> list[str]:
    """The pieces (`_pieces`) of `texts`, up to `max_rows`."""
    out = []
    for text in texts:
        out.extend(_pieces(text, source))
        if source.max_rows is not None and len(out) >= source.max_rows:
            return out[: source.max_rows]
    return out


def _open(source: DatasetSource, streaming: bool = False) -> datasets.Dataset | datasets.IterableDataset:
    """The split a source names, memory-mapped by `datasets` (local files through their builder), or streamed."""
    builder = _local_builder(source.path)
    stream = {"streaming": True} if streaming else {}  # the call stays as it always was when not streaming
    if builder is None:
        return datasets.load_dataset(
            source.path, source.name, data_files=source.data_files, split=source.split, revision=source.revision,
            **stream,
        )  # fmt: skip
    files = sorted(glob.glob(source.path))
    if not files:
        raise FileNotFoundError(f"no file matches {source.path!r}")
    empty = [f for f in files if os.path.getsize(f) == 0]
    if empty:
        raise ValueError(f"{source.path}: {empty[0]} is empty (no rows)")
    return datasets.load_dataset(builder, data_files=files, split="train", **stream)


def _check_columns(dataset: datasets.Dataset, source: DatasetSource) -> None:
    if len(dataset) == 0:
        raise ValueError(f"{source.path}: no rows")
    if source.text_column not in dataset.column_names:
        raise ValueError(f"{source.path}: no text column {source.text_column!r}; columns are {dataset.column_names}")
    if source.text_pair_column is not None and source.text_pair_column not in dataset.column_names:
        raise ValueError(
            f"{source.path}: no text pair column {source.text_pair_column!r}; columns are {dataset.column_names}"
        )
    if (source.split_sentences or source.split_clauses) and source.text_pair_column is not None:
        raise ValueError(f"{source.path}: split_sentences / split_clauses do not apply to sentence pairs")


def load_unlabeled(source: DatasetSource) -> datasets.Dataset:
    """Read an unlabeled source as a memory-mapped dataset with a `text` column (and `text_pair` for sentence
    pairs): its rows, or its sentences / clauses (split by `datasets.Dataset.map`, cached by `datasets` like any
    map), those that `match` finds if it is set, up to `max_rows`. No text is held in memory; labels, if the source
    has any, are ignored. A `streaming` source is read through `_streamed`."""
    if source.label_map is not None:
        raise ValueError(f"{source.path}: label_map applies to labeled splits, not to unlabeled text")
    if source.streaming:
        return _streamed(source)
    dataset = _open(source)
    _check_columns(dataset, source)
    columns = {source.text_column: TEXT, **({source.text_pair_column: TEXT_PAIR} if source.text_pair_column else {})}
    for column in columns:
        if dataset.features[column] not in (datasets.Value("string"), datasets.Value("large_string")):
            raise TypeError(f"{source.path}: column {column!r} holds {dataset.features[column]}, not text")
        if dataset.data.column(column).null_count:
            raise TypeError(f"{source.path}: column {column!r} has rows without text (null)")
    dataset = dataset.select_columns(list(columns)).rename_columns(columns)
    if source.split_sentences or source.split_clauses:
        dataset = _split_pieces(dataset, source)
    elif source.match is not None:
        dataset = dataset.filter(lambda batch: _matches(batch[TEXT], source), batched=True, desc="matching texts")
    if source.max_rows is not None:
        dataset = dataset.select(range(min(source.max_rows, len(dataset))))
    return dataset


def _split_pieces(dataset: datasets.Dataset, source: DatasetSource) -> datasets.Dataset:
    """The sentences / clauses of the `text` column (`Dataset.map`, cached by `datasets`). With `max_rows`, the
    source is split window by window of its rows until `max_rows` pieces are there (the first window an eighth of
    `max_rows` rows, at least 1,000; the next ones sized from the pieces per row seen so far): a few pieces of a
    huge source do not split all of it."""

    def split(batch: dict[str, list]) -> dict[str, list[str]]:
        return {TEXT: [piece for text in batch[TEXT] for piece in _pieces(text, source)]}

    if source.max_rows is None:
        return dataset.map(split, batched=True, remove_columns=[TEXT], desc="splitting sentences")
    parts, pieces, start, window = [], 0, 0, max(1_000, source.max_rows // 8)
    while pieces < source.max_rows and start < len(dataset):
        rows = dataset.select(range(start, min(len(dataset), start + window)))
        parts.append(rows.map(split, batched=True, remove_columns=[TEXT], desc="splitting sentences"))
        pieces, start = pieces + len(parts[-1]), start + len(rows)
        per_row = max(pieces / start, 0.01)
        window = max(1_000, int(1.1 * (source.max_rows - pieces) / per_row))
    return datasets.concatenate_datasets(parts)


STREAM_SHARD_ROWS = 100_000
STREAM_MANIFEST = "stream.json"


def _streamed(source: DatasetSource) -> datasets.Dataset:
    """The texts of a streamed source (`load_dataset(..., streaming=True)`), sentences or clauses if it asks for
    them, those that `match` finds if it is set, up to `max_rows`, written once into Arrow shards of
    `STREAM_SHARD_ROWS` under the `datasets` cache and memory-mapped from there. An interrupted copy resumes after
    its last finished shard (the stream skips the source rows already read)."""
    files = [(f, os.path.getsize(f), os.path.getmtime(f)) for f in sorted(glob.glob(source.path))]
    settings = {k: v for k, v in asdict(source).items() if not (k == "match" and v is None)}  # copies made before it
    known_by = {**settings, "local_files": files}  # a local file that changes is streamed again
    folder = Path(datasets.config.HF_DATASETS_CACHE) / "hf_sparse_distill_streams" / _inputs_digest(known_by)[:24]
    reset_folder(folder, "source.json", known_by)
    progress = read_json(folder / STREAM_MANIFEST) or {"shards": [], "source_rows": 0, "rows": 0, "done": False}
    columns = {source.text_column: TEXT, **({source.text_pair_column: TEXT_PAIR} if source.text_pair_column else {})}
    features = datasets.Features({name: datasets.Value("string") for name in columns.values()})
    split = source.split_sentences or source.split_clauses
    if split and source.text_pair_column is not None:
        raise ValueError(f"{source.path}: split_sentences / split_clauses do not apply to sentence pairs")
    limit = source.max_rows if source.max_rows is not None else float("inf")
    if not progress["done"]:
        stream = _open(source, streaming=True).skip(progress["source_rows"])
        pending: dict[str, list[str]] = {name: [] for name in columns.values()}
        consumed = progress["source_rows"]

        def flush(done: bool) -> None:
            rows = len(pending[TEXT])
            if rows:
                name = f"shard-{len(progress['shards']):06d}.arrow"
                tmp = temporary_path(folder / name)
                writer = ArrowWriter(path=str(tmp), features=features)
                writer.write_batch(pending)
                writer.finalize()
                os.replace(tmp, folder / name)
                progress["shards"].append(name)
            progress.update(source_rows=consumed, rows=progress["rows"] + rows, done=done)
            with atomic_file(folder / STREAM_MANIFEST) as f:
                f.write(json.dumps(progress))
            for texts in pending.values():
                texts.clear()

        with tqdm(
            total=None if limit == float("inf") else limit,
            initial=progress["rows"],
            desc=f"streaming {source.path}",
            unit="texts",
        ) as bar:
            for row in stream:
                consumed += 1
                values = {name: row.get(column) for column, name in columns.items()}
                for column, value in zip(columns, values.values()):
                    if not isinstance(value, str):
                        raise TypeError(
                            f"{source.path}: row {consumed - 1} of column {column!r} is {value!r}, not text"
                        )
                pieces = _pieces(values[TEXT], source) if split else _matching([values[TEXT]], source)
                room = int(min(len(pieces), limit - progress["rows"] - len(pending[TEXT])))
                pending[TEXT].extend(pieces[:room])
                if TEXT_PAIR in pending:  # a pair is one piece (never split), kept when `match` keeps it
                    pending[TEXT_PAIR].extend([values[TEXT_PAIR]] * room)
                bar.update(room)
                if progress["rows"] + len(pending[TEXT]) >= limit:
                    break
                if len(pending[TEXT]) >= STREAM_SHARD_ROWS:
                    flush(done=False)
        flush(done=True)
    if not progress["shards"]:
        raise ValueError(f"{source.path}: no rows")
    return datasets.concatenate_datasets(
        [datasets.Dataset.from_file(str(folder / name)) for name in progress["shards"]]
    )


def key_digests(keys: Sequence[str]) -> np.ndarray:
    """Each de-duplication key as the cache knows a text (`logit_cache.text_keys`: 16 bytes of its SHA-256), one
    `KEY_DTYPE` item per key: a fixed-size stand-in that numpy can sort and compare (no Python set of strings)."""
    return text_keys(keys).view(KEY_DTYPE).ravel()


Unlabeled = TextSet | datasets.Dataset
_KEPT, _EMPTY, _HELD, _DUPLICATE = 0, 1, 2, 3
_RECORD = np.dtype([("key", KEY_DTYPE), ("row", "<i8"), ("held", "?")])  # held: by its `overlap_key`
_DROP = np.dtype([("row", "<i8"), ("flag", "u1")])
_PARTITION_ROWS = 1_000_000  # de-duplication keys sorted at once: 25 MB
WORK_MANIFEST = "work.json"


@dataclass(frozen=True)
class _Batch:
    """`batch_size` consecutive examples of one part of the corpus: part `part`, rows `[start, stop)` of it, rows
    `[row, row + stop - start)` of all the unlabeled parts; `index` numbers the batches of the whole corpus."""

    index: int
    part: int
    start: int
    stop: int
    row: int

    def read(self, parts: Sequence[Unlabeled]) -> TextSet:
        """The examples of the batch (read from disk for a dataset)."""
        part = parts[self.part]
        if isinstance(part, TextSet):
            return part.subset(range(self.start, self.stop))
        rows = part[self.start : self.stop]
        return TextSet(rows[TEXT], pairs=rows.get(TEXT_PAIR))


def _plan(parts: Sequence[Unlabeled], batch_size: int) -> list[_Batch]:
    batches, row = [], 0
    for p, part in enumerate(parts):
        for start in range(0, len(part), batch_size):
            stop = min(start + batch_size, len(part))
            batches.append(_Batch(len(batches), p, start, stop, row))
            row += stop - start
    return batches


def _has_pairs(part: Unlabeled) -> bool:
    return part.pairs is not None if isinstance(part, TextSet) else TEXT_PAIR in part.column_names


def _flag_unlabeled(
    unlabeled: Sequence[Unlabeled],
    key: Callable[[str], str],
    held_out: np.ndarray,
    held_out_texts: np.ndarray,
    seen: np.ndarray,
    work: Path,
    batch_size: int,
) -> np.ndarray:
    """What becomes of each unlabeled example (`_KEPT`, `_EMPTY`, `_HELD`, `_DUPLICATE`), in a memory-mapped
    array. An example is held out if its `key` is in `held_out`, its `overlap_key` in `held_out_texts` (digests,
    `key_digests`) or its `key` is a held-out example's (the same n-grams for the student). The keys of each batch
    are hashed into partition files on disk, then each partition is sorted on its own (equal keys share a
    partition), so memory holds one batch or one partition, not the corpus. Each batch and each partition leaves a
    file in `work` once done: an interrupted run resumes after the last one."""
    batches = _plan(unlabeled, batch_size)
    total = sum(len(part) for part in unlabeled)
    num_partitions = max(1, -(-total // _PARTITION_ROWS))
    todo = [batch for batch in batches if not (work / f"flags-{batch.index:06d}.npy").exists()]
    with tqdm(total=len(todo), desc="de-duplicating", unit="batches", disable=len(todo) < 10) as bar:
        for batch in todo:
            examples = batch.read(unlabeled)
            keys = examples.keys(key)
            empty = np.fromiter((not k for k in keys), dtype=bool, count=len(keys))
            records = np.empty(len(keys), dtype=_RECORD)
            records["key"], records["row"] = key_digests(keys), np.arange(batch.row, batch.row + len(keys))
            records["held"] = np.isin(key_digests(examples.keys(overlap_key)), held_out_texts)
            records = records[~empty]
            partition = records["key"]["hi"] % np.uint64(num_partitions)
            for p in range(num_partitions):
                with atomic_file(work / f"keys-{batch.index:06d}-{p:05d}.bin", "wb") as f:
                    records[partition == p].tofile(f)
            save_npy(work / f"flags-{batch.index:06d}.npy", np.where(empty, _EMPTY, _KEPT).astype(np.uint8))  # done
            bar.update(1)
    for p in range(num_partitions):
        if (work / f"drop-{p:05d}.npy").exists():
            continue
        records = np.concatenate(
            [np.fromfile(work / f"keys-{batch.index:06d}-{p:05d}.bin", dtype=_RECORD) for batch in batches]
            or [np.zeros(0, dtype=_RECORD)]
        )  # in row order
        held = np.isin(records["key"], np.concatenate([held_out, records["key"][records["held"]]]))
        first = np.zeros(len(records), dtype=bool)
        first[np.unique(records["key"], return_index=True)[1]] = True  # an earlier text has the same key otherwise
        duplicate = ~held & (~first | np.isin(records["key"], seen))
        drop = np.empty(int(held.sum() + duplicate.sum()), dtype=_DROP)
        drop["row"] = np.concatenate([records["row"][held], records["row"][duplicate]])
        drop["flag"] = np.repeat([_HELD, _DUPLICATE], [int(held.sum()), int(duplicate.sum())])
        save_npy(work / f"drop-{p:05d}.npy", drop)
        for batch in batches:
            (work / f"keys-{batch.index:06d}-{p:05d}.bin").unlink()
    flags = np.lib.format.open_memmap(work / "flags.npy", mode="w+", dtype=np.uint8, shape=(max(total, 1),))[:total]
    for batch in batches:
        flags[batch.row : batch.row + batch.stop - batch.start] = np.load(work / f"flags-{batch.index:06d}.npy")
    for p in range(num_partitions):
        drop = np.load(work / f"drop-{p:05d}.npy")
        flags[drop["row"]] = drop["flag"]
    return flags


def build_kd_corpus(
    train: TextSet,
    unlabeled: Sequence[Unlabeled],
    evaluation: Sequence[TextSet],
    key: Callable[[str], str],
    include_train: bool = True,
    excluded: set[str] = frozenset(),
    missing: int | float | list[float] = -1,
    folder: str | os.PathLike | None = None,
    identity: str | None = None,
    batch_size: int = 100_000,
    build: bool = True,
) -> KDCorpus:
    """Concatenate the train set and the unlabeled texts into Arrow files in `folder`, dropping unlabeled texts
    whose `key` (see `dedup_key`) equals an evaluation text's, a train text's or an earlier unlabeled text's, is in
    `excluded` (the selection split's keys), whose `overlap_key` equals an evaluation text's (the same text
    tokenized or accented another way) or whose key is empty (no word at all).

    Texts that match an evaluation text must go: otherwise the student trains on the teacher's answers to the
    texts its checkpoints are chosen or reported on. The counts removed are in `report`. Unlabeled texts get the
    label `missing` (-1; a row of -1 for multi-label data, NaN for regression). Keys are compared by their digests
    (`key_digests`), sorted in partitions on disk; the corpus is read and written `batch_size` examples at a time
    (one Arrow shard per batch), so memory does not grow with it, and an interrupted build resumes from the batches
    and partitions it finished.

    Args:
        train: The train split (labeled).
        unlabeled: Unlabeled parts: `TextSet`s or datasets with a `text` (and `text_pair`) column
            (`load_unlabeled`).
        evaluation: The splits never trained on (selection, dev, test).
        key: The de-duplication key (`dedup_key`).
        include_train: Whether the train set opens the corpus.
        excluded: Keys no unlabeled text may have (the selection split's).
        missing: The label of an unlabeled text.
        folder: Where the corpus is written (default: a temporary folder that lives as long as the corpus).
        identity: What the corpus is made from (see `prepare_data`): a folder holding a finished corpus of this
            identity is read back instead of built again, an unfinished one is resumed. Without it, the corpus is
            built from scratch.
        batch_size: Examples read and written at a time.
        build: False in the processes of a run other than the main one: they only read the corpus the main process
            built (with this identity) and never write to the folder.

    Raises:
        ValueError: When no text is left to label (every one held out, a duplicate or empty).
    """
    temporary = None
    if folder is None:
        temporary = tempfile.TemporaryDirectory(prefix="hfsd-corpus-")
        folder = temporary.name
    folder = Path(folder)
    manifest = read_json(folder / CORPUS_MANIFEST)
    if identity is not None and manifest is not None and manifest["identity"] == identity:
        logger.info("KD corpus: reusing %s", folder)
        return _open_corpus(folder, manifest, temporary)
    if not build:
        raise RuntimeError(
            f"{folder} holds no KD corpus of these inputs: the main process builds it first (did its inputs differ?)"
        )
    pairs = train.pairs is not None
    for part in unlabeled:
        if _has_pairs(part) != pairs:
            raise ValueError("unlabeled data must be sentence pairs exactly when the train split is (text_pair_column)")
    work = folder / "work"
    if identity is None:
        shutil.rmtree(work, ignore_errors=True)
    plan = {"identity": identity, "batch_size": batch_size, "train": len(train), "parts": [len(u) for u in unlabeled]}
    reset_folder(work, WORK_MANIFEST, plan)
    held_out = key_digests([k for split in evaluation for k in split.keys(key)] + sorted(excluded))
    held_out_texts = key_digests([k for split in evaluation for k in split.keys(overlap_key) if k])
    seen = key_digests(train.keys(key)) if include_train else key_digests([])
    flags = _flag_unlabeled(unlabeled, key, held_out, held_out_texts, seen, work, batch_size)
    report = DataReport(train=len(train) if include_train else 0)
    report.unlabeled_read = len(flags)
    report.unlabeled_removed_empty = int((flags == _EMPTY).sum())
    report.unlabeled_removed_eval_overlap = int((flags == _HELD).sum())
    report.unlabeled_removed_duplicate = int((flags == _DUPLICATE).sum())
    report.unlabeled_kept = int((flags == _KEPT).sum())
    report.kd_total = report.train + report.unlabeled_kept
    if report.kd_total == 0:
        raise ValueError(f"the KD corpus is empty: no train text and no unlabeled text is left to label ({report})")
    features = datasets.Features(
        {TEXT: datasets.Value("string"), **({TEXT_PAIR: datasets.Value("string")} if pairs else {})}
    )
    shards = work / "shards"
    shards.mkdir(exist_ok=True)
    for stale in shards.glob(".*.tmp"):  # a shard an interrupted run was writing
        stale.unlink()
    plans = {
        "train": ([train], _plan([train], batch_size) if include_train else []),
        "unlabeled": (unlabeled, _plan(unlabeled, batch_size)),
    }
    names, digests = [], []
    for name, (parts, batches) in plans.items():
        for batch in batches:
            shard, done = shards / f"{name}-{batch.index:06d}.arrow", shards / f"{name}-{batch.index:06d}.json"
            if not done.exists():
                examples = batch.read(parts)
                if name == "unlabeled":
                    examples = examples.subset(np.flatnonzero(flags[batch.row : batch.row + len(examples)] == _KEPT))
                _write_shard(examples, features, shard, done)
            names.append(shard.name)
            digests.append(read_json(done))
    del flags
    labels = _labels_file(train if include_train else None, report, missing, work / CORPUS_LABELS, batch_size)
    fingerprint = hashlib.sha256(json.dumps([digests, labels]).encode()).hexdigest()
    for name in (CORPUS_MANIFEST, CORPUS_LABELS, "shards"):
        target = folder / name
        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    os.replace(work / CORPUS_LABELS, folder / CORPUS_LABELS)
    os.replace(shards, folder / "shards")
    shutil.rmtree(work)
    manifest = {
        "identity": identity, "num_train": report.train, "report": asdict(report), "fingerprint": fingerprint,
        "shards": names, "features": features.to_dict(),
    }  # fmt: skip
    with atomic_file(folder / CORPUS_MANIFEST) as f:
        f.write(json.dumps(manifest, indent=2))  # written last: the corpus is complete
    logger.info("KD corpus: %s", report)
    return _open_corpus(folder, manifest, temporary)


def _write_shard(examples: TextSet, features: datasets.Features, path: Path, done: Path) -> None:
    """Write one batch of the corpus as an Arrow file, then its marker `done` (its size and SHA-256s)."""
    if len(examples):
        tmp = temporary_path(path)
        writer = ArrowWriter(path=str(tmp), features=features)
        writer.write_batch({TEXT: examples.texts, **({TEXT_PAIR: examples.pairs} if TEXT_PAIR in features else {})})
        writer.finalize()
        os.replace(tmp, path)
    digest = {"rows": len(examples), "texts": corpus_fingerprint(examples.texts)}
    if examples.pairs is not None:
        digest["pairs"] = corpus_fingerprint(examples.pairs)
    with atomic_file(done) as f:
        f.write(json.dumps(digest))


def _labels_file(
    train: TextSet | None, report: DataReport, missing: int | float | list[float], path: Path, batch_size: int
) -> str:
    """Write the corpus's labels (gold for the train part, `missing` after) as a `.npy` file; their SHA-256."""
    gold = np.asarray(train.labels) if train is not None and train.labels is not None else None
    missing_row = np.asarray(missing)
    dtype = np.result_type(missing_row, gold) if gold is not None and len(gold) else missing_row.dtype
    shape = (max(report.kd_total, 1), *missing_row.shape)
    labels = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)[: report.kd_total]
    labels[report.train :] = missing_row
    if gold is not None:
        labels[: report.train] = gold
    digest = hashlib.sha256(str(dtype).encode())
    for start in range(0, len(labels), batch_size):
        digest.update(np.ascontiguousarray(labels[start : start + batch_size]).tobytes())
    labels.flush()
    return digest.hexdigest()


def _open_corpus(folder: Path, manifest: dict, temporary: tempfile.TemporaryDirectory | None) -> KDCorpus:
    report = DataReport(**manifest["report"])
    labels = np.load(folder / CORPUS_LABELS, mmap_mode="r")[: report.kd_total]
    files = [folder / "shards" / name for name in manifest["shards"] if (folder / "shards" / name).exists()]
    features = datasets.Features.from_dict(manifest["features"])
    dataset = (
        datasets.concatenate_datasets([datasets.Dataset.from_file(str(f)) for f in files])
        if files else datasets.Dataset.from_dict({name: [] for name in features}, features=features)
    )  # fmt: skip
    if len(dataset) != report.kd_total:
        raise RuntimeError(f"the KD corpus in {folder} holds {len(dataset)} texts, its manifest {report.kd_total}")
    return KDCorpus(dataset, labels, manifest["num_train"], report, manifest["fingerprint"], temporary)


def _set_digest(split: TextSet) -> str:
    return _inputs_digest([corpus_fingerprint(split.texts), corpus_fingerprint(split.pairs or []), split.labels])


def _inputs_digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, default=str).encode()).hexdigest()


def missing_label(problem_type: str | None, num_labels: int) -> int | float | list[float]:
    """The label of a text without one: -1 (single-label), a row of -1 (multi-label) or NaN (regression)."""
    if problem_type == "regression":
        return float("nan")
    return [-1.0] * num_labels if problem_type == "multi_label_classification" else -1


def check_labels(split: TextSet, name: str, num_labels: int, problem_type: str | None = None) -> None:
    """Raise `ValueError` unless `split` has labels and every label is a class id in `[0, num_labels)` (multi-label:
    a multi-hot row of `num_labels`; regression: a finite number)."""
    if split.labels is None:
        raise ValueError(f"the {name} split has no label column")
    if problem_type == "regression":
        if not np.isfinite(np.asarray(split.labels, dtype=np.float64)).all():
            raise ValueError(f"the {name} split has a regression target that is not a finite number")
        return
    if problem_type == "multi_label_classification":
        return  # made multi-hot by `load_source`, which checked every class id
    bad = next((label for label in split.labels if not 0 <= label < num_labels), None)
    if bad is not None:
        raise ValueError(f"the {name} split has label {bad}; class ids must be in [0, {num_labels}) for this teacher")


def word_runs(keys: Iterable[str], max_words: int) -> set[str]:
    """Every run of 1 to `max_words` consecutive words of each key (words separated by single spaces)."""
    runs = set()
    for key in keys:
        words = key.split(" ")
        for start in range(len(words)):
            for end in range(start + 1, min(len(words), start + max_words) + 1):
                runs.add(" ".join(words[start:end]))
    return runs


@dataclass
class Selection:
    """The selection split and what it takes out of the training data.

    Args:
        texts: The selection split (labeled).
        excluded_keys: Keys (see `dedup_key`) of the texts no training or unlabeled text may have: the selection
            texts and, with `select_drop_subtexts`, the runs of words found only inside them.
        train: The train split without the selection texts, their copies and the excluded texts.
        removed_from_train: How many train texts were removed.
    """

    texts: TextSet
    excluded_keys: set[str]
    train: TextSet
    removed_from_train: int


def select_split(
    config: DataConfig,
    train: TextSet,
    key: Callable[[str], str],
    label2id: dict[str, int],
    problem_type: str | None = None,
) -> Selection:
    """Draw the selection split (see `DataConfig`) and remove it from the train split: its texts, their copies
    tokenized another way (`overlap_key`) and, with `select_drop_subtexts`, the word runs found only inside them."""
    pool = load_source(config.select, label2id, problem_type) if config.select is not None else train
    check_labels(pool, "selection", len(label2id), problem_type)
    size = config.select_size if config.select_size is not None else min(DEFAULT_SELECT_SIZE, len(pool) // 10)
    largest = len(pool) if config.select is not None else len(pool) - 1  # drawn from train: leave some to train on
    if not 0 < size <= largest:
        raise ValueError(f"data.select_size must be between 1 and {largest} (texts to draw from), got {size}")
    if (pool.pairs is None) != (train.pairs is None):
        raise ValueError("the selection split must be sentence pairs exactly when the train split is")
    order = np.random.default_rng(config.select_seed).permutation(len(pool))
    chosen, rest = sorted(order[:size]), order[size:]
    selection = pool.subset(chosen)
    excluded = set(selection.keys(key))
    copies = set(selection.keys(overlap_key)) - {""}  # the selection texts tokenized another way
    if config.select_drop_subtexts:
        if train.pairs is not None:
            raise ValueError("data.select_drop_subtexts applies to single texts, not to sentence pairs")
        # a run of words found in the selection but in no other text of its source would tell the student about
        # the selection texts only; runs shared with other texts are ordinary training data (as for dev texts)
        longest = max((len(key(t).split()) for t in train.texts), default=0)
        excluded |= word_runs(excluded, longest) - word_runs((key(pool.texts[i]) for i in rest), longest)
    kept = [
        i
        for i, (example_key, letters) in enumerate(zip(train.keys(key), train.keys(overlap_key)))
        if example_key not in excluded and letters not in copies
    ]
    return Selection(selection, excluded, train.subset(kept), len(train) - len(kept))


@dataclass
class PreparedData:
    """The KD corpus (train first, then unlabeled) and the labeled splits."""

    corpus: KDCorpus
    train: TextSet
    select: TextSet
    dev: TextSet
    test: TextSet | None

    @property
    def evaluation(self) -> dict[str, TextSet]:
        """The labeled splits that are not trained on: select, dev and (if given) test."""
        return {"select": self.select, "dev": self.dev, **({"test": self.test} if self.test is not None else {})}


def prepare_data(
    config: DataConfig,
    vocab: VocabConfig,
    augment: AugmentConfig,
    label2id: dict[str, int],
    problem_type: str | None = None,
    folder: str | os.PathLike | None = None,
    build_corpus: bool = True,
) -> PreparedData:
    """Read every split a recipe names, draw the selection split and assemble the KD corpus (in `folder`, reused
    when it holds the corpus of the same inputs; default: a temporary folder).

    Args:
        config: The recipe's data section (train, dev, optional test, selection, unlabeled sources).
        vocab: The recipe's vocabulary section; its word analysis is the de-duplication key.
        augment: Teacher-labelled augmentation of the train texts (added to the unlabeled texts when enabled).
        label2id: The teacher's labels: label names in the data are mapped with it, ids must be below its size.
        problem_type: The teacher's: single-label (default), multi-label (labels are lists) or regression.
        folder: Where the KD corpus is kept (see `build_kd_corpus`). It is known by the labeled splits, the
            selection, the word analysis, `OVERLAP_KEY_VERSION` and the `datasets` fingerprints of the unlabeled
            sources (which follow their files; a streamed Hub source is known by its settings, `revision` included:
            name a revision to follow updates); a corpus made from other inputs is built again.
        build_corpus: False in the processes of a run other than the main one (see `build_kd_corpus`).
    """
    train, dev = load_source(config.train, label2id, problem_type), load_source(config.dev, label2id, problem_type)
    test = load_source(config.test, label2id, problem_type) if config.test is not None else None
    unlabeled: list[Unlabeled] = [load_unlabeled(source) for source in config.unlabeled]
    for name, split in {"train": train, "dev": dev, "test": test}.items():
        if split is not None:
            check_labels(split, name, len(label2id), problem_type)
    sources = [config.train, config.dev, *([config.test] if config.test else []), *config.unlabeled]
    sources += [config.select] if config.select is not None else []
    if len({source.text_pair_column is None for source in sources}) > 1:
        raise ValueError("a sentence-pair recipe needs text_pair_column on every data source (train, dev, ...)")
    key = dedup_key(vocab)
    shared = len((set(train.keys(overlap_key)) & set(dev.keys(overlap_key))) - {""})  # as held-out texts are compared
    if shared:
        logger.warning(
            "%d of the %d dev texts are also train texts: dev accuracy overstates unseen text", shared, len(dev)
        )
    selection = select_split(config, train, key, label2id, problem_type)
    augmented = None
    words = [text for source in augment.words_from for text in load_unlabeled(source)[TEXT]] if augment.enabled else []
    if augment.enabled and train.pairs is not None:
        firsts, seconds = augment_pairs(selection.train.texts, selection.train.pairs, augment, words)
        augmented = TextSet(firsts, pairs=seconds)
    elif augment.enabled:
        augmented = TextSet(augment_texts(selection.train.texts, augment, words))
    del words  # the word corpus is only needed by the augmentation
    evaluation = [selection.texts, dev] + ([test] if test is not None else [])
    parts = unlabeled + ([augmented] if augmented else [])
    missing = missing_label(problem_type, len(label2id))
    identity = _inputs_digest(
        [
            [_set_digest(split) for split in [selection.train, *evaluation]],
            sorted(selection.excluded_keys),
            [part._fingerprint if isinstance(part, datasets.Dataset) else _set_digest(part) for part in parts],
            [vocab.lowercase, vocab.token_pattern, config.include_train_in_kd, str(missing), OVERLAP_KEY_VERSION],
        ]
    )
    corpus = build_kd_corpus(
        selection.train, parts, evaluation, key, config.include_train_in_kd, excluded=selection.excluded_keys,
        missing=missing, folder=folder, identity=identity, build=build_corpus,
    )  # fmt: skip
    corpus.report.selection = len(selection.texts)
    corpus.report.train_removed_for_selection = selection.removed_from_train
    if augmented is not None:
        corpus.report.augmented_generated = len(augmented)
    return PreparedData(corpus, selection.train, selection.texts, dev, test)
