"""The optional sponge layer absorbs waves; damping and sponge leave the early wave untouched."""

import numpy as np

from crackscope.physics import PlateConfig, simulate_wavefield


def test_sponge_layer_absorbs_what_reaches_the_edges():
    base = PlateConfig(width=24e-6, height=24e-6, n_time=1200, dtype="float64")
    free = simulate_wavefield(base, [[]])
    sponge = simulate_wavefield(base.replace(sponge_width=6e-6, sponge_strength=1.0), [[]])
    t = free.time.numpy()
    c_p = free.c_p
    # Early: near the source, before any wave could reach the sponge (starting 6 µm from the
    # top, bottom and right edges) and come back, both runs agree.
    near_source = [36, 45, 27]  # left column, middle rows
    travel = (2 * 6e-6) / c_p
    early = t < travel
    scale = np.abs(free.signals.numpy()).max()
    np.testing.assert_allclose(
        sponge.signals[0, :, near_source][..., early].numpy(),
        free.signals[0, :, near_source][..., early].numpy(),
        atol=1e-6 * scale,
    )
    # Late: after several crossings, what is left in the plate is a small fraction.
    late = t > 0.6 * t[-1]
    rms_free = np.sqrt((free.signals[..., late].numpy() ** 2).mean())
    rms_sponge = np.sqrt((sponge.signals[..., late].numpy() ** 2).mean())
    assert rms_sponge < 0.25 * rms_free
