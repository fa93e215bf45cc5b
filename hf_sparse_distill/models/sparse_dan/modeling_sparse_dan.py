"""PyTorch sparse Deep Averaging Network (DAN): a bag of n-gram embeddings, pooled, then an MLP.

Implements the student of "Sparse Distillation: Speeding Up Text Classification by Using Bigger Student
Models" (Ye et al., NAACL 2022). This file is copied next to the weights when a model is saved, so it imports
nothing but torch, transformers and the configuration file beside it.
"""

import shutil
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_outputs import BaseModelOutputWithPooling, SequenceClassifierOutput

from .configuration_sparse_dan import SparseDANConfig

PIPELINE_FILE = "pipeline_sparse_dan.py"
CUSTOM_PIPELINES = {
    "text-classification": {
        "impl": "pipeline_sparse_dan.SparseDANClassificationPipeline",
        "pt": ["AutoModelForSequenceClassification"],
        "tf": [],
        "type": "text",
    }
}

try:  # transformers >= 5 skips weights that were loaded from a checkpoint
    from transformers import initialization as init
except ImportError:  # transformers 4.x
    from torch.nn import init


class SparseDANPreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading logic shared by the sparse DAN models."""

    config_class = SparseDANConfig
    base_model_prefix = "dan"
    main_input_name = "input_ids"

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.EmbeddingBag):
            init.normal_(module.weight, mean=0.0, std=self.config.embedding_init_std)
        elif isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)


def bags_from_padded(
    input_ids: torch.Tensor, attention_mask: torch.Tensor | None, pad_token_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn a padded `[batch, length]` id matrix into flat ids and bag offsets.

    Positions where `attention_mask` is 0 (or, without a mask, ids equal to `pad_token_id`) are left out, so
    a row with no n-gram becomes an empty bag instead of the `step must be nonzero` error that
    `nn.EmbeddingBag` raises on a `[batch, 0]` input.
    """
    if input_ids.dim() != 2:
        raise ValueError(f"padded input_ids must be 2-D [batch, length], got shape {tuple(input_ids.shape)}")
    keep = attention_mask.bool() if attention_mask is not None else input_ids.ne(pad_token_id)
    lengths = keep.sum(dim=1)
    offsets = torch.zeros_like(lengths)
    offsets[1:] = torch.cumsum(lengths, dim=0)[:-1]
    return input_ids[keep], offsets


def pair_bags_from_padded(
    input_ids: torch.Tensor, token_type_ids: torch.Tensor, attention_mask: torch.Tensor | None, pad_token_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn a padded `[batch, length]` matrix of sentence pairs (`token_type_ids` 0 for the first text, 1 for the
    second) into flat ids and the offsets of `2 * batch` bags: first text of row 0, second text of row 0, first text
    of row 1, ... (the layout of `SparseDANTokenizer.encode_bags` with `text_pair`)."""
    if input_ids.dim() != 2 or token_type_ids.shape != input_ids.shape:
        raise ValueError("padded pair input: input_ids and token_type_ids must both be [batch, length]")
    keep = attention_mask.bool() if attention_mask is not None else input_ids.ne(pad_token_id)
    rows = torch.arange(input_ids.shape[0], device=input_ids.device)[:, None].expand_as(input_ids)
    bag = (2 * rows + token_type_ids.clamp(0, 1))[keep]
    order = torch.argsort(bag, stable=True)  # each row's first text before its second, whatever the padding side
    lengths = torch.bincount(bag, minlength=2 * input_ids.shape[0])
    offsets = torch.zeros_like(lengths)
    offsets[1:] = torch.cumsum(lengths, dim=0)[:-1]
    return input_ids[keep][order], offsets


def bag_lengths(offsets: torch.Tensor, num_ids: int) -> torch.Tensor:
    """The number of ids in each bag of a flat input of `num_ids` ids whose bags start at `offsets`."""
    return torch.diff(offsets, append=offsets.new_tensor([num_ids]))


def bag_of_each_id(lengths: torch.Tensor) -> torch.Tensor:
    """The bag of each id of a flat input, from the bags' `lengths`."""
    return torch.repeat_interleave(torch.arange(lengths.numel(), device=lengths.device), lengths)


def pair_features(pooled: torch.Tensor) -> torch.Tensor:
    """`[h1, h2, h1 * h2, |h1 - h2|]` of the interleaved bag vectors `pooled` (`[2 * batch, dim]`), `[batch, 4 * dim]`."""
    first, second = pooled[0::2], pooled[1::2]
    return torch.cat([first, second, first * second, (first - second).abs()], dim=-1)


def pair_overlap_features(
    input_ids: torch.Tensor, offsets: torch.Tensor, ngram_orders: torch.Tensor, ngram_range: list[int]
) -> torch.Tensor:
    """Word overlap of each pair of interleaved bags (flat `input_ids`, `2 * batch` `offsets`): for each n-gram order
    from `min_n` to `max_n`, the share of the first text's n-gram occurrences whose id is also in the second text,
    then the same for the second text. `ngram_orders[id]` is the order of each id (0: not an n-gram, left out);
    `[batch, 2 * (max_n - min_n + 1)]`, float32, 0 where a text has no n-gram of that order."""
    min_n, max_n = ngram_range
    num_orders, num_bags = max_n - min_n + 1, offsets.numel()
    bag = bag_of_each_id(bag_lengths(offsets, input_ids.numel()))
    order = ngram_orders[input_ids].long()
    if input_ids.numel() and not bool(order.any()):
        raise ValueError("pair_overlap: the model's ngram_orders are not set (model.dan.set_ngram_orders(...))")
    side = bag % 2
    key = (bag // 2) * ngram_orders.numel() + input_ids  # the same id in the same pair: the same key
    found = torch.empty_like(side, dtype=torch.bool)
    for this in (0, 1):
        mine = side == this
        found[mine] = torch.isin(key[mine], key[~mine])
    counted = (order >= min_n) & (order <= max_n)
    slot = (bag * num_orders + order - min_n)[counted]
    total = torch.bincount(slot, minlength=num_bags * num_orders)
    hits = torch.bincount(slot[found[counted]], minlength=num_bags * num_orders)
    share = hits.float() / total.clamp(min=1)
    return share.view(num_bags // 2, 2 * num_orders)


def drop_features(input_ids: torch.Tensor, offsets: torch.Tensor, rate: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Remove each n-gram occurrence with probability `rate` (feature dropout), keeping bag boundaries."""
    keep = torch.rand(input_ids.shape, device=input_ids.device) >= rate
    bag_of_id = bag_of_each_id(bag_lengths(offsets, input_ids.numel()))
    kept_lengths = torch.bincount(bag_of_id[keep], minlength=offsets.numel())
    new_offsets = torch.zeros_like(offsets)
    new_offsets[1:] = torch.cumsum(kept_lengths, dim=0)[:-1]
    return input_ids[keep], new_offsets


def pool_in_float32(weight: torch.Tensor, input_ids: torch.Tensor, offsets: torch.Tensor, mode: str) -> torch.Tensor:
    """`nn.EmbeddingBag` pooling with the rows gathered in the table's dtype but summed in float32, for tables in
    float16 or bfloat16: the sum over a long text would overflow in half precision. Returns `[batch, dim]`
    float32; an empty bag is a zero vector, as in `nn.EmbeddingBag`."""
    return pool_rows(weight.index_select(0, input_ids).float(), offsets, mode)


def pool_rows(rows: torch.Tensor, offsets: torch.Tensor, mode: str) -> torch.Tensor:
    """Pool gathered float32 rows (one per id of the flat input) into one vector per bag (`offsets`)."""
    lengths = bag_lengths(offsets, rows.shape[0])
    bag_of_id = bag_of_each_id(lengths)
    pooled = rows.new_zeros((offsets.numel(), rows.shape[1]))
    if mode == "max":
        index = bag_of_id[:, None].expand_as(rows)
        pooled = pooled.fill_(-torch.inf).scatter_reduce(0, index, rows, reduce="amax")
        return torch.where(lengths[:, None] > 0, pooled, torch.zeros_like(pooled))
    pooled.index_add_(0, bag_of_id, rows)
    if mode == "mean":
        pooled /= lengths.clamp(min=1)[:, None].to(pooled.dtype)
    return pooled


class Int8EmbeddingBag(nn.Module):
    """A frozen n-gram table in 8 bits per value, one float32 scale and offset per row, called like
    `nn.EmbeddingBag` (flat ids and offsets). `weight` is `[num_embeddings, embedding_dim + 8]` uint8 in PyTorch's
    row-wise 8-bit layout: each row holds its codes, then its scale and its offset as float32 bytes, and value `j` of
    row `i` is `code[i, j] * scale[i] + offset[i]`. Sums and means are pooled by PyTorch's quantized embedding-bag
    kernel, which dequantizes rows as it reads them, so the table stays 8-bit in memory. Made by `quantize`; used by
    students compressed to int8."""

    def __init__(self, num_embeddings: int, embedding_dim: int, mode: str = "mean"):
        super().__init__()
        self.mode = mode
        self.embedding_dim = embedding_dim
        self.register_buffer("weight", torch.zeros(num_embeddings, embedding_dim + 8, dtype=torch.uint8))

    @classmethod
    def quantize(cls, table: torch.Tensor, mode: str = "mean") -> "Int8EmbeddingBag":
        """Symmetric row-wise quantization: row `i` becomes `round(table[i] / scale[i])` in [-127, 127], with
        `scale[i] = max |table[i]| / 127`, stored as codes `+ 128` with offset `-128 * scale[i]`."""
        module = cls(table.shape[0], table.shape[1], mode)
        values = table.detach().float()
        scale = values.abs().amax(dim=1).clamp(min=torch.finfo(torch.float32).tiny) / 127
        codes = torch.round(values / scale[:, None]).clamp(-127, 127) + 128
        module.weight[:, : table.shape[1]] = codes.to(torch.uint8)
        scale_and_offset = torch.stack([scale, -128 * scale], dim=1).contiguous()
        module.weight[:, table.shape[1] :] = scale_and_offset.view(torch.uint8)
        return module

    def _rows(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The rows of `input_ids`, dequantized to float32."""
        packed = self.weight.index_select(0, input_ids)
        scale_and_offset = packed[:, self.embedding_dim :].contiguous().view(torch.float32)
        return packed[:, : self.embedding_dim].float() * scale_and_offset[:, :1] + scale_and_offset[:, 1:]

    def dequantized(self) -> torch.Tensor:
        """The whole table as float32 (for inspection; the forward pass never builds it)."""
        return self._rows(torch.arange(self.weight.shape[0], device=self.weight.device))

    def forward(self, input_ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Pooled float32 vectors `[batch, dim]` of the bags of `input_ids` starting at `offsets`."""
        if self.mode == "max" or self.weight.device.type != "cpu":
            return pool_rows(self._rows(input_ids), offsets, self.mode)
        # the kernel sums each bag (an empty bag gives zeros) whatever mode it is given
        pooled = torch.ops.quantized.embedding_bag_byte_rowwise_offsets(self.weight, input_ids, offsets)
        if self.mode == "mean":
            pooled /= bag_lengths(offsets, input_ids.numel()).clamp(min=1)[:, None].to(pooled.dtype)
        return pooled


class SparseDANModel(SparseDANPreTrainedModel):
    """The n-gram embedding bag: returns one pooled vector per text (`pooler_output`, `[batch, embed_dim]`)."""

    _keys_to_ignore_on_load_unexpected = [r"^classifier\."]

    def __init__(self, config: SparseDANConfig):
        super().__init__(config)
        if config.table_quantization == "int8":
            self.embeddings = Int8EmbeddingBag(config.vocab_size, config.embed_dim, mode=config.pooling)
        else:
            self.embeddings = nn.EmbeddingBag(config.vocab_size, config.embed_dim, mode=config.pooling)
        if config.pair_overlap:  # the order of each n-gram id, saved with the weights
            self.register_buffer("ngram_orders", torch.zeros(config.vocab_size, dtype=torch.uint8))
        self.post_init()

    def set_ngram_orders(self, orders: list[int] | torch.Tensor) -> None:
        """Store the n-gram order of each id (`SparseDANTokenizer.ngram_orders()`), which `config.pair_overlap`
        reads; 0 for ids that are not n-grams (padding)."""
        orders = torch.as_tensor(orders, dtype=torch.uint8)
        if not self.config.pair_overlap:
            raise ValueError("only a model with config.pair_overlap keeps n-gram orders")
        if orders.shape != self.ngram_orders.shape:
            raise ValueError(f"{orders.numel()} n-gram orders for a table of {self.ngram_orders.numel()} rows")
        self.ngram_orders.copy_(orders)

    def get_input_embeddings(self) -> nn.EmbeddingBag:
        """The n-gram embedding table."""
        return self.embeddings

    def set_input_embeddings(self, value: nn.EmbeddingBag) -> None:
        """Replace the n-gram embedding table."""
        self.embeddings = value

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        offsets: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling | tuple[torch.Tensor]:
        r"""Args:
        input_ids (`torch.LongTensor`):
            Either padded n-gram ids of shape `[batch, length]` (what the tokenizer returns with
            `padding=True`), or, together with `offsets`, the flat 1-D concatenation of every text's ids
            (like `nn.EmbeddingBag`; what `SparseDANTokenizer.encode_bags` returns).
        attention_mask (`torch.LongTensor` of shape `[batch, length]`, *optional*):
            1 for real n-grams, 0 for padding. Without it, ids equal to `pad_token_id` are padding.
        offsets (`torch.LongTensor` of shape `[batch]`, *optional*):
            Start of each text in the flat `input_ids`. A text with no n-gram (empty bag) gets a zero vector. With
            `config.pair_mode`, `[2 * batch]`: the first and the second text of each pair, pair after pair.
        token_type_ids (`torch.LongTensor` of shape `[batch, length]`, *optional*):
            With `config.pair_mode` and padded input: 0 for the n-grams of the first text, 1 for the second.

        Returns `pooler_output`: the pooled vector of each text, `[batch, embed_dim]`; with `config.pair_mode`, the
        pair features `[h1, h2, h1 * h2, |h1 - h2|]`, `[batch, 4 * embed_dim]`, followed with `config.pair_overlap`
        by the overlap shares of `pair_overlap_features`.
        """
        if input_ids is None:
            raise ValueError("input_ids is required")
        pairs = self.config.pair_mode
        if offsets is None and pairs:
            if token_type_ids is None:
                raise ValueError("a pair model needs token_type_ids with padded input (tokenizer(text, text_pair))")
            input_ids, offsets = pair_bags_from_padded(
                input_ids, token_type_ids, attention_mask, self.config.pad_token_id
            )
        elif offsets is None:
            input_ids, offsets = bags_from_padded(input_ids, attention_mask, self.config.pad_token_id)
        elif input_ids.dim() != 1 or offsets.dim() != 1:
            raise ValueError("with offsets, input_ids and offsets must both be 1-D (flat ids, bag starts)")
        if pairs and offsets.numel() % 2:
            raise ValueError(f"a pair model needs two bags per example (2 * batch offsets), got {offsets.numel()}")
        overlap = None
        if pairs and self.config.pair_overlap:  # of the whole texts: feature dropout would turn matches into misses
            overlap = pair_overlap_features(input_ids, offsets, self.ngram_orders, self.config.ngram_range)
        if self.training and self.config.feature_dropout > 0:
            input_ids, offsets = drop_features(input_ids, offsets, self.config.feature_dropout)
        weight = self.embeddings.weight
        if isinstance(self.embeddings, Int8EmbeddingBag):
            pooled = self.embeddings(input_ids, offsets)
        elif weight.dtype in (torch.float16, torch.bfloat16):
            pooled = pool_in_float32(weight, input_ids, offsets, self.config.pooling)
            limit = torch.finfo(weight.dtype).max  # a sum can still exceed the half-precision range
            pooled = pooled.clamp(-limit, limit).to(weight.dtype)
        else:
            pooled = self.embeddings(input_ids, offsets)
        if pairs:
            pooled = pair_features(pooled)
        if overlap is not None:
            pooled = torch.cat([pooled, overlap.to(pooled.dtype)], dim=-1)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if not return_dict:
            return (pooled,)
        return BaseModelOutputWithPooling(pooler_output=pooled)


class Bias(nn.Module):
    """Adds a learned vector: what is left of the head's first linear layer once its weight is folded into the
    table (`config.folded_first_layer`)."""

    def __init__(self, width: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(width))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.bias


class SparseDANClassificationHead(nn.Module):
    """Dropout → Linear → activation for each hidden width, then dropout → Linear to the labels. With
    `config.folded_first_layer`, the first Linear is only its bias (its weight is in the table)."""

    def __init__(self, config: SparseDANConfig):
        super().__init__()
        layers: list[nn.Module] = []
        width = config.embed_dim * (4 if config.pair_mode else 1)
        if config.pair_overlap:
            width += 2 * (config.ngram_range[1] - config.ngram_range[0] + 1)
        for i, hidden in enumerate(config.hidden_dims):
            linear = Bias(hidden) if i == 0 and config.folded_first_layer else nn.Linear(width, hidden)
            layers += [nn.Dropout(config.classifier_dropout), linear, ACT2FN[config.activation]]
            width = hidden
        layers += [nn.Dropout(config.classifier_dropout), nn.Linear(width, config.num_labels)]
        self.layers = nn.Sequential(*layers)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.layers(pooled)


class SparseDANForSequenceClassification(SparseDANPreTrainedModel):
    """Sparse DAN with a classification (or regression) head; the loss follows `config.problem_type`."""

    def __init__(self, config: SparseDANConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.dan = SparseDANModel(config)
        self.classifier = SparseDANClassificationHead(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.EmbeddingBag:
        """The n-gram embedding table."""
        return self.dan.embeddings

    def set_input_embeddings(self, value: nn.EmbeddingBag) -> None:
        """Replace the n-gram embedding table."""
        self.dan.embeddings = value

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        offsets: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        token_type_ids: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput | tuple[torch.Tensor, ...]:
        r"""Args:
        input_ids, attention_mask, offsets, token_type_ids: see [`SparseDANModel.forward`].
        labels (`torch.Tensor`, *optional*):
            Class ids `[batch]` for single-label classification, multi-hot `[batch, num_labels]` for
            multi-label classification, or targets for regression (`num_labels == 1`).
        """
        pooled = self.dan(
            input_ids, attention_mask=attention_mask, offsets=offsets, token_type_ids=token_type_ids, return_dict=False
        )[0]
        head_dtype = self.classifier.layers[-1].weight.dtype  # the table may be stored in another dtype
        logits = self.classifier(pooled.to(head_dtype))
        problem_type = self.config.problem_type
        regression = problem_type == "regression" or (problem_type is None and self.num_labels == 1)  # as _loss
        if self.config.logit_temperature != 1.0 and not regression:  # calibration: scores change, labels do not
            logits = logits / self.config.logit_temperature
        loss = None
        if labels is not None:
            loss = self._loss(logits, labels.to(logits.device))
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if not return_dict:
            return (logits,) if loss is None else (loss, logits)
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Save as every `PreTrainedModel` does. With the code files (auto-class registration), `auto_map` also
        names the base [`SparseDANModel`] (so `AutoModel.from_pretrained(..., trust_remote_code=True)` works), and
        the batched pipeline file is saved too, registered in `custom_pipelines` as the folder's
        `text-classification` pipeline: `pipeline("text-classification", model=..., trust_remote_code=True)` then
        runs whole batches at once."""
        pipeline_file = Path(__file__).with_name(PIPELINE_FILE)
        ships_code = self._auto_class is not None
        if ships_code:
            module = SparseDANModel.__module__.rsplit(".", 1)[-1]
            self.config.auto_map = {
                "AutoModel": f"{module}.SparseDANModel",
                **(getattr(self.config, "auto_map", None) or {}),
            }
            if pipeline_file.exists():
                self.config.custom_pipelines = CUSTOM_PIPELINES
        result = super().save_pretrained(save_directory, *args, **kwargs)
        if ships_code and pipeline_file.exists():
            shutil.copyfile(pipeline_file, Path(save_directory) / PIPELINE_FILE)
        return result

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.config.problem_type is None:
            if self.num_labels == 1:
                self.config.problem_type = "regression"
            elif labels.dtype in (torch.long, torch.int):
                self.config.problem_type = "single_label_classification"
            else:
                self.config.problem_type = "multi_label_classification"
        if self.config.problem_type == "regression":
            return nn.functional.mse_loss(logits.squeeze(-1), labels.to(logits.dtype).view(-1))
        if self.config.problem_type == "single_label_classification":
            return nn.functional.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1))
        return nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


__all__ = ["SparseDANPreTrainedModel", "SparseDANModel", "SparseDANForSequenceClassification"]
