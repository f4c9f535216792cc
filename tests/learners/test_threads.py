"""Fits hold BLAS and OpenMP to one thread, through threadpoolctl's kept controller."""

import subprocess
import sys
import textwrap

import threadpoolctl

from dyntrain.learners import threads


def test_every_pool_is_held_to_one_thread_and_restored_also_one_loaded_later():
    # In a fresh interpreter: in this one another test may have loaded OpenCV already.
    script = textwrap.dedent("""
        import sys
        from threadpoolctl import threadpool_info
        from dyntrain.learners.threads import one_thread
        import sklearn.linear_model  # NumPy's and SciPy's OpenBLAS, scikit-learn's OpenMP

        def pools(api):
            return {p["filepath"]: p["num_threads"] for p in threadpool_info() if p["user_api"] == api}

        with one_thread("blas"):
            pass  # the controller is made now ...
        assert "cv2" not in sys.modules
        import cv2  # ... and OpenCV brings its own OpenBLAS after it: held as well
        before = {api: pools(api) for api in ("blas", "openmp")}
        assert len(before["blas"]) >= 3, before
        assert max(before["blas"].values()) > 1, before  # else there is nothing to hold
        with one_thread("blas"):
            assert set(pools("blas").values()) == {1}, pools("blas")
            assert pools("openmp") == before["openmp"]  # only what was asked
        with one_thread():
            assert set(pools("blas").values()) | set(pools("openmp").values()) == {1}
        assert {api: pools(api) for api in ("blas", "openmp")} == before
        print("held")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "held", done.stderr[-2000:]


def test_no_new_controller_per_fit(monkeypatch):
    with threads.one_thread("blas"):
        pass
    made = []
    real = threadpoolctl.ThreadpoolController.__init__
    monkeypatch.setattr(threadpoolctl.ThreadpoolController, "__init__",
                        lambda self, *a, **k: (made.append(1), real(self, *a, **k))[1])
    for _ in range(5):
        with threads.one_thread("blas"):
            pass
    assert made == []
