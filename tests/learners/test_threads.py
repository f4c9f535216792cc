"""Fits hold BLAS and OpenMP to one thread, through one controller made once."""

from threadpoolctl import threadpool_info

from dyntrain.learners import threads


def _threads(api: str) -> dict[str, int]:
    return {lib["filepath"]: lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == api}


def test_one_thread_limits_every_blas_and_openmp_pool_then_restores_it():
    with threads.one_thread():  # makes the controller: SciPy's and scikit-learn's pools are loaded by then
        pass
    before = {api: _threads(api) for api in ("blas", "openmp")}
    assert before["blas"], "no BLAS found: NumPy and SciPy each load an OpenBLAS"
    with threads.one_thread("blas"):
        assert set(_threads("blas").values()) == {1}
        assert _threads("openmp") == before["openmp"]  # only what was asked
    with threads.one_thread():
        assert set(_threads("blas").values()) | set(_threads("openmp").values()) == {1}
    assert {api: _threads(api) for api in ("blas", "openmp")} == before


def test_the_controller_is_made_once():
    assert threads._controller() is threads._controller()
