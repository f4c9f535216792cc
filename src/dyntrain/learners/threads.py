"""One thread for BLAS and OpenMP while our small models fit.

On 2 shared cores a second BLAS or OpenMP thread mostly waits for the other core (serving,
feature extraction): a 60x1024 logistic regression took 0.1 s with one OpenBLAS thread and 5-7 s
with two. Every fit therefore runs inside :func:`one_thread`.

>>> with one_thread("blas"):  # doctest: +SKIP
...     model.fit(X, y)
"""

from __future__ import annotations

import functools

__all__ = ["one_thread"]


def one_thread(user_api: str | None = None):
    """A context manager holding the thread pools of ``user_api`` ("blas", "openmp"; None: both)
    to one thread, restoring them on exit."""
    return _controller().limit(limits=1, user_api=user_api)


@functools.cache
def _controller():
    # Made once: a controller finds the thread pools by scanning every loaded library, 2.5-4 ms
    # each time, which was 0.08 s of a 1.1 s incremental retrain when made per fit (22 fits).
    # SciPy and scikit-learn are imported first so it finds their OpenBLAS and OpenMP, which are
    # loaded with them; NumPy's OpenBLAS comes with NumPy.
    import scipy.linalg  # noqa: F401
    import sklearn.ensemble  # noqa: F401
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()
