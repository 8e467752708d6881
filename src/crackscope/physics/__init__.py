"""Physics simulators that generate labelled data: a triangular spring lattice for elastic plates."""

from crackscope.physics.config import CrackSampling, PlateConfig
from crackscope.physics.cracks import Crack, rasterize_mask, sample_cracks
from crackscope.physics.harmonics import HarmonicsResult, simulate_harmonics
from crackscope.physics.harmonics_config import HarmonicsConfig
from crackscope.physics.wavefield import WavefieldResult, simulate_wavefield

__all__ = [
    "PlateConfig",
    "CrackSampling",
    "Crack",
    "simulate_wavefield",
    "WavefieldResult",
    "rasterize_mask",
    "sample_cracks",
    "HarmonicsConfig",
    "HarmonicsResult",
    "simulate_harmonics",
]
