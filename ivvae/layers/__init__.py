"""Building blocks of the IV-VAE family, each small and testable alone.

Feature maps are always 5-D, ``(batch, channels, time, height, width)``. A model has one or two
*branches* (the keyframe and temporal halves of IV-VAE); their channels sit side by side, branch
after branch, and every layer here knows how many branches share the channel axis.
"""

from .attention import BranchAttention, SpatialAttention
from .blocks import ResidualBlock
from .conv import BranchConv, FrameConv2d, make_frame_conv
from .norm import RMSNorm
from .pac import ParallelAtrousConv
from .resample import Downsample, Upsample
from .temporal import CausalConv3d, GroupCausalConv3d, StreamingModule, load_stream_states, stream, stream_states

__all__ = [
    "BranchAttention",
    "BranchConv",
    "CausalConv3d",
    "Downsample",
    "FrameConv2d",
    "GroupCausalConv3d",
    "ParallelAtrousConv",
    "RMSNorm",
    "ResidualBlock",
    "SpatialAttention",
    "StreamingModule",
    "Upsample",
    "load_stream_states",
    "make_frame_conv",
    "stream",
    "stream_states",
]
