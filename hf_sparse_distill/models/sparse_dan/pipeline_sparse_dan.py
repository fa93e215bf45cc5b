"""A `text-classification` pipeline that feeds the student whole batches, explains its answers and can hand the
hard texts to the teacher.

The stock pipeline tokenizes, collates and post-processes one text at a time; for a model that needs a few
microseconds per text, that overhead dominates. This subclass keeps the same inputs, options and outputs but
encodes each batch with one vectorised `encode_bags` call and one forward pass. Options of its own:

- `explain=True`: each output gets `explanation`, the n-grams that pushed the student's prediction most, each with
  the drop of the predicted label's probability when all its occurrences are removed from the text (occlusion:
  exact, one extra forward pass per distinct n-gram, all batched);
- `coverage=True`: each output gets `words`, `known_words` (words that are themselves in the vocabulary),
  `known_ngrams` (occurrences of vocabulary n-grams) and `no_evidence` (no known n-gram: the answer is the model's
  bias only);
- a teacher (`pipeline(..., teacher="org/teacher")`): a cascade; texts (or sentence pairs) whose top score is under
  `config.cascade_threshold` (or `threshold=`), or with fewer than `config.cascade_min_ngrams` known n-grams, are
  answered by the teacher, in batches; each output says which `model` answered.

    pipeline("text-classification", model="org/name", pipeline_class=SparseDANClassificationPipeline)
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, TextClassificationPipeline
from transformers.pipelines.text_classification import ClassificationFunction, sigmoid, softmax

DEFAULT_BATCH_SIZE = 256
TEACHER_BATCH_SIZE = 32
EXPLAIN_TOP_K = 5


class SparseDANClassificationPipeline(TextClassificationPipeline):
    """`TextClassificationPipeline` for sparse DAN students: a list of texts is processed `batch_size` texts at
    a time (default 256) through `tokenizer.encode_bags` and one forward pass; so does a list of sentence pairs
    (`{"text": ..., "text_pair": ...}` each). Single inputs and tokenizer options other than `truncation` /
    `max_length` go through the stock code path."""

    def __init__(self, *args, teacher=None, teacher_max_length: int = 512, **kwargs):
        super().__init__(*args, **kwargs)
        self.teacher_model, self.teacher_tokenizer = None, None
        if teacher is not None:
            if isinstance(teacher, str):
                teacher = (
                    AutoModelForSequenceClassification.from_pretrained(teacher).to(self.device),
                    AutoTokenizer.from_pretrained(teacher),
                )
            elif isinstance(teacher, TextClassificationPipeline):
                teacher = (teacher.model, teacher.tokenizer)
            self.teacher_model, self.teacher_tokenizer = teacher
            self.teacher_model.eval()
            names = {name: int(i) for i, name in self.teacher_model.config.id2label.items()}
            missing = [name for name in self.model.config.id2label.values() if name not in names]
            if missing:
                raise ValueError(f"the teacher has no label {missing[0]!r}; its labels are {sorted(names)}")
            # teacher logit columns in the student's label order
            self.teacher_columns = [names[self.model.config.id2label[i]] for i in range(self.model.config.num_labels)]
        self.teacher_max_length = teacher_max_length

    def __call__(self, inputs, **kwargs):
        """Classify `inputs` as the stock pipeline does; a list of texts goes through the batched path, and so
        does any call with `explain`, `coverage` or a teacher."""
        extras = {key: kwargs.pop(key) for key in ("explain", "coverage", "threshold", "cascade") if key in kwargs}
        cascade = extras.get("cascade", self.teacher_model is not None)
        if cascade and self.teacher_model is None:
            raise ValueError("cascade=True needs a teacher: pipeline(..., teacher='org/teacher')")
        if extras.get("explain") or extras.get("coverage") or cascade:
            outputs = self._classify(
                [inputs] if isinstance(inputs, (str, dict)) else list(inputs), kwargs, bool(extras.get("explain")),
                bool(extras.get("coverage")), extras.get("threshold") if cascade else False,
            )  # fmt: skip
            return outputs  # a list for a single text too, as the stock pipeline
        batch_size = kwargs.pop("batch_size", None)
        batch_size = batch_size if batch_size is not None else self._batch_size or DEFAULT_BATCH_SIZE
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
        is_text_list = isinstance(inputs, (list, tuple)) and inputs and all(isinstance(t, str) for t in inputs)
        is_pair_list = (
            isinstance(inputs, (list, tuple))
            and inputs
            and all(isinstance(t, dict) and set(t) == {"text", "text_pair"} for t in inputs)
        )
        preprocess_params, _, postprocess_params = self._sanitize_parameters(
            **{k: v for k, v in kwargs.items() if k != "num_workers"}
        )
        # options given to `pipeline(...)` apply unless the call overrides them, as in the stock pipeline
        preprocess_params = {**self._preprocess_params, **preprocess_params}
        postprocess_params = {**self._postprocess_params, **postprocess_params}
        truncation = preprocess_params.pop("truncation", None)
        max_length = preprocess_params.pop("max_length", None)
        if not (is_text_list or is_pair_list) or preprocess_params or truncation not in (None, True, False):
            return super().__call__(inputs, batch_size=batch_size, **kwargs)
        self._check_input_kind(is_pair_list)
        # the tokenizer's rule: truncate when asked, or when a max_length is given and truncation is not set
        truncate = truncation is True or (truncation is None and max_length is not None)
        results = []
        for start in range(0, len(inputs), batch_size):
            part = list(inputs[start : start + batch_size])
            texts, pairs = ([p["text"] for p in part], [p["text_pair"] for p in part]) if is_pair_list else (part, None)
            batch = self.tokenizer.encode_bags(texts, text_pair=pairs, truncation=truncate, max_length=max_length)
            with torch.inference_mode():
                logits = self.model(**batch.to(self.device)).logits.cpu()
            results.extend(self._postprocess_batch(logits, **postprocess_params))
        return results

    def _check_input_kind(self, pairs: bool) -> None:
        """Refuse sentence pairs for a single-text student and single texts for a pair student (whose model would
        otherwise read two consecutive texts as one pair)."""
        if pairs and not self.model.config.pair_mode:
            raise ValueError("this student classifies single texts, not sentence pairs ({'text', 'text_pair'})")
        if not pairs and self.model.config.pair_mode:
            raise ValueError("this student classifies sentence pairs: pass {'text': ..., 'text_pair': ...} per example")

    def _classify(self, inputs: list, kwargs: dict, explain: bool, coverage: bool, threshold) -> list[dict]:
        """The batched path with the pipeline's own options (default output format only). `inputs` are texts, or
        sentence pairs (`{"text": ..., "text_pair": ...}`: cascade only). `threshold` is False without a cascade,
        None for the configured one."""
        texts, pairs = inputs, None
        if inputs and all(isinstance(t, dict) and set(t) == {"text", "text_pair"} for t in inputs):
            if explain or coverage:
                raise TypeError("explain and coverage take single texts, not sentence pairs")
            texts, pairs = [p["text"] for p in inputs], [p["text_pair"] for p in inputs]
        elif any(not isinstance(t, str) for t in inputs):
            raise TypeError(
                "explain, coverage and cascade take texts (a string or a list of strings); the cascade also takes "
                "sentence pairs ({'text': ..., 'text_pair': ...})"
            )
        self._check_input_kind(pairs is not None)
        batch_size = kwargs.pop("batch_size", None) or self._batch_size or DEFAULT_BATCH_SIZE
        kwargs.pop("num_workers", None)
        kwargs = {**self._preprocess_params, **self._postprocess_params, **kwargs}
        unsupported = sorted(k for k in kwargs if k not in ("truncation", "max_length", "function_to_apply"))
        if unsupported:
            raise ValueError(f"explain, coverage and cascade give the default output; {unsupported} are not supported")
        postprocess = self._sanitize_parameters(function_to_apply=kwargs.get("function_to_apply"))[2]
        truncate = kwargs.get("truncation") is True or (kwargs.get("truncation") is None and "max_length" in kwargs)
        results = []
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            batch_pairs = None if pairs is None else pairs[start : start + batch_size]
            encoded = self.tokenizer.encode_bags(
                batch, text_pair=batch_pairs, truncation=truncate, max_length=kwargs.get("max_length")
            )
            with torch.inference_mode():
                logits = self.model(**encoded.to(self.device)).logits.cpu()
            ids, offsets = encoded["input_ids"].cpu(), encoded["offsets"].cpu()
            lengths = torch.diff(offsets, append=offsets.new_tensor([ids.numel()]))
            if batch_pairs is not None:  # known n-grams of both texts of each pair
                lengths = lengths[0::2] + lengths[1::2]
            if explain:  # the student's own decision, also where the teacher answers
                explanations = self._explain(ids, offsets, lengths, logits.argmax(-1))
            answered_by = ["student"] * len(batch)
            if threshold is not False:
                logits, answered_by = self._cascade(batch, logits, lengths, threshold, batch_pairs)
            outputs = self._postprocess_batch(logits, function_to_apply=postprocess.get("function_to_apply"))
            for i, output in enumerate(outputs):
                if threshold is not False:
                    output["model"] = answered_by[i]
                if coverage:
                    output.update(self._coverage(batch[i], int(lengths[i])))
                if explain:
                    output["explanation"] = explanations[i]
            results.extend(outputs)
        return results

    def _coverage(self, text: str, known_ngrams: int) -> dict:
        words = self.tokenizer.matcher.words(text)
        known_words = sum(1 for w in words if w in self.tokenizer.vocab)  # the word is an n-gram of the vocabulary
        return {
            "words": len(words),
            "known_words": known_words,
            "known_ngrams": known_ngrams,
            "no_evidence": known_ngrams == 0,
        }

    def _cascade(
        self, texts: list[str], logits: torch.Tensor, lengths: torch.Tensor, threshold, pairs: list[str] | None = None
    ) -> tuple:
        """Replace the logits of the texts (or pairs) the student is not sure of by the teacher's."""
        config = self.model.config
        threshold = config.cascade_threshold if threshold is None else threshold
        if threshold is None:
            raise ValueError("no cascade threshold: run hf-sparse-distill calibrate, or pass threshold=")
        # float64, as `calibrate` computed the thresholds: a float32 comparison would merge close thresholds
        confidence = torch.softmax(logits.double(), dim=-1).max(dim=-1).values
        hard = ((confidence < threshold) | (lengths < config.cascade_min_ngrams)).nonzero().flatten().tolist()
        answered_by = ["student"] * len(texts)
        if hard:
            logits = logits.clone().float()
            hard_pairs = None if pairs is None else [pairs[i] for i in hard]
            logits[hard] = torch.as_tensor(self.teacher_logits([texts[i] for i in hard], hard_pairs))
            for i in hard:
                answered_by[i] = "teacher"
        return logits, answered_by

    def teacher_logits(self, texts: list[str], pairs: list[str] | None = None) -> np.ndarray:
        """The teacher's logits of `texts` (with `pairs`: of the sentence pairs, in the teacher's own pair
        encoding), in the student's label order (length-sorted batches)."""
        tokenizer = self.teacher_tokenizer
        max_length = min(self.teacher_max_length, tokenizer.model_max_length)
        sizes = (
            [len(t) for t in texts] if pairs is None else [len(t) + len(p) for t, p in zip(texts, pairs, strict=True)]
        )
        order = np.argsort(sizes, kind="stable")
        out = np.zeros((len(texts), self.model.config.num_labels), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), TEACHER_BATCH_SIZE):
                rows = order[start : start + TEACHER_BATCH_SIZE]
                second = None if pairs is None else [pairs[i] for i in rows]
                batch = tokenizer([texts[i] for i in rows], second, padding=True, truncation=True,
                                  max_length=max_length, return_tensors="pt").to(self.teacher_model.device)  # fmt: skip
                out[rows] = self.teacher_model(**batch).logits.float().cpu().numpy()[:, self.teacher_columns]
        return out

    def _explain(self, ids: torch.Tensor, offsets: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor) -> list:
        """Occlusion: for each text and each distinct n-gram in it, the drop of the predicted label's probability
        when every occurrence of that n-gram is removed; the `EXPLAIN_TOP_K` largest, largest first."""
        variant_ids, variant_lengths, owners, removed = [], [], [], []
        for i, (start, length) in enumerate(zip(offsets.tolist(), lengths.tolist())):
            text_ids = ids[start : start + length]
            unique = torch.unique(text_ids)
            keep = text_ids[None, :] != unique[:, None]  # one row per distinct n-gram: the text without it
            variant_ids.append(text_ids.expand(len(unique), -1)[keep])
            variant_lengths.append(keep.sum(dim=1))
            owners += [i] * len(unique)
            removed.append(unique)
        if not owners:
            return [[] for _ in range(len(offsets))]
        flat, counts = torch.cat(variant_ids), torch.cat(variant_lengths)
        owners, removed = torch.tensor(owners), torch.cat(removed)
        with torch.inference_mode():
            full = torch.softmax(
                self.model(input_ids=ids.to(self.device), offsets=offsets.to(self.device)).logits.float(), -1
            ).cpu()
            occluded_logits = []
            for start in range(0, len(owners), DEFAULT_BATCH_SIZE * 4):
                part = slice(start, start + DEFAULT_BATCH_SIZE * 4)
                part_counts = counts[part]
                first = int(counts[: part.start].sum())
                part_ids = flat[first : first + int(part_counts.sum())]
                part_offsets = torch.cumsum(part_counts, 0) - part_counts
                out = self.model(input_ids=part_ids.to(self.device), offsets=part_offsets.to(self.device)).logits
                occluded_logits.append(out.float().cpu())
        occluded = torch.softmax(torch.cat(occluded_logits), -1)
        label_of = labels[owners]
        drop = full[owners, label_of] - occluded[torch.arange(len(owners)), label_of]
        explanations = [[] for _ in range(len(offsets))]
        tokens = self.tokenizer.convert_ids_to_tokens(removed.tolist())
        for row in torch.argsort(drop, descending=True).tolist():
            owner = int(owners[row])
            if len(explanations[owner]) < EXPLAIN_TOP_K:
                explanations[owner].append({"ngram": tokens[row], "weight": float(drop[row])})
        return explanations

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
