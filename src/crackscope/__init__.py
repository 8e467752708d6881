"""crackscope: deep-learning detection of defects and micro-cracks."""
import os as _os
import sys as _sys

__version__ = "0.1.0"


def _prefer_numba_workqueue() -> None:
    """Run numba's parallel kernels on its own thread pool ('workqueue') unless the user chose a
    threading layer (NUMBA_THREADING_LAYER).

    numba's default, the 'omp' layer, shares the OpenMP runtime with PyTorch: starting it sets the
    OpenMP thread count to numba's (all cores), so ``torch.get_num_threads()`` changes from 1 to 2
    on this 2-core machine, PyTorch's small operations then run ~100x slower next to numba's idle
    threads, and convolutions run on more threads (another summation order) than asked for.
    """
    if "NUMBA_THREADING_LAYER" in _os.environ:
        return
    _os.environ["NUMBA_THREADING_LAYER"] = "workqueue"  # read when numba is imported; also for subprocesses
    numba = _sys.modules.get("numba")
    if numba is not None:  # imported before crackscope: its config is read already, its threads not started
        numba.config.THREADING_LAYER = "workqueue"


_prefer_numba_workqueue()
