"""hf-sparse-distill: distil a fine-tuned transformer classifier into a sparse n-gram DAN student.

Importing the package registers the student with transformers' Auto classes, so a saved student loads with
`AutoModelForSequenceClassification` / `AutoTokenizer` / `pipeline` without `trust_remote_code`. The import is
light (torch, transformers, numpy): the distillation API (`distill`, `load_recipe`, ...) is imported on first use
and needs the `[distill]` extra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from .models.sparse_dan import (
    SparseDANClassificationPipeline,
    SparseDANConfig,
    SparseDANForSequenceClassification,
    SparseDANModel,
    SparseDANPreTrainedModel,
    SparseDANTokenizer,
)
from .results import DistillationResults

if TYPE_CHECKING:
    from .distillation import Recipe, distill, load_recipe

__version__ = "0.2.0"

AutoConfig.register(SparseDANConfig.model_type, SparseDANConfig, exist_ok=True)
AutoModel.register(SparseDANConfig, SparseDANModel, exist_ok=True)
AutoModelForSequenceClassification.register(SparseDANConfig, SparseDANForSequenceClassification, exist_ok=True)
AutoTokenizer.register(SparseDANConfig, SparseDANTokenizer, exist_ok=True)

SparseDANConfig.register_for_auto_class()
SparseDANModel.register_for_auto_class("AutoModel")
SparseDANForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
SparseDANTokenizer.register_for_auto_class("AutoTokenizer")
SparseDANConfig.ignore_custom_pipelines = (
    True  # see SparseDANConfig: use pipeline_class=SparseDANClassificationPipeline
)

# Names served by `hf_sparse_distill.distillation`, imported on first access (it needs the `[distill]` extra).
_LAZY = {"distill": "distillation", "load_recipe": "distillation", "Recipe": "distillation"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DistillationResults",
    "Recipe",
    "SparseDANClassificationPipeline",
    "SparseDANConfig",
    "SparseDANForSequenceClassification",
    "SparseDANModel",
    "SparseDANPreTrainedModel",
    "SparseDANTokenizer",
    "__version__",
    "distill",
    "load_recipe",
]
