"""entropylab: entropy in RL of reasoning language models."""

__version__ = "0.1.0"
