import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

TINY_STORE_SAMPLES = 6


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory):
    """A finished 6-sample store of the tiny preset (seed 0, batch 3), shared by the data tests."""
    from crackscope.data.wavefield_store import generate_wavefield_store
    from crackscope.physics.config import PlateConfig

    path = tmp_path_factory.mktemp("tiny-store") / "s.zarr"
    generate_wavefield_store(path, PlateConfig.preset("tiny"), TINY_STORE_SAMPLES, seed=0, batch=3)
    return path


@pytest.fixture(scope="session")
def cli():
    """cli(*args, env=None, timeout=600) -> the CompletedProcess of ``python -m crackscope.cli *args``.

    The command as a user meets it, in a fresh interpreter (a fault hook may SIGKILL it): arguments
    are passed through str(), stdout and stderr captured as text, Matplotlib on Agg and OpenMP on one
    thread; ``env`` adds to the environment."""

    def run(*args, env=None, timeout=600):
        return subprocess.run(
            [sys.executable, "-m", "crackscope.cli", *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", **(env or {})},
        )

    return run


@pytest.fixture(scope="session")
def read_store():
    """read_store(path, *names) -> {name: numpy array} read straight from Zarr, bypassing crackscope."""
    import zarr

    def read(path, *names):
        group = zarr.open_group(str(path), mode="r")
        return {name: np.asarray(group[name][...]) for name in names}

    return read


@pytest.fixture(scope="module")
def one_numba_thread():
    """Numba kernels on one thread for a module (``pytestmark = pytest.mark.usefixtures(...)``).

    Results do not depend on the thread count; one thread avoids barrier stalls when other jobs
    share the CPU (parallel kernels then run up to ~100x slower)."""
    numba = pytest.importorskip("numba")
    import torch

    torch_threads = torch.get_num_threads()
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    # starting numba's 'omp' threading layer can set the OpenMP thread count that PyTorch reads
    torch.set_num_threads(torch_threads)
    yield
    numba.set_num_threads(before)
    torch.set_num_threads(torch_threads)


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one thread for a module: tiny convolutions run much faster than on threads that
    compete with other jobs for the shared cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


CRACK_PHOTOS = {"wide": (9, 2), "thin": (3, 1), "plain": (0, 3)}  # name -> (drawn crack width px, seed)


def draw_crack_photo(path, width_px: int, seed: int, size=(320, 448)) -> float:
    """A photo of a crack made by hand: grey asphalt-like noise with one dark sinusoidal crack of
    ``width_px`` drawn across it (none for 0), saved as JPEG. Returns the drawn crack's length in px
    (the polyline's, centre line tip to tip): the reference its measured length is checked against.
    The shipped crack pair finds such a crack (and nothing on the plain noise)."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    h, w = size
    noise = 0.55 + 0.08 * rng.standard_normal((h, w))
    grey = Image.fromarray((np.clip(noise, 0, 1) * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.2))
    rgb = Image.merge("RGB", [grey] * 3)
    if not width_px:
        rgb.save(path, quality=92)
        return 0.0
    xs = np.linspace(30, w - 30, 30)
    ys = h / 2 + 50 * np.sin(xs / 70.0 + seed)
    ImageDraw.Draw(rgb).line(list(zip(xs.tolist(), ys.tolist())), fill=(35, 35, 35), width=width_px, joint="curve")
    rgb.save(path, quality=92)
    return float(np.hypot(np.diff(xs), np.diff(ys)).sum())


@pytest.fixture(scope="session")
def draw_crack_photos():
    """draw_crack_photos(folder) -> {name: (path, drawn length px)}: the :data:`CRACK_PHOTOS` (a wide
    crack, a thin one, none) drawn into ``folder``; worst first by construction: wide, thin, plain."""
    from pathlib import Path

    def make(folder):
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return {
            name: (folder / f"{name}.jpg", draw_crack_photo(folder / f"{name}.jpg", width, seed))
            for name, (width, seed) in CRACK_PHOTOS.items()
        }

    return make


@pytest.fixture
def crack_photos(tmp_path, draw_crack_photos):
    """crack_photos(folder=None): :func:`draw_crack_photos` into ``folder`` (default TMP/photos)."""
    return lambda folder=None: draw_crack_photos(folder or tmp_path / "photos")
