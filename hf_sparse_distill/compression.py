"""Smaller students: keep the n-gram rows that matter, store the table in float16 or int8.

A student's vocabulary is built most frequent n-gram first (ids in frequency order on the distillation corpus),
so pruning by frequency keeps the first ids; pruning by norm keeps the rows whose embedding moves the pooled
vector most. The kept n-grams keep their order, the tokenizer and the table are remapped together, and the result
is a normal student folder (Auto classes, stock and batched pipelines, remote code).

With mean or sum pooling, the weight of the head's first hidden layer is folded into the table (each row
multiplied by it once, here, instead of every pooled vector at inference): exact in float32, and it removes the
largest matrix product of the forward pass (`SparseDANConfig.folded_first_layer`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .models.sparse_dan import SparseDANConfig, SparseDANForSequenceClassification, SparseDANTokenizer
from .models.sparse_dan.modeling_sparse_dan import Int8EmbeddingBag

logger = logging.getLogger(__name__)

DTYPES = ("float32", "float16", "int8")
RANKINGS = ("frequency", "norm")
COMPRESSION_FILE = "compression.json"
_BYTES_PER_VALUE = {"float32": 4, "float16": 2, "int8": 1}
FIRST_LAYER_WEIGHT = "layers.1.weight"  # in the head's state: dropout, then the first hidden Linear
_CONFIG_BYTES = 8192  # config.json, tokenizer_config.json, compression.json and the safetensors header


@dataclass
class CompressionReport:
    """What `compress` did (saved as `compression.json` next to the compressed student)."""

    source: str
    kept_ngrams: int
    original_ngrams: int
    dtype: str
    rank_by: str
    size_mb: float
    original_size_mb: float
    folded_first_layer: bool = False  # the head's first hidden layer was folded into the table
    refresh: dict | None = None  # the KD refresh after pruning (`compress --refresh`), if any
    # accuracy on the report split of the run the source comes from: compressed, source student, teacher
    evaluation: dict | None = None

    @classmethod
    def load(cls, folder: str | os.PathLike) -> CompressionReport | None:
        """The report saved in a compressed student's folder, or None for a student that was not compressed."""
        path = Path(folder) / COMPRESSION_FILE
        return cls(**json.loads(path.read_text())) if path.exists() else None

    def save(self, folder: str | os.PathLike) -> None:
        """Write the report as `compression.json` into `folder`."""
        (Path(folder) / COMPRESSION_FILE).write_text(json.dumps(asdict(self), indent=2))


def source_run(student_dir: str | os.PathLike) -> Path | None:
    """The `distill` output folder a student folder belongs to (`results.json` and `recipe.json` beside the
    folder or one level up, as for `RUN/student` and `RUN/kd/best`), if any."""
    for folder in (Path(student_dir).parent, Path(student_dir).parent.parent):
        if (folder / "results.json").exists() and (folder / "recipe.json").exists():
            return folder
    return None


def save_with_half_table(model: SparseDANForSequenceClassification, folder: str | os.PathLike, **kwargs) -> None:
    """`save_pretrained` with the embedding table stored in float16 (half the download). The model still loads and
    computes in float32: `save_pretrained` would record the table's float16 as the model's dtype, so it is reset."""
    table = model.get_input_embeddings()
    original = table.weight.dtype
    table.half()
    try:
        model.save_pretrained(folder, **kwargs)
    finally:
        table.to(original)
    config_file = Path(folder) / "config.json"
    config = json.loads(config_file.read_text())
    config["dtype"] = "float32"
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def folder_mb(folder: str | os.PathLike) -> float:
    """Size of the files of a folder, in MB (2^20 bytes)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 2**20


def ranked_ids(model: SparseDANForSequenceClassification, rank_by: str) -> torch.Tensor:
    """The n-gram ids (padding excluded), most important first."""
    pad = model.config.pad_token_id
    ids = torch.tensor([i for i in range(model.config.vocab_size) if i != pad])
    if rank_by == "frequency":
        return ids  # the vocabulary is built most frequent first
    if rank_by == "norm":
        table = model.get_input_embeddings().weight.detach().float()
        return ids[torch.argsort(table[ids].norm(dim=1), descending=True, stable=True)]
    raise ValueError(f"rank_by must be one of {RANKINGS}, got {rank_by!r}")


def estimated_mb(
    tokenizer: SparseDANTokenizer,
    ids: torch.Tensor,
    embed_dim: int,
    dtype: str,
    dense_mb: float,
    bytes_outside_table: int = 0,
) -> list[float]:
    """Estimated folder size (MB) after keeping the first k of `ids`, for every k (table, vocabulary JSON
    and the rest); `bytes_outside_table`: what else the model keeps per n-gram (a pair_overlap student's order)."""
    row = embed_dim * _BYTES_PER_VALUE[dtype] + (8 if dtype == "int8" else 0)  # int8 rows end with scale + offset
    row += bytes_outside_table
    tokens = [tokenizer.convert_ids_to_tokens(int(i)) for i in ids]
    json_bytes = [len(json.dumps(t, ensure_ascii=False).encode()) + len(str(int(i))) + 4 for t, i in zip(tokens, ids)]
    sizes, total = [], 0
    for k in range(len(ids)):
        total += row + json_bytes[k]
        sizes.append(dense_mb + total / 2**20)
    return sizes


def can_fold(config: SparseDANConfig) -> bool:
    """Whether the head's first hidden layer can be folded into the table: mean or sum pooling (the layer's matrix
    commutes with them), single texts, not folded yet, and a first hidden layer no wider than the table."""
    return (
        not config.folded_first_layer
        and config.pooling in ("mean", "sum")
        and not config.pair_mode
        and bool(config.hidden_dims)
        and config.hidden_dims[0] <= config.embed_dim
    )


def folded(table: torch.Tensor, head: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The table with the weight of the head's first hidden layer folded in (`table @ weight.T`) and the head's
    state (`classifier.state_dict()`) without that weight (its bias stays)."""
    head = dict(head)
    weight = head.pop(FIRST_LAYER_WEIGHT)
    return table.float() @ weight.T.float(), head


def compress(
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    keep_ngrams: int | None = None,
    max_mb: float | None = None,
    dtype: str = "int8",
    rank_by: str = "norm",
    fold_first_layer: bool | None = None,
) -> CompressionReport:
    """Write a smaller copy of the student in `model_dir` to `out_dir`.

    Args:
        model_dir: A saved student (folder).
        out_dir: Where the compressed student goes (a normal student folder).
        keep_ngrams: How many n-grams to keep (default: all, or what `max_mb` allows).
        max_mb: Keep the most n-grams whose folder fits in this many MB.
        dtype: `"float32"`, `"float16"` (table stored in half precision, loaded as float32) or `"int8"` (table kept
            in 8 bits in memory too, with a scale and an offset per row).
        rank_by: Which n-grams to keep first: `"norm"` (of the row; it kept more accuracy than `"frequency"` at
            every size on the SST-2 selection split, benchmarks/COMPRESSION.md) or `"frequency"` (on the
            distillation corpus).
        fold_first_layer: Fold the head's first hidden layer into the table (see `can_fold`; default: wherever
            it can be).
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    model = SparseDANForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = SparseDANTokenizer.from_pretrained(model_dir)
    if model.config.table_quantization is not None:
        raise ValueError(f"{model_dir} is already quantized ({model.config.table_quantization})")
    fold = can_fold(model.config) if fold_first_layer is None else fold_first_layer
    if fold and not can_fold(model.config):
        raise ValueError(
            f"{model_dir}: the first hidden layer cannot be folded into the table (it needs mean or sum pooling, "
            "single texts, a first hidden layer no wider than the table, and a head not folded yet)"
        )
    width = model.config.hidden_dims[0] if fold else model.config.embed_dim
    ids = ranked_ids(model, rank_by)
    k = len(ids) if keep_ngrams is None else min(keep_ngrams, len(ids))
    if k < 1:
        raise ValueError(f"keep_ngrams must be >= 1, got {keep_ngrams}")
    if max_mb is not None:
        code = sum(f.stat().st_size for f in Path(model_dir).glob("*.py"))  # copied next to the weights
        folded_away = (f"classifier.{FIRST_LAYER_WEIGHT}",) if fold else ()  # the fold moves it into the table
        head_bytes = sum(
            p.numel() * 4 for n, p in model.named_parameters() if "embeddings" not in n and n not in folded_away
        )
        dense_mb = (code + head_bytes + _CONFIG_BYTES) / 2**20
        per_ngram = 1 if model.config.pair_overlap else 0  # its uint8 n-gram order
        sizes = estimated_mb(tokenizer, ids[:k], width, dtype, dense_mb, per_ngram)
        fitting = [i for i, size in enumerate(sizes) if size <= max_mb]
        if not fitting:
            raise ValueError(f"no student of {max_mb} MB: even one n-gram needs {sizes[0]:.2f} MB")
        k = fitting[-1] + 1
    kept = torch.sort(ids[:k]).values  # keep frequency (id) order
    rows = torch.cat([torch.tensor([model.config.pad_token_id]), kept])
    vocab = {tokenizer.convert_ids_to_tokens(int(i)): new for new, i in enumerate(rows)}
    small_tokenizer = SparseDANTokenizer(
        vocab=vocab, ngram_range=tokenizer.ngram_range, lowercase=tokenizer.lowercase,
        token_pattern=tokenizer.token_pattern, pad_token=tokenizer.pad_token, model_max_length=tokenizer.model_max_length,
    )  # fmt: skip
    table = model.get_input_embeddings().weight.detach()[rows]
    head = model.classifier.state_dict()
    if fold:
        table, head = folded(table, head)
    config_data = model.config.to_dict()
    config_data.update(vocab_size=len(rows), pad_token_id=0, table_quantization="int8" if dtype == "int8" else None)
    config_data.update(embed_dim=width, folded_first_layer=model.config.folded_first_layer or fold)
    if config_data.get("cascade_threshold") is not None:  # chosen on the uncompressed student's confidences
        logger.warning("the cascade threshold is not kept: run `hf-sparse-distill calibrate` on the compressed student")
        config_data["cascade_threshold"] = None
    small = SparseDANForSequenceClassification(SparseDANConfig.from_dict(config_data)).eval()
    small.classifier.load_state_dict(head)
    if small.config.pair_overlap:
        small.dan.set_ngram_orders(small_tokenizer.ngram_orders())
    if dtype == "int8":
        small.dan.embeddings = Int8EmbeddingBag.quantize(table, model.config.pooling)
    else:
        small.dan.embeddings.weight.data.copy_(table)
    out_dir = Path(out_dir)
    if dtype == "float16":
        save_with_half_table(small, out_dir)
    else:
        small.save_pretrained(out_dir)
    small_tokenizer.save_pretrained(out_dir)
    report = CompressionReport(
        source=str(model_dir), kept_ngrams=k, original_ngrams=len(ids), dtype=dtype, rank_by=rank_by,
        size_mb=0.0, original_size_mb=round(folder_mb(model_dir), 2), folded_first_layer=fold,
    )  # fmt: skip
    report.save(out_dir)
    report.size_mb = round(folder_mb(out_dir), 2)
    report.save(out_dir)
    if max_mb is not None and report.size_mb > max_mb:
        raise RuntimeError(
            f"the compressed student takes {report.size_mb} MB, over --max-mb {max_mb}: an estimate was off"
        )
    return report


__all__ = ["CompressionReport", "can_fold", "compress", "folder_mb", "ranked_ids", "save_with_half_table", "source_run"]
