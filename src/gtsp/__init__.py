"""gtsp: train graph transformers and make them cheap (GTSP, Liu et al. 2024)."""

__version__ = "0.1.0"
