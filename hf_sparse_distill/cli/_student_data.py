"""What `evaluate`, `calibrate` and `compress` share: a student with a labeled split, the student's logits, the
teacher's. Sentence-pair students read the second text of each example from the split's `text_pair_column`."""

from __future__ import annotations

import numpy as np
import torch

from ..models.sparse_dan import SparseDANClassificationPipeline


def labeled_texts(
    student: str, data, text_column: str = "text", label_column: str = "label", text_pair_column=None, **source
):
    """The examples of `data` (a file, a Hub dataset id with `split` / `name` in `source`, or a recipe's
    `DatasetSource`) as a `TextSet` (`pairs` holds the second texts of a pair student's examples), their gold
    labels, the student and its tokenizer."""
    from ..distillation.data import check_labels, load_source
    from ..distillation.recipe import DatasetSource
    from ..models.sparse_dan import SparseDANForSequenceClassification, SparseDANTokenizer

    model = SparseDANForSequenceClassification.from_pretrained(student).eval()
    tokenizer = SparseDANTokenizer.from_pretrained(student)
    if isinstance(data, DatasetSource):
        spec = data
    else:
        spec = DatasetSource(
            path=data, text_column=text_column, label_column=label_column, text_pair_column=text_pair_column, **source
        )
    if model.config.pair_mode != (spec.text_pair_column is not None):
        raise ValueError(
            f"{student} is a sentence-pair student: name the column of the second texts (--text-pair-column)"
            if model.config.pair_mode
            else f"{student} classifies single texts, but {spec.path} was read as sentence pairs"
        )
    examples = load_source(spec, model.config.label2id, model.config.problem_type)
    check_labels(examples, spec.path, model.config.num_labels, model.config.problem_type)
    return examples, np.asarray(examples.labels), model, tokenizer


def student_logits(model, tokenizer, examples, raw: bool = False, batch_size: int = 1024):
    """The student's logits of `examples` (a `TextSet`; `raw`: before its calibration temperature) and each
    example's count of known n-gram occurrences (both texts of a pair)."""
    texts, pairs = examples.texts, examples.pairs
    temperature = model.config.logit_temperature
    if raw:
        model.config.logit_temperature = 1.0
    out, known = [], []
    try:
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                second = None if pairs is None else pairs[start : start + batch_size]
                encoded = tokenizer.encode_bags(texts[start : start + batch_size], text_pair=second)
                out.append(model(**encoded).logits.float().numpy())
                offsets = encoded["offsets"]
                lengths = torch.diff(offsets, append=offsets.new_tensor([encoded["input_ids"].numel()])).numpy()
                known.append(lengths if second is None else lengths[0::2] + lengths[1::2])
    finally:
        model.config.logit_temperature = temperature
    return np.concatenate(out), np.concatenate(known)


def teacher_logits(teacher: str, model, tokenizer, examples) -> np.ndarray:
    """The teacher's logits of `examples` (a `TextSet`; pairs in the teacher's own pair encoding), in the student's
    label order."""
    pipe = SparseDANClassificationPipeline(model=model, tokenizer=tokenizer, teacher=teacher)
    return pipe.teacher_logits(examples.texts, examples.pairs)


def pipeline_inputs(examples) -> list:
    """`examples` (a `TextSet`) as a pipeline takes them: texts, or `{"text": ..., "text_pair": ...}` per pair."""
    if examples.pairs is None:
        return list(examples.texts)
    return [{"text": a, "text_pair": b} for a, b in zip(examples.texts, examples.pairs, strict=True)]
