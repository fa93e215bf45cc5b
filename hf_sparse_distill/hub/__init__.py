"""Publishing students on the Hugging Face Hub: the model card (typed card data + template) and the one-commit upload.

Needs the `[hub]` extra (`pip install "hf-sparse-distill[hub]"`): jinja2 for the card, matplotlib for its plot.
"""

from ..extras import require_extra

require_extra("hub", ("jinja2", "matplotlib"), "publishing to the Hub")

from .card import SparseDANModelCardData, build_model_card  # noqa: E402
from .push import push_student, save_for_hub  # noqa: E402

__all__ = ["SparseDANModelCardData", "build_model_card", "push_student", "save_for_hub"]
