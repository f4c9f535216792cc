"""Fits hold BLAS and OpenMP to one thread, through a controller made again only when needed."""

import sys
import types

from threadpoolctl import threadpool_info

from dyntrain.learners import threads


def _threads(api: str) -> dict[str, int]:
    return {lib["filepath"]: lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == api}


def test_one_thread_limits_every_blas_and_openmp_pool_then_restores_it():
    threads._controller()  # made now (SciPy's and scikit-learn's pools loaded with it) ...
    import cv2  # noqa: F401  (... then OpenCV brings its own OpenBLAS, which must be held too)

    before = {api: _threads(api) for api in ("blas", "openmp")}
    assert len(before["blas"]) >= 2, "NumPy, SciPy and OpenCV each load an OpenBLAS"
    with threads.one_thread("blas"):
        assert set(_threads("blas").values()) == {1}, _threads("blas")
        assert _threads("openmp") == before["openmp"]  # only what was asked
    with threads.one_thread():
        assert set(_threads("blas").values()) | set(_threads("openmp").values()) == {1}
    assert {api: _threads(api) for api in ("blas", "openmp")} == before


def test_the_controller_is_kept_until_a_module_is_imported():
    first = threads._controller()
    assert threads._controller() is first
    sys.modules["_dyntrain_test_new_module"] = types.ModuleType("_dyntrain_test_new_module")
    try:
        assert threads._controller() is not first
    finally:
        del sys.modules["_dyntrain_test_new_module"]
