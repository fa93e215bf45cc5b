"""A `text-classification` pipeline that feeds the student whole batches.

The stock pipeline tokenizes, collates and post-processes one text at a time; for a model that needs a few
microseconds per text, that overhead dominates. This subclass keeps the same inputs, options and outputs but
encodes each batch with one vectorised `encode_bags` call and one forward pass.

    pipeline("text-classification", model="org/name", pipeline_class=SparseDANClassificationPipeline)
"""

from __future__ import annotations

import torch
from transformers import TextClassificationPipeline
from transformers.pipelines.text_classification import ClassificationFunction, sigmoid, softmax

DEFAULT_BATCH_SIZE = 256


class SparseDANClassificationPipeline(TextClassificationPipeline):
    """`TextClassificationPipeline` for sparse DAN students: a list of texts is processed `batch_size` texts at
    a time (default 256) through `tokenizer.encode_bags` and one forward pass. Single texts, text pairs and
    tokenizer options other than `truncation` / `max_length` go through the stock code path."""

    def __call__(self, inputs, **kwargs):
        """Classify `inputs` as the stock pipeline does; a list of texts goes through the batched path."""
        batch_size = kwargs.pop("batch_size", None)
        batch_size = batch_size if batch_size is not None else self._batch_size or DEFAULT_BATCH_SIZE
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
        is_text_list = isinstance(inputs, (list, tuple)) and inputs and all(isinstance(t, str) for t in inputs)
        preprocess_params, _, postprocess_params = self._sanitize_parameters(
            **{k: v for k, v in kwargs.items() if k != "num_workers"}
        )
        truncation = preprocess_params.pop("truncation", None)
        max_length = preprocess_params.pop("max_length", None)
        if not is_text_list or preprocess_params or truncation not in (None, True, False):
            return super().__call__(inputs, batch_size=batch_size, **kwargs)
        # the tokenizer's rule: truncate when asked, or when a max_length is given and truncation is not set
        truncate = truncation is True or (truncation is None and max_length is not None)
        results = []
        for start in range(0, len(inputs), batch_size):
            batch = self.tokenizer.encode_bags(
                list(inputs[start : start + batch_size]), truncation=truncate, max_length=max_length
            )
            with torch.inference_mode():
                logits = self.model(**batch.to(self.device)).logits.cpu()
            results.extend(self._postprocess_batch(logits, **postprocess_params))
        return results

    def _postprocess_batch(self, logits: torch.Tensor, function_to_apply=None, top_k=1, _legacy=True) -> list:
        """The stock `postprocess` of every row; its default output (`{"label", "score"}` of the best label) is
        computed for the whole batch at once with the same functions."""
        if not (top_k == 1 and _legacy):
            return [self.postprocess({"logits": row[None]}, function_to_apply, top_k, _legacy) for row in logits]
        config = self.model.config
        if function_to_apply is None:  # the stock default
            if config.problem_type == "regression":
                function_to_apply = ClassificationFunction.NONE
            elif config.problem_type == "multi_label_classification" or config.num_labels == 1:
                function_to_apply = ClassificationFunction.SIGMOID
            else:
                function_to_apply = ClassificationFunction.SOFTMAX
        scores = logits.float().numpy()
        if function_to_apply == ClassificationFunction.SIGMOID:
            scores = sigmoid(scores)
        elif function_to_apply == ClassificationFunction.SOFTMAX:
            scores = softmax(scores)
        elif function_to_apply != ClassificationFunction.NONE:
            raise ValueError(f"Unrecognized `function_to_apply` argument: {function_to_apply}")
        labels = [config.id2label[i] for i in scores.argmax(axis=-1).tolist()]
        return [{"label": label, "score": score} for label, score in zip(labels, scores.max(axis=-1).tolist())]
