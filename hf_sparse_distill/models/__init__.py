"""Model architectures that ship to the Hub next to their weights (one subpackage per model type)."""
