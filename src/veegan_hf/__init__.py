"""VEEGAN as Hugging Face models: load with one line, sample, invert, train with Accelerate, share on the Hub."""

from .modeling_veegan import VEEGANDiscriminator, VEEGANGenerator, VEEGANReconstructor
from .pipeline_veegan import VEEGAN, VEEGANPipelineOutput
from .rejection import RejectionSampling

__all__ = [
    "VEEGAN",
    "RejectionSampling",
    "VEEGANDiscriminator",
    "VEEGANGenerator",
    "VEEGANPipelineOutput",
    "VEEGANReconstructor",
]
__version__ = "0.1.0"
