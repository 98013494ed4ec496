"""Torch networks on camera lattices: layers, γ-PhysNet, FLOP counting."""

from .layers import (
    ChannelAttention,
    DualAttention,
    LatticeBatchNorm,
    LatticeConv,
    LatticePool,
    SpatialAttention,
    from_grid,
    lattice_pool,
    to_grid,
)
from .physnet import PRESETS, TARGET_OFFSET, TARGET_SCALE, GammaPhysNet

__all__ = [
    "ChannelAttention",
    "DualAttention",
    "GammaPhysNet",
    "LatticeBatchNorm",
    "LatticeConv",
    "LatticePool",
    "PRESETS",
    "SpatialAttention",
    "TARGET_OFFSET",
    "TARGET_SCALE",
    "from_grid",
    "lattice_pool",
    "to_grid",
]
