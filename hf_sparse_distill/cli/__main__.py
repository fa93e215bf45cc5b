"""`python -m hf_sparse_distill.cli` = `hf-sparse-distill` (used under `accelerate launch -m`)."""

from . import run

run()
