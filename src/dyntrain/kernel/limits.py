"""Size limits: one wording for every refusal — what was sent, the limit, and the setting that changes it.

Every limit is a server setting (``config.Settings``, env ``DYNTRAIN_*``); a refusal is a
:class:`~dyntrain.kernel.errors.TooLarge` (HTTP 413) — or, for one bad file among several, a
per-file reason inside the 422 that rejects the batch.

>>> exceeded("the CSV has more than 10 rows", 10, "max_csv_rows").message
'the CSV has more than 10 rows; the limit is 10 (server setting DYNTRAIN_MAX_CSV_ROWS)'
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from .errors import TooLarge

__all__ = ["exceeded", "setting_env", "limit_rows"]

T = TypeVar("T")


def setting_env(setting: str) -> str:
    """The environment variable of a server setting: ``max_csv_rows`` → ``DYNTRAIN_MAX_CSV_ROWS``."""
    return "DYNTRAIN_" + setting.upper()


def exceeded(what: str, limit: int, setting: str, hint: str = "") -> TooLarge:
    """The error to raise: ``what`` says what was sent, ``hint`` an alternative to raising the limit."""
    return TooLarge(f"{what}; the limit is {limit} (server setting {setting_env(setting)})"
                    + (f" — {hint}" if hint else ""))


def limit_rows(rows: Iterable[T], limit: int | None, source: str = "the file") -> Iterator[T]:
    """Yield ``rows`` and stop with :class:`TooLarge` at the first row past ``limit`` (None = no limit).

    Lazy, so a huge CSV is refused after reading ``limit + 1`` rows, not all of them.

    >>> list(limit_rows(iter("abc"), 3))
    ['a', 'b', 'c']
    """
    for n, row in enumerate(rows, 1):
        if limit is not None and n > limit:
            raise exceeded(f"{source} has more than {limit} rows", limit, "max_csv_rows",
                           "split it into several files")
        yield row
