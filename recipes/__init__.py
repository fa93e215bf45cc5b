"""Distillation recipes shipped with the package (`hf-sparse-distill distill NAME` finds `NAME.yaml` here)."""
