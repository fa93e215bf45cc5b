"""Configuration of the sparse Deep Averaging Network (DAN) student.

This file is copied next to the weights when a model is saved, so it imports nothing but
``transformers`` (see ``register_for_auto_class``).
"""

from transformers import PretrainedConfig

POOLING_MODES = ("mean", "sum", "max")
ACTIVATIONS = ("tanh", "relu", "gelu")


class SparseDANConfig(PretrainedConfig):
    r"""Configuration of a [`SparseDANModel`] / [`SparseDANForSequenceClassification`]: a bag of n-gram
    embeddings, pooled, followed by a small MLP (Ye et al., 2022, "Sparse Distillation").

    Args:
        vocab_size (`int`, defaults to 1_000_001):
            Rows of the n-gram embedding table (n-gram vocabulary plus the padding row).
        embed_dim (`int`, defaults to 1000):
            Width of an n-gram embedding (paper: 1000).
        hidden_dims (`list[int]`, defaults to `[1000]`):
            Widths of the hidden layers of the classification head (paper: one layer of 1000).
        activation (`str`, defaults to `"tanh"`):
            Activation of the head's hidden layers: `"tanh"` (the released paper code) or `"relu"` (the paper
            text); `"gelu"` is also accepted.
        pooling (`str`, defaults to `"mean"`):
            How the n-gram embeddings of one text are combined: `"mean"` (paper), `"sum"` or `"max"`. Repeated
            n-grams count once per occurrence.
        feature_dropout (`float`, defaults to 0.1):
            Probability of dropping each n-gram occurrence of a text during training (never at inference).
        classifier_dropout (`float`, defaults to 0.1):
            Dropout before each linear layer of the head.
        max_ngrams (`int`, defaults to 2048):
            N-gram occurrences kept per text when the tokenizer truncates.
        ngram_range (`tuple[int, int]`, defaults to `(1, 4)`):
            Smallest and largest n of the word n-grams in the vocabulary.
        embedding_init_std (`float`, defaults to 0.1):
            Standard deviation of the normal initialisation of the embedding table.
        initializer_range (`float`, defaults to 0.02):
            Standard deviation of the normal initialisation of the head's weights.
        pad_token_id (`int`, defaults to 0):
            Id of the padding row; it never contributes to a text's vector.
        table_quantization (`str`, *optional*):
            `"int8"` for a table stored in 8 bits per value with a scale and an offset per row (made by
            `hf-sparse-distill compress`; such a table is for inference only).
        logit_temperature (`float`, defaults to 1.0):
            The logits are divided by it (temperature scaling, fitted by `hf-sparse-distill calibrate`): it changes
            the scores, never the predicted label. Regression outputs are never divided.
        cascade_threshold (`float`, *optional*):
            With a teacher given to the pipeline (`teacher=...`), texts whose calibrated top score is below it (or
            with fewer than `cascade_min_ngrams` known n-grams) are sent to the teacher (set by `calibrate`).
        cascade_min_ngrams (`int`, defaults to 1):
            Texts with fewer known n-grams go to the teacher in a cascade, and are flagged `no_evidence` otherwise.
        pair_mode (`bool`, defaults to `False`):
            Sentence-pair classification (the paper's bi-encoder): `text` and `text_pair` are pooled separately with
            the same table into `h1` and `h2`, and the head reads `[h1, h2, h1 * h2, |h1 - h2|]`.
        pair_overlap (`bool`, defaults to `False`):
            With `pair_mode`, the head also reads the word overlap of the two texts: for each n-gram order, the share
            of the first text's n-grams found in the second, then the same for the second text (`2 * (max_n - min_n
            + 1)` more values, after the pair vector). The model keeps the order of each n-gram id (`ngram_orders`,
            set from the tokenizer). Exact overlap is what a bag-of-words pair baseline reads, and what an average
            of dense vectors blurs.
        folded_first_layer (`bool`, defaults to `False`):
            The weight matrix of the head's first hidden layer is folded into the table: each row is already
            multiplied by it, so `embed_dim` is that layer's width and the head starts with its bias and activation.
            Exact for `"mean"` and `"sum"` pooling (the matrix commutes with the average); it saves the largest
            matrix product of inference (made by `hf-sparse-distill compress`).

    `id2label`, `label2id` and `problem_type` (`"single_label_classification"`, `"multi_label_classification"`,
    `"regression"`) behave as in every transformers classifier.

    Example:
    ```python
    >>> from hf_sparse_distill import SparseDANConfig, SparseDANForSequenceClassification
    >>> config = SparseDANConfig(vocab_size=50_001, embed_dim=256, id2label={0: "negative", 1: "positive"})
    >>> model = SparseDANForSequenceClassification(config)
    ```
    """

    model_type = "sparse_dan"
    # Set by the installed package, which serves its batched pipeline itself: the `custom_pipelines` entry of a
    # saved student is then ignored, so that `pipeline("text-classification", model=...)` also works without
    # `trust_remote_code` (transformers refuses a custom pipeline without it).
    ignore_custom_pipelines = False
    # generic tools (PEFT, sentence-transformers, ONNX exporters) read the embedding width as `hidden_size`
    attribute_map = {"hidden_size": "embed_dim"}

    def __init__(
        self,
        vocab_size: int = 1_000_001,
        embed_dim: int = 1000,
        hidden_dims: list[int] | tuple[int, ...] = (1000,),
        activation: str = "tanh",
        pooling: str = "mean",
        feature_dropout: float = 0.1,
        classifier_dropout: float = 0.1,
        max_ngrams: int = 2048,
        ngram_range: list[int] | tuple[int, int] = (1, 4),
        embedding_init_std: float = 0.1,
        initializer_range: float = 0.02,
        pad_token_id: int = 0,
        table_quantization: str | None = None,
        logit_temperature: float = 1.0,
        cascade_threshold: float | None = None,
        cascade_min_ngrams: int = 1,
        pair_mode: bool = False,
        pair_overlap: bool = False,
        folded_first_layer: bool = False,
        **kwargs,
    ):
        if pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {pooling!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        for name, rate in (("feature_dropout", feature_dropout), ("classifier_dropout", classifier_dropout)):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {rate!r}")
        for name, size in (("vocab_size", vocab_size), ("embed_dim", embed_dim), ("max_ngrams", max_ngrams)):
            if int(size) < 1:
                raise ValueError(f"{name} must be >= 1, got {size!r}")
        if any(int(width) < 1 for width in hidden_dims):
            raise ValueError(f"hidden_dims must all be >= 1, got {list(hidden_dims)!r}")
        ngram_range = [int(n) for n in ngram_range]
        if len(ngram_range) != 2 or not 1 <= ngram_range[0] <= ngram_range[1]:
            raise ValueError(f"ngram_range must be (min_n, max_n) with 1 <= min_n <= max_n, got {ngram_range!r}")
        if not 0 <= pad_token_id < vocab_size:
            raise ValueError(f"pad_token_id={pad_token_id} must be a row of the table (vocab_size={vocab_size})")
        self.vocab_size = int(vocab_size)
        self.embed_dim = int(embed_dim)
        self.hidden_dims = [int(d) for d in hidden_dims]
        self.activation = activation
        self.pooling = pooling
        self.feature_dropout = float(feature_dropout)
        self.classifier_dropout = float(classifier_dropout)
        self.max_ngrams = int(max_ngrams)
        self.ngram_range = ngram_range
        self.embedding_init_std = float(embedding_init_std)
        self.initializer_range = float(initializer_range)
        if table_quantization not in (None, "int8"):
            raise ValueError(f"table_quantization must be None or 'int8', got {table_quantization!r}")
        self.table_quantization = table_quantization
        if not logit_temperature > 0:
            raise ValueError(f"logit_temperature must be > 0, got {logit_temperature!r}")
        self.logit_temperature = float(logit_temperature)
        self.cascade_threshold = None if cascade_threshold is None else float(cascade_threshold)
        self.cascade_min_ngrams = int(cascade_min_ngrams)
        self.pair_mode = bool(pair_mode)
        if pair_overlap and not pair_mode:
            raise ValueError("pair_overlap reads the overlap of two texts: it needs pair_mode (sentence pairs)")
        self.pair_overlap = bool(pair_overlap)
        if folded_first_layer and (
            pooling == "max" or pair_mode or not self.hidden_dims or self.hidden_dims[0] != self.embed_dim
        ):
            raise ValueError(
                "folded_first_layer needs mean or sum pooling, single texts and a first hidden layer as wide as the "
                f"table (embed_dim={self.embed_dim}, hidden_dims={self.hidden_dims}, pooling={pooling!r}, "
                f"pair_mode={self.pair_mode})"
            )
        self.folded_first_layer = bool(folded_first_layer)
        if type(self).ignore_custom_pipelines:
            kwargs.pop("custom_pipelines", None)
        super().__init__(pad_token_id=pad_token_id, **kwargs)


__all__ = ["SparseDANConfig"]
