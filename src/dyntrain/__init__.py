"""dyntrain: self-hosted dynamic training for small, changing datasets."""

__version__ = "0.1.0"

__all__ = ["__version__"]
