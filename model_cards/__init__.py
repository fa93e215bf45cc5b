"""Model card templates, installed as `hf_sparse_distill.model_cards` (see pyproject.toml)."""
