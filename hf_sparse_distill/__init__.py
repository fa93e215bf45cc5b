"""hf-sparse-distill: distil a fine-tuned transformer classifier into a sparse n-gram DAN student."""

from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from .configuration_sparse_dan import SparseDANConfig
from .modeling_sparse_dan import SparseDANForSequenceClassification, SparseDANModel, SparseDANPreTrainedModel
from .tokenization_sparse_dan import SparseDANTokenizer

__version__ = "0.1.0"

AutoConfig.register(SparseDANConfig.model_type, SparseDANConfig, exist_ok=True)
AutoModel.register(SparseDANConfig, SparseDANModel, exist_ok=True)
AutoModelForSequenceClassification.register(SparseDANConfig, SparseDANForSequenceClassification, exist_ok=True)
AutoTokenizer.register(SparseDANConfig, SparseDANTokenizer, exist_ok=True)

SparseDANConfig.register_for_auto_class()
SparseDANModel.register_for_auto_class("AutoModel")
SparseDANForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
SparseDANTokenizer.register_for_auto_class("AutoTokenizer")

__all__ = [
    "SparseDANConfig",
    "SparseDANForSequenceClassification",
    "SparseDANModel",
    "SparseDANPreTrainedModel",
    "SparseDANTokenizer",
    "__version__",
]
