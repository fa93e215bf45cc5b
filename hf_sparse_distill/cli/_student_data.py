"""What `evaluate` and `calibrate` share: a student with a labeled file, the student's logits, the teacher's."""

from __future__ import annotations

import numpy as np
import torch

from ..models.sparse_dan import SparseDANClassificationPipeline


def labeled_texts(student: str, data, text_column: str = "text", label_column: str = "label", **source):
    """The texts and gold labels of `data` (a file, a Hub dataset id with `split` / `name` in `source`, or a
    recipe's `DatasetSource`), with the student and its tokenizer."""
    from ..distillation.data import check_labels, load_source
    from ..distillation.recipe import DatasetSource
    from ..models.sparse_dan import SparseDANForSequenceClassification, SparseDANTokenizer

    model = SparseDANForSequenceClassification.from_pretrained(student).eval()
    if model.config.pair_mode:
        raise ValueError(f"{student} is a sentence-pair student: evaluate and calibrate take single-text students")
    tokenizer = SparseDANTokenizer.from_pretrained(student)
    if isinstance(data, DatasetSource):
        spec = data
    else:
        spec = DatasetSource(path=data, text_column=text_column, label_column=label_column, **source)
    texts = load_source(spec, model.config.label2id, model.config.problem_type)
    check_labels(texts, spec.path, model.config.num_labels, model.config.problem_type)
    return texts.texts, np.asarray(texts.labels), model, tokenizer


def student_logits(model, tokenizer, texts: list[str], raw: bool = False, batch_size: int = 1024):
    """The student's logits of `texts` (`raw`: before its calibration temperature) and each text's count of known
    n-gram occurrences."""
    temperature = model.config.logit_temperature
    if raw:
        model.config.logit_temperature = 1.0
    out, known = [], []
    try:
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                encoded = tokenizer.encode_bags(texts[start : start + batch_size])
                out.append(model(**encoded).logits.float().numpy())
                offsets = encoded["offsets"]
                known.append(torch.diff(offsets, append=offsets.new_tensor([encoded["input_ids"].numel()])).numpy())
    finally:
        model.config.logit_temperature = temperature
    return np.concatenate(out), np.concatenate(known)


def teacher_logits(teacher: str, model, tokenizer, texts: list[str]) -> np.ndarray:
    """The teacher's logits of `texts`, in the student's label order."""
    return SparseDANClassificationPipeline(model=model, tokenizer=tokenizer, teacher=teacher).teacher_logits(texts)
