"""The sparse DAN student: the files of this folder *are* the artifact.

`configuration_sparse_dan.py`, `modeling_sparse_dan.py`, `tokenization_sparse_dan.py` (and the batched pipeline in
`pipeline_sparse_dan.py`) are copied next to the weights by `save_pretrained`, so that
`from_pretrained(..., trust_remote_code=True)` works without this package. They import only torch, transformers,
numpy and each other (relative imports); `tests/test_shipped_files.py` enforces it.
"""

from .configuration_sparse_dan import SparseDANConfig
from .modeling_sparse_dan import SparseDANForSequenceClassification, SparseDANModel, SparseDANPreTrainedModel
from .pipeline_sparse_dan import SparseDANClassificationPipeline
from .tokenization_sparse_dan import SparseDANTokenizer

__all__ = [
    "SparseDANClassificationPipeline",
    "SparseDANConfig",
    "SparseDANForSequenceClassification",
    "SparseDANModel",
    "SparseDANPreTrainedModel",
    "SparseDANTokenizer",
]
