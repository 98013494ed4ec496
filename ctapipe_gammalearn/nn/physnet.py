"""γ-PhysNet: multitask residual CNN with dual attention on a camera lattice.

``forward(image, peak_time)`` takes raw DL1 (p.e., ns; NaN allowed) and returns
the tuple of ``modelcard.OUTPUT_NAMES`` in physical units. The regression
heads predict normalised quantities, rescaled inside::

    physical = target_offset[name] + target_scale[name] * normalised
    logvar_physical = logvar_normalised + 2 * ln(target_scale[name])

so a training loss can work on ``(physical - offset) / scale`` (see
`GammaPhysNet.normalise`). The direction is assembled Hillas+disp-like around
the image centroid (`ImageMoments`), in units of its scale: see `forward`.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..modelcard import CLASS_NAMES
from ..presets import PRESETS
from .layers import DualAttention, LatticeBatchNorm, LatticeConv, from_grid, lattice_pool, pixel_sum, to_grid
from .moments import ImageMoments

__all__ = ["GammaPhysNet", "PRESETS", "TARGET_SCALE", "TARGET_OFFSET", "ResidualBlock"]

#: physical = offset + scale * normalised (units of the outputs: log10(E/TeV), deg, m)
TARGET_SCALE = {"log10_energy": 1.0, "fov_offset": 1.0, "impact": 100.0}
TARGET_OFFSET = {"log10_energy": 0.0, "fov_offset": 0.0, "impact": 0.0}

#: peak times relative to the charge-weighted mean time, in units of this (ns)
TIME_SCALE_NS = 10.0
TIME_CLIP = 5.0
N_INPUT_CHANNELS = 3  # scaled charge, relative time, pixel validity


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN, dual attention, shortcut, ReLU."""

    def __init__(self, in_channels, out_channels, lattice, impl="auto", attention_reduction=4):
        super().__init__()
        self.conv1 = LatticeConv(in_channels, out_channels, lattice, impl=impl, bias=False)
        self.bn1 = LatticeBatchNorm(out_channels, lattice)
        self.conv2 = LatticeConv(out_channels, out_channels, lattice, impl=impl, bias=False)
        self.bn2 = LatticeBatchNorm(out_channels, lattice)
        self.attention = DualAttention(out_channels, lattice, attention_reduction, impl=impl)
        if in_channels != out_channels:
            # pointwise: exact in both layouts and keeps empty cells at zero
            self.shortcut = nn.Sequential(
                _Pointwise(in_channels, out_channels),
                LatticeBatchNorm(out_channels, lattice),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.attention(self.bn2(self.conv2(out)))
        return F.relu(out + self.shortcut(x))


class _Pointwise(nn.Module):
    """1x1 convolution without bias, for either layout."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, x):
        shape = x.shape
        out = torch.matmul(self.weight, x.flatten(2))
        if x.dim() == 4:
            return out.reshape(-1, self.weight.shape[0], shape[2], shape[3])
        return out


class PositionPooling(nn.Module):
    """Where the light is: global features that keep the camera position.

    Sum pooling is blind to where the image lies in the camera, which the
    direction and impact heads need. Here ``n_maps`` learned maps, each
    softmax-normalised over the pixels of the full-resolution lattice, give
    expected positions (axial lattice coordinates, centred and scaled).
    ``forward(x)`` takes the features in pixel layout (N, C, P).
    """

    def __init__(self, channels, lattice, n_maps=4):
        super().__init__()
        coords = torch.as_tensor(np.asarray(lattice.coords, dtype=np.float32))
        coords = (coords - coords.mean(dim=0)) / coords.std(dim=0).clamp(min=1.0)
        self.register_buffer("coords", coords, persistent=False)
        self.proj = _Pointwise(channels, n_maps)
        self.n_features = 2 * n_maps

    def forward(self, x):
        weight = torch.softmax(self.proj(x), dim=2)  # (N, K, P)
        return torch.matmul(weight, self.coords).flatten(1)  # (N, 2K)


def _head(in_features, hidden, out_features):
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, out_features))


class GammaPhysNet(nn.Module):
    """γ-PhysNet for one camera.

    Parameters
    ----------
    lattice : ctapipe_gammalearn.lattice.Lattice
    preset : str
        key of `PRESETS`
    **overrides
        ``channels`` (per stage), ``blocks`` (per stage), ``pool_steps``
        (lattice halvings between stages), ``head_hidden``,
        ``attention_reduction``, ``cleaning`` (picture and boundary
        thresholds in p.e. of the image moments' tailcuts, see `ImageMoments`),
        ``impl`` ("auto", "grid", "gather"; the same numbers either way).

    ``model.config`` rebuilds the model: ``GammaPhysNet(lattice, **model.config)``.
    """

    def __init__(self, lattice, preset="small", **overrides):
        super().__init__()
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}, choose from {sorted(PRESETS)}")
        unknown = set(overrides) - set(PRESETS[preset]) - {"impl"}
        if unknown:
            raise ValueError(f"unknown GammaPhysNet options: {sorted(unknown)}")
        cfg = dict(PRESETS[preset], impl="auto")
        cfg.update(overrides)
        cfg["channels"] = [int(c) for c in cfg["channels"]]
        cfg["blocks"] = [int(b) for b in cfg["blocks"]]
        cfg["cleaning"] = [float(v) for v in cfg["cleaning"]]
        if len(cfg["channels"]) != len(cfg["blocks"]):
            raise ValueError("channels and blocks need one entry per stage")
        self.config = dict(preset=preset, **cfg)
        impl = cfg["impl"]
        self.n_pixels = int(lattice.n_pixels)
        self.camera_name = lattice.camera_name
        self.class_names = CLASS_NAMES
        self.target_scale = dict(TARGET_SCALE)
        self.target_offset = dict(TARGET_OFFSET)
        self.time_scale_ns = TIME_SCALE_NS
        self.time_clip = TIME_CLIP

        self.stem = LatticeConv(N_INPUT_CHANNELS, cfg["channels"][0], lattice, impl=impl, bias=False)
        self.stem_bn = LatticeBatchNorm(cfg["channels"][0], lattice)
        # the grid layout is kept through the network where the stem uses it
        self.on_grid = self.stem.use_grid
        self.grid_shape = self.stem.grid_shape
        self.register_buffer("cell_pixel", self.stem.cell_pixel.clone(), persistent=False)
        self.register_buffer(
            "grid_index", torch.as_tensor(np.asarray(lattice.grid_index, dtype=np.int64)), persistent=False
        )

        # each stage after the first starts with a lattice pooling
        stages = []
        in_ch = cfg["channels"][0]
        current = lattice
        for i, (ch, n_blocks) in enumerate(zip(cfg["channels"], cfg["blocks"])):
            layers = []
            if i > 0:
                pool, current = lattice_pool(current, int(cfg["pool_steps"]), "max")
                layers.append(pool)
            for _ in range(n_blocks):
                layers.append(ResidualBlock(in_ch, ch, current, impl, cfg["attention_reduction"]))
                in_ch = ch
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.n_final_pixels = int(current.n_pixels)

        self.position = PositionPooling(cfg["channels"][0], lattice)
        self.moments = ImageMoments(cfg["channels"][0], lattice, *cfg["cleaning"])
        # `features` columns: channel means and light positions (learnt), then the image
        # moments (computed from the cleaned charge: no training moves them)
        self.n_learnt_features = in_ch + self.position.n_features
        n_features = self.n_learnt_features + ImageMoments.N_FEATURES
        hidden = int(cfg["head_hidden"])
        self.classifier = _head(n_features, hidden, len(CLASS_NAMES))
        self.energy = _head(n_features + 1, hidden, 2)  # value, logvar; also gets |disp|
        # |disp|, sign, correction across the axis, 2 logvars (see forward)
        self.direction = _head(n_features, hidden, 5)
        self.impact = _head(n_features, hidden, 4)
        self.direction_terms = None  # set by each training forward, see forward
        # domain adaptation (training.domain) switches this on: training forwards then
        # leave their pooled features in ``domain_features``; inputs and outputs unchanged
        self.keep_features = False
        self.domain_features = None

        names = ("log10_energy", "fov_offset", "impact")
        self.register_buffer("_scales", torch.tensor([TARGET_SCALE[k] for k in names]), persistent=False)
        self.register_buffer("_offsets", torch.tensor([TARGET_OFFSET[k] for k in names]), persistent=False)

    def normalise_inputs(self, image, peak_time):
        """Raw DL1 -> (N, 3, P): sign·log1p charge, relative time, validity."""
        valid = torch.isfinite(image) & torch.isfinite(peak_time)
        zero = torch.zeros_like(image)
        charge = torch.where(valid, image, zero)
        time = torch.where(valid, peak_time, zero)
        scaled = torch.sign(charge) * torch.log(1.0 + torch.abs(charge))
        weight = torch.clamp(charge, min=0.0)
        total = weight.sum(dim=1, keepdim=True)
        # charge-weighted mean time; plain mean over valid pixels for empty images
        n_valid = torch.clamp(valid.to(image.dtype).sum(dim=1, keepdim=True), min=1.0)
        plain = time.sum(dim=1, keepdim=True) / n_valid
        weighted = (weight * time).sum(dim=1, keepdim=True) / torch.clamp(total, min=1e-6)
        t0 = torch.where(total > 0, weighted, plain)
        rel = torch.clamp((time - t0) / self.time_scale_ns, -self.time_clip, self.time_clip)
        rel = torch.where(valid, rel, zero)
        return torch.stack([scaled, rel, valid.to(image.dtype)], dim=1)

    def features(self, image, peak_time):
        """Pooled features (N, F), image centroid (N, 2, deg) and main axis (N, 2)."""
        inputs = self.normalise_inputs(image, peak_time)
        x = inputs
        if self.on_grid:
            x = to_grid(x, self.cell_pixel, self.grid_shape)
        x = F.relu(self.stem_bn(self.stem(x)))
        # replaced after the first stage; Tensors for TorchScript
        pooled = inputs[:, 0, :0]
        centroid = inputs[:, 0, :2]
        axis = centroid
        charge = torch.where(inputs[:, 2] > 0, image, torch.zeros_like(image))
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i == 0:  # still on the full-resolution lattice
                pixels = from_grid(x, self.grid_index) if x.dim() == 4 else x
                moments, centroid, axis = self.moments(pixels, charge, inputs[:, 1])
                pooled = torch.cat([self.position(pixels), moments], dim=1)
        return torch.cat([pixel_sum(x) / self.n_final_pixels, pooled], dim=1), centroid, axis

    def forward(self, image, peak_time):
        f, centroid, axis = self.features(image, peak_time)
        s_e, s_d, s_i = self._scales[0], self._scales[1], self._scales[2]
        o_e, o_i = self._offsets[0], self._offsets[2]
        class_logits = self.classifier(f)
        direction = self.direction(f)
        magnitude = F.softplus(direction[:, 0])
        # the predicted |disp| stands in for the impact distance, on which the light yield
        # depends; detached, so that the energy cannot pull on the direction
        energy = self.energy(torch.cat([f, magnitude.detach().unsqueeze(1)], dim=1))
        impact = self.impact(f)
        log10_energy = o_e + s_e * energy[:, 0]
        log10_energy_logvar = energy[:, 1] + 2.0 * torch.log(s_e)
        # Hillas+disp made differentiable: centroid + signed disp along the
        # main axis + a correction across it (all in units of s_d)
        disp = magnitude * torch.tanh(direction[:, 1])
        if self.training and not torch.jit.is_scripting():
            if self.keep_features:
                self.domain_features = f
            # for the loss (training.losses.disp_loss): with the sign still random, the
            # best |disp| for the position alone is zero, which then stalls the sign
            # too; |disp| and its sign are also learnt separately
            self.direction_terms = {
                "centroid": centroid,
                "axis": axis,
                "disp_magnitude": s_d * magnitude,
                "disp_sign_logit": 2.0 * direction[:, 1],  # tanh(x) = 2 sigmoid(2x) - 1
            }
        across = torch.stack([-axis[:, 1], axis[:, 0]], dim=1)
        fov_offset = centroid + s_d * (disp.unsqueeze(1) * axis + direction[:, 2:3] * across)
        fov_offset_logvar = direction[:, 3:] + 2.0 * torch.log(s_d)
        impact_xy = o_i + s_i * impact[:, :2]
        impact_logvar = impact[:, 2:] + 2.0 * torch.log(s_i)
        return (
            class_logits,
            log10_energy,
            log10_energy_logvar,
            fov_offset,
            fov_offset_logvar,
            impact_xy,
            impact_logvar,
        )

    def shared_parameter(self):
        """The last backbone weight shared by all heads (where GradNorm measures task gradients)."""
        return self.stages[-1][-1].conv2.weight

    def normalise(self, name: str, value, logvar: bool = False):
        """Physical output or target -> the normalised value the head predicts."""
        scale, offset = self.target_scale[name], self.target_offset[name]
        if logvar:
            return value - 2.0 * math.log(scale)
        return (value - offset) / scale
