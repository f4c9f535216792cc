"""dyntrain: self-hosted dynamic training for small, changing datasets.

>>> from dyntrain import Client  # doctest: +SKIP
>>> shop = Client("http://127.0.0.1:8000").project("shop")  # doctest: +SKIP
"""

__version__ = "0.1.0"

__all__ = ["__version__", "Client"]


def __getattr__(name: str):
    # The REST client on first use only: importing dyntrain (the server, the CLI) never loads httpx for it.
    if name == "Client":
        from .client import Client

        return Client
    raise AttributeError(f"module 'dyntrain' has no attribute {name!r}")
