"""One thread for BLAS and OpenMP while our small models fit.

On 2 shared cores a second BLAS or OpenMP thread mostly waits for the other core (serving,
feature extraction): a 60x1024 logistic regression took 0.1 s with one OpenBLAS thread and 5-7 s
with two. Every fit therefore runs inside :func:`one_thread`.

>>> with one_thread("blas"):  # doctest: +SKIP
...     model.fit(X, y)
"""

from __future__ import annotations

__all__ = ["one_thread"]


def one_thread(user_api: str | None = None):
    """A context manager holding the thread pools of ``user_api`` ("blas", "openmp"; None: both)
    to one thread, restoring them on exit."""
    # threadpoolctl's kept controller, not threadpool_limits: that one scans every loaded library
    # each time (2.5-4 ms), 0.08 s of a 1.1 s incremental retrain's 22 fits. The kept one is made
    # again when a module was imported since, so a library loaded later (OpenCV's own OpenBLAS)
    # is held too. Imported here: threadpoolctl comes with the train extra, serving has none.
    from threadpoolctl import get_cached_controller

    return get_cached_controller().limit(limits=1, user_api=user_api)
