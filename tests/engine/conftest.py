import os
import subprocess
import sys
from pathlib import Path

import pytest

KILLED_TRAIN = Path(__file__).with_name("_killed_train.py")


@pytest.fixture(scope="session")
def killed_training():
    """killed_training(config_file, epochs=1) -> the CompletedProcess of a training run of ``config_file`` in a fresh
    interpreter, SIGKILLed right after epoch ``epochs``'s checkpoints are written (see _killed_train.py).

    The environment is that of the ``cli`` fixture: Matplotlib on Agg, OpenMP on one thread."""

    def run(config_file, epochs: int = 1, timeout=600):
        return subprocess.run(
            [sys.executable, str(KILLED_TRAIN), str(config_file), str(epochs)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"},
        )

    return run
