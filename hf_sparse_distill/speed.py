"""Throughput measurement (texts per second, tokenization included) and a description of the machine, shared by
the distillation run (numbers for the model card) and the benchmark scripts."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence

import torch

from .models.sparse_dan import SparseDANForSequenceClassification, SparseDANTokenizer
from .results import SpeedResult


def machine_description() -> str:
    """CPU model, core count and torch threads (plus the GPU, if one is used), for stating where a number came from."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    text = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads"
    if torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


def throughput(
    predict: Callable[[list[str]], object],
    texts: Sequence[str],
    batch_size: int,
    min_seconds: float = 2.0,
    warmup_batches: int = 2,
) -> float:
    """Texts per second of `predict` called on consecutive batches of `texts` (cycled until `min_seconds`)."""
    batches = [list(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
    return batches_per_second(predict, batches, [len(b) for b in batches], min_seconds, warmup_batches)


def batches_per_second(
    call: Callable[[object], object],
    batches: Sequence[object],
    sizes: Sequence[int],
    min_seconds: float = 2.0,
    warmup_batches: int = 2,
) -> float:
    """Items per second of `call` over prepared `batches` (of `sizes` items each), cycled until `min_seconds`
    have passed (checked after every batch, so a slow model is not held to a full cycle)."""
    for batch in batches[:warmup_batches]:
        call(batch)
    done, start = 0, time.perf_counter()
    while True:
        for batch, size in zip(batches, sizes):
            call(batch)
            done += size
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                return done / elapsed


STUDENT_BATCH_SIZE = 256


def compare_speed(
    student_dir: str | os.PathLike,
    teacher_predict: Callable[..., object],
    texts: Sequence[str] | Sequence[tuple[str, str]],
    teacher_batch_size: int,
    teacher_dtype: str,
    texts_label: str,
    min_seconds: float = 5.0,
) -> SpeedResult:
    """Throughput of a saved student (batched API, batch 256) and of its teacher on the same `texts` (strings, or
    `(text, text_pair)` tuples for sentence pairs: the teacher is then called as `teacher_predict(texts, pairs)`),
    one after the other in this process, tokenization included."""
    model = SparseDANForSequenceClassification.from_pretrained(student_dir).eval()
    tokenizer = SparseDANTokenizer.from_pretrained(student_dir)

    def split(batch: list) -> tuple[list[str], list[str] | None]:
        if batch and isinstance(batch[0], tuple):
            return [first for first, _ in batch], [second for _, second in batch]
        return batch, None

    def student(batch: list) -> None:
        texts, pairs = split(batch)
        with torch.inference_mode():
            model(**tokenizer.encode_bags(texts, text_pair=pairs))

    def teacher(batch: list) -> object:
        texts, pairs = split(batch)
        return teacher_predict(texts) if pairs is None else teacher_predict(texts, pairs)

    return SpeedResult(
        machine=machine_description(),
        texts=texts_label,
        student_texts_per_s=round(throughput(student, texts, STUDENT_BATCH_SIZE, min_seconds), 1),
        student_batch_size=STUDENT_BATCH_SIZE,
        teacher_texts_per_s=round(throughput(teacher, texts, teacher_batch_size, min_seconds), 1),
        teacher_batch_size=teacher_batch_size,
        teacher_dtype=teacher_dtype,
    )
