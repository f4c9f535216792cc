"""One thread for BLAS and OpenMP while our small models fit.

On 2 shared cores a second BLAS or OpenMP thread mostly waits for the other core (serving,
feature extraction): a 60x1024 logistic regression took 0.1 s with one OpenBLAS thread and 5-7 s
with two. Every fit therefore runs inside :func:`one_thread`.

>>> with one_thread("blas"):  # doctest: +SKIP
...     model.fit(X, y)
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["one_thread"]


def one_thread(user_api: str | None = None):
    """A context manager holding the thread pools of ``user_api`` ("blas", "openmp"; None: both)
    to one thread, restoring them on exit."""
    return _controller().limit(limits=1, user_api=user_api)


_made: tuple[int, Any] | None = None  # (len(sys.modules) when made, the controller)


def _controller():
    # A controller finds the thread pools by scanning every loaded library, 2.5-4 ms each time:
    # made per fit, that was 0.08 s of a 1.1 s incremental retrain (22 fits). So one is kept, and
    # made again only when a module was imported since: a new library (OpenCV's own OpenBLAS, say)
    # comes with a new extension module. SciPy and scikit-learn are imported first, so their
    # OpenBLAS and OpenMP are found; NumPy's OpenBLAS comes with NumPy.
    global _made
    if _made is None or _made[0] != len(sys.modules):
        import scipy.linalg  # noqa: F401
        import sklearn.ensemble  # noqa: F401
        from threadpoolctl import ThreadpoolController

        _made = (len(sys.modules), ThreadpoolController())
    return _made[1]
