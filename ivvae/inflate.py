"""Initialising a video VAE from a trained image VAE (method.md, "Initialisation (KTC)").

The image VAE (:class:`~ivvae.models.ImageVAE`: one per-frame 2-D branch) and the video VAEs are
built by the same network code, so every target tensor has a definite source. The rules:

Time
    A 2-D kernel ``W`` becomes a 3-D kernel that is zero on every temporal tap but the one that
    sees the *current* frame: the centre for group causal convs (``[0, W, 0]``, the paper's KTC
    rule, consistent with GCConv padding the first frame ``[x, x, 0]``) and the last tap for plain
    causal convs (``[0, 0, W]``, the paper's *tail* rule for the causal baseline). Either way every
    3-D conv starts as the per-frame 2-D conv, also on the first frame and across chunks.

Halves (two-branch targets)
    Each half starts as an independent copy of the image VAE: the keyframe branch takes the 2-D
    weights, the temporal branch the inflated ones; weights that read the *other* half start at
    zero (branch convs read only their own half; dense 2-D convs, including PAC's, become
    block-diagonal; PAC's fuse conv is block-diagonal too, since PAC regroups its outputs as
    all keyframe parts, then all temporal parts); RMSNorm gammas are tiled; attention blocks are
    copied per half.

New temporal layers
    Temporal downsampling convs (kernel 2, stride 2) *select* one frame of each pair; temporal
    upsampling convs copy their input to both new frames. Biases are zero.

Modes (the latent mapping)
    ``ktc``: image VAE with Z/2 latent channels -> IV-VAE with Z. Latent channels ``0..Z/2-1``
    (keyframe) are the image latent of each group's first frame, ``Z/2..Z-1`` (temporal) the image
    latent of frame ``temporal_frame`` of the group. At initialisation the IV-VAE reconstructs
    frame 0 and the first frame of every group exactly as the image VAE does, and the other three
    frames of a group as the image VAE's reconstruction of frame ``temporal_frame`` of the group:
    a video at 2x effective temporal compression with the image VAE's spatial quality.

    Which frame the temporal branch carries: by default **frame 2 of the group** (the first
    temporal downsampling keeps the first frame of each pair, frames 0 and 2; the second keeps
    the second of those, frame 2). The temporal branch decodes frames 1..3 of the group, and
    frame 2 is their middle: it minimises the largest temporal distance between a decoded frame
    and the frame it copies (1 frame, against 2 for frame 1 or 3). In general the bits of
    ``temporal_frame`` pick, at each temporal downsampling from the first, the first (0) or
    second (1) frame of each pair.

    ``tail``: image VAE with Z channels -> causal baseline (:class:`~ivvae.models.CausalVAE`) with
    Z, single branch, tail rule in time. At initialisation frame 0 is reconstructed as by the
    image VAE, and *every* frame of a group (frames ``1+4g .. 4+4g``) as the image VAE's
    reconstruction of frame ``temporal_frame`` of the group (default 2, i.e. video frame
    ``3+4g``: frames 1 and 2 of the group are as central, and 2 is chosen to match ``ktc``).

    ``same``: image VAE with Z channels -> IV-VAE with Z channels (finding 1's comparison point:
    the image VAE has the video VAE's full latent width). Rule: the image latent of each group's
    *first* frame fills all Z latent channels, keyframe branch channels ``0..Z/2-1`` = image
    latent channels ``0..Z/2-1``, temporal branch channels ``Z/2..Z-1`` = image latent channels
    ``Z/2..Z-1``. For that both encoder halves see the keyframe (``temporal_frame`` is 0), PAC's
    convs give half of the image's head features to each half (each reading its own half) and
    the latent head (PAC fuse, quant conv), the decoder's post-quant conv and first conv map the
    image's dense layers across both halves -- the only weights that read the other half. At
    initialisation every frame of a group is the image VAE's reconstruction of the group's first
    frame (frame 0: of itself): keyframes reconstruct exactly as by the image VAE, and the
    temporal channels carry no temporal information yet (learning it means repurposing latent
    channels the keyframe already uses, which is why the paper finds this start slower).

Nothing is left at random initialisation silently: :func:`inflate` fills every target tensor or
raises :class:`InflationError` naming those it did not fill (and any image-VAE tensor it did not
use), unless ``allow_unfilled=True``; it returns an :class:`InflationReport` either way.

The CLI's ``ivvae inflate IMAGE_VAE_DIR OUT_DIR --mode ktc|tail|same`` is
:func:`inflate_pretrained`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._checks import is_whole_number
from ._files import refuse_nonempty_folder, save_model_folder
from .layers import (
    BranchAttention,
    BranchConv,
    CausalConv3d,
    Downsample,
    FrameConv2d,
    GroupCausalConv3d,
    ParallelAtrousConv,
    RMSNorm,
    Upsample,
)
from .models.causal_vae import CausalVAE
from .models.ivvae import IVVAE

#: Modes of :func:`inflate_image_vae` / :func:`inflate_pretrained` (see the module docstring).
MODES = ("ktc", "tail", "same")

#: Config fields the image VAE and the video VAE must share.
SHARED_FIELDS = (
    "in_channels",
    "base_channels",
    "channel_multipliers",
    "encoder_blocks",
    "decoder_blocks",
    "full_compression_attention",
    "parallel_atrous",
    "atrous_dilations",
)

REPORT_NAME = "inflation_report.json"


class InflationError(ValueError):
    """The image VAE does not fit the target, or target tensors would stay unfilled."""


@dataclass
class InflationReport:
    """What :func:`inflate` did to every tensor.

    Attributes:
        mode: ``ktc``, ``same``, ``tail`` (single causal branch) or ``single`` (another single
            3-D branch, e.g. group causal).
        temporal_frame: the frame of each group the temporal branch (or single branch) carries.
        filled: target tensor -> its source and rule.
        zeroed: blocks set to zero by rule (weights reading the other half, new-layer biases).
        unfilled: target tensors no rule filled (left as they were).
        unused: image-VAE tensors no rule read.
    """

    mode: str
    temporal_frame: int
    filled: dict[str, str] = field(default_factory=dict)
    zeroed: list[str] = field(default_factory=list)
    unfilled: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        lines = [
            f"inflation mode {self.mode}, temporal frame {self.temporal_frame}: {len(self.filled)} tensors filled, "
            f"{len(self.zeroed)} blocks zeroed, {len(self.unfilled)} unfilled, {len(self.unused)} image-VAE tensors unused"
        ]
        for label, names in (("unfilled", self.unfilled), ("unused", self.unused)):
            if names:
                lines.append(f"  {label}: " + ", ".join(names))
        return "\n".join(lines)


# ----------------------------------------------------------------------------------- helpers
def _spec_value(model: nn.Module, name: str) -> Any:
    value = getattr(model.spec, name)
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _check_family(model: Any, role: str) -> None:
    """A model of the IV-VAE family (it has the network spec the rules read), else a TypeError."""
    if not isinstance(model, IVVAE):
        raise TypeError(f"the {role} must be a model of the IV-VAE family (e.g. ivvae.load_model(DIR)), got {type(model).__name__}")


def refuse_writing_over_model(out_dir: str | os.PathLike, model: str | os.PathLike) -> None:
    """An output folder that is, contains or lies inside the input model's folder would overwrite or
    mix with the model it is made from, even with ``overwrite``: refuse it."""
    from .hub import resolve_model_path

    source = resolve_model_path(model).resolve()
    target = Path(out_dir).expanduser().resolve()
    if target == source or source in target.parents or target in source.parents:
        raise ValueError(f"output folder '{out_dir}' would write over the input model folder '{source}'; choose another folder")


def infer_mode(image_vae: nn.Module, target: nn.Module) -> str:
    """The mode that maps ``image_vae`` into ``target``; raises :class:`InflationError` if none does."""
    _check_family(image_vae, "image VAE")
    _check_family(target, "target")
    source, spec = image_vae.spec, target.spec
    if source.branches != ("2d",) or any(source.temporal_downsample):
        raise InflationError(f"the source must be an image VAE (one '2d' branch, no temporal downsampling), got branches {source.branches}")
    differ = [
        f"{name}: image VAE {_spec_value(image_vae, name)}, target {_spec_value(target, name)}"
        for name in SHARED_FIELDS
        if _spec_value(image_vae, name) != _spec_value(target, name)
    ]
    if differ:
        raise InflationError("the image VAE and the target differ in " + "; ".join(differ))
    z_source, z_target = source.latent_channels, spec.latent_channels
    if spec.num_branches == 2 and z_target == 2 * z_source:
        return "ktc"
    if spec.num_branches == 2 and z_target == z_source:
        return "same"
    if spec.num_branches == 1 and z_target == z_source:
        return "tail" if spec.branches == ("causal",) else "single"
    raise InflationError(
        f"no inflation maps an image VAE with Z={z_source} into a {spec.num_branches}-branch model with Z={z_target}: "
        f"two branches need Z={2 * z_source} (ktc) or Z={z_source} (same), one branch Z={z_source} (tail)"
    )


def default_temporal_frame(target: nn.Module, mode: str) -> int:
    """Frame of each group the temporal branch carries: the middle one, or 0 in ``same`` mode."""
    return 0 if mode == "same" else target.temporal_compression // 2


def _time_tap(conv: nn.Module) -> tuple[int | None, str]:
    """The temporal tap that sees the current frame, and the rule's name."""
    if isinstance(conv, GroupCausalConv3d):
        return conv.temporal_kernel // 2, "centre tap"
    if isinstance(conv, CausalConv3d):
        return conv.temporal_kernel - 1, "tail tap"
    return None, "2-D"


def _param_keys(conv: nn.Module, prefix: str) -> tuple[str, str | None]:
    """State-dict keys of a conv's weight and bias, wherever the conv keeps them."""
    names = {id(param): name for name, param in conv.named_parameters()}
    bias = f"{prefix}.{names[id(conv.bias)]}" if conv.bias is not None else None
    return f"{prefix}.{names[id(conv.weight)]}", bias


def _span(index: torch.Tensor) -> str:
    first, last = int(index.min()), int(index.max())
    return f"{first}:{last + 1}" if last - first + 1 == index.numel() else str(index.tolist())


# ----------------------------------------------------------------------------------- the walk
class _Inflater:
    """Walks the target's modules beside the image VAE's, filling the target's state dict."""

    def __init__(self, source: nn.Module, target: nn.Module, mode: str, temporal_frame: int) -> None:
        self.source_state = source.state_dict()
        self.target_state = target.state_dict()
        self.n = target.spec.num_branches
        self.frame = temporal_frame
        self.level = 0  # temporal downsamplings seen so far (encoder order)
        self.moment_convs = {id(target.encoder.quant_conv)}  # rows are [mean | logvar]
        self.out: dict[str, torch.Tensor] = {}
        self.used: set[str] = set()
        self.report = InflationReport(mode=mode, temporal_frame=temporal_frame)

    # -- state access
    def read(self, key: str) -> torch.Tensor:
        self.used.add(key)
        return self.source_state[key].detach().float().cpu()

    def buffer(self, key: str) -> torch.Tensor:
        if key not in self.out:
            self.out[key] = torch.zeros(self.target_state[key].shape, dtype=torch.float32)
        return self.out[key]

    def fill(self, key: str, rule: str) -> None:
        self.report.filled[key] = f"{self.report.filled[key]}; {rule}" if key in self.report.filled else rule

    # -- dispatch
    def visit(self, target: nn.Module, source: nn.Module, prefix: str) -> None:
        handlers = (
            (BranchConv, self.branch_conv),
            (BranchAttention, self.attention),
            (ParallelAtrousConv, self.pac),
            (Downsample, self.downsample),
            (Upsample, self.upsample),
            (RMSNorm, self.norm),
            (FrameConv2d, self.dense),
        )
        for cls, handler in handlers:
            if isinstance(target, cls):
                if not isinstance(source, cls):
                    raise InflationError(f"{prefix}: target is a {type(target).__name__}, the image VAE has a {type(source).__name__}")
                handler(target, source, prefix)
                return
        for name, child in target.named_children():
            source_child = source._modules.get(name)
            if source_child is not None:
                self.visit(child, source_child, f"{prefix}.{name}" if prefix else name)

    # -- the core rule: one output part of a conv from the image VAE's conv
    def rows_for(self, conv: nn.Module, part: int, rows: int, source_rows: int, key: str) -> torch.Tensor:
        """Source rows of output part ``part`` (a branch) with ``rows`` rows."""
        if rows == source_rows:
            return torch.arange(source_rows)
        if rows * self.n != source_rows:
            raise InflationError(f"{key}: {rows} output channels per half cannot come from {source_rows}")
        if id(conv) in self.moment_convs:  # each half gets its share of the means and of the log-variances
            half, share = source_rows // 2, source_rows // 2 // self.n
            own = torch.arange(part * share, (part + 1) * share)
            return torch.cat([own, half + own])
        return torch.arange(part * rows, (part + 1) * rows)

    def cols_for(self, part: int, columns: int, source_columns: int, key: str) -> torch.Tensor:
        """Target input columns that read the source's input columns (own half, or shared input)."""
        if columns == source_columns:
            return torch.arange(source_columns)
        if columns != self.n * source_columns:
            raise InflationError(f"{key}: {columns} input channels cannot read the image VAE's {source_columns}")
        return part * source_columns + torch.arange(source_columns)

    def conv_part(
        self,
        keys: tuple[str, str | None],
        source_prefix: str,
        part: int,
        row_offset: int,
        rows: int,
        tap: int | None,
        tap_rule: str,
        owner: nn.Module,
    ) -> None:
        """Fill rows ``row_offset..+rows`` (output part ``part``) of a target conv from the image VAE's conv."""
        weight_key, bias_key = keys
        source_weight = self.read(f"{source_prefix}.weight")
        weight = self.buffer(weight_key)
        source_rows = self.rows_for(owner, part, rows, source_weight.shape[0], weight_key)
        cols = self.cols_for(part, weight.shape[1], source_weight.shape[1], weight_key)
        block = weight[row_offset : row_offset + rows]
        if tap is not None:
            block = block.select(2, tap)
        block[:, cols] = source_weight[source_rows]
        own = "own half" if cols.numel() < weight.shape[1] else "all inputs"
        self.fill(
            weight_key,
            f"{source_prefix}.weight rows {_span(source_rows)} -> rows {row_offset}:{row_offset + rows}, {tap_rule}, reads {own}",
        )
        if cols.numel() < weight.shape[1]:
            other = torch.ones(weight.shape[1], dtype=torch.bool)
            other[cols] = False
            self.report.zeroed.append(
                f"{weight_key}[{row_offset}:{row_offset + rows}, {_span(other.nonzero().flatten())}] (reads the other half)"
            )
        if bias_key is not None:
            bias = self.buffer(bias_key)
            bias[row_offset : row_offset + rows] = self.read(f"{source_prefix}.bias")[source_rows]
            self.fill(bias_key, f"{source_prefix}.bias rows {_span(source_rows)}")

    # -- handlers
    def branch_conv(self, target: BranchConv, source: BranchConv, prefix: str) -> None:
        (source_name,) = source.convs.keys()
        source_prefix = f"{prefix}.convs.{source_name}"
        for part, (name, conv) in enumerate(target.convs.items()):
            tap, rule = _time_tap(conv)
            self.conv_part(_param_keys(conv, f"{prefix}.convs.{name}"), source_prefix, part, 0, conv.weight.shape[0], tap, rule, target)

    def dense(self, target: FrameConv2d, source: FrameConv2d, prefix: str) -> None:
        rows = target.weight.shape[0] // self.n
        for part in range(self.n):
            self.conv_part(_param_keys(target, prefix), prefix, part, part * rows, rows, None, "2-D", target)

    def norm(self, target: RMSNorm, source: RMSNorm, prefix: str) -> None:
        gamma = self.read(f"{prefix}.gamma")
        repeats = target.gamma.shape[0] // gamma.shape[0]
        self.out[f"{prefix}.gamma"] = gamma.repeat(repeats, *([1] * (gamma.dim() - 1)))
        self.fill(f"{prefix}.gamma", f"{prefix}.gamma tiled x{repeats}")

    def attention(self, target: BranchAttention, source: BranchAttention, prefix: str) -> None:
        (source_name,) = source.blocks.keys()
        for name, block in target.blocks.items():
            for param_name, _ in block.named_parameters():
                key, source_key = f"{prefix}.blocks.{name}.{param_name}", f"{prefix}.blocks.{source_name}.{param_name}"
                self.out[key] = self.read(source_key).clone()
                self.fill(key, f"{source_key} copied")

    def pac(self, target: ParallelAtrousConv, source: ParallelAtrousConv, prefix: str) -> None:
        for k, (conv, source_conv) in enumerate(zip(target.convs, source.convs, strict=True)):
            self.dense(conv, source_conv, f"{prefix}.convs.{k}")
        width, source_width, num_convs = target.out_width, source.out_width, len(target.convs)
        if width == source_width:  # each half's parts copy the image's: block-diagonal fuse
            self.dense(target.fuse, source.fuse, f"{prefix}.fuse")
            return
        # Split (mode 'same'): half b of conv k holds the image conv's channels b*width..; PAC
        # regroups [all keyframe parts | all temporal parts], so the fuse's columns are permuted.
        cols = torch.tensor(
            [(c // width) * num_convs * width + k * width + c % width for k in range(num_convs) for c in range(source_width)]
        )
        key = f"{prefix}.fuse.weight"
        self.buffer(key)[:, cols] = self.read(key)
        self.out[f"{prefix}.fuse.bias"] = self.read(f"{prefix}.fuse.bias").clone()
        self.fill(key, f"{key} with columns regrouped keyframe-then-temporal")
        self.fill(f"{prefix}.fuse.bias", f"{prefix}.fuse.bias copied")

    def downsample(self, target: Downsample, source: Downsample, prefix: str) -> None:
        self._spatial(target, source, prefix)
        if not target.temporal:
            return
        pick = (self.frame >> self.level) & 1
        for name, conv in target.time_convs.items():
            weight = torch.zeros(conv.weight.shape)
            weight[:, :, pick, 0, 0] = torch.eye(conv.weight.shape[0])
            self._new_layer(
                f"{prefix}.time_convs.{name}", weight, f"selects frame {pick} of each pair (temporal downsampling {self.level})"
            )
        self.level += 1

    def upsample(self, target: Upsample, source: Upsample, prefix: str) -> None:
        self._spatial(target, source, prefix)
        if not target.temporal:
            return
        for name, conv in target.time_convs.items():
            width = conv.weight.shape[1]
            weight = torch.eye(width).repeat(2, 1)[:, :, None, None, None]
            self._new_layer(f"{prefix}.time_convs.{name}", weight, "copies its input to both new frames")

    def _spatial(self, target: nn.Module, source: nn.Module, prefix: str) -> None:
        (source_name,) = source.spatial.keys()
        for name in target.spatial.keys():
            for suffix in ("weight", "bias"):
                key, source_key = f"{prefix}.spatial.{name}.{suffix}", f"{prefix}.spatial.{source_name}.{suffix}"
                if key in self.target_state:
                    self.out[key] = self.read(source_key).clone()
                    self.fill(key, f"{source_key} copied")

    def _new_layer(self, prefix: str, weight: torch.Tensor, rule: str) -> None:
        self.out[f"{prefix}.weight"] = weight
        self.fill(f"{prefix}.weight", rule)
        if f"{prefix}.bias" in self.target_state:
            self.out[f"{prefix}.bias"] = torch.zeros(self.target_state[f"{prefix}.bias"].shape)
            self.fill(f"{prefix}.bias", "zero")
            self.report.zeroed.append(f"{prefix}.bias (new temporal layer)")


# ----------------------------------------------------------------------------------- API
@torch.no_grad()
def inflate(
    image_vae: nn.Module, target: nn.Module, *, temporal_frame: int | None = None, allow_unfilled: bool = False
) -> InflationReport:
    """Initialise ``target`` (a video VAE of the family) in place from ``image_vae``.

    The mode follows from the two models (see :func:`infer_mode` and the module docstring):
    a two-branch target with twice the image VAE's latent channels is ``ktc``, with as many
    ``same``; a single-branch target with as many is ``tail`` (causal) or ``single``.

    Args:
        temporal_frame: frame of each group the temporal (or single) branch carries; default the
            middle frame (2 of 4), and 0 (required) in ``same`` mode.
        allow_unfilled: load what was filled even if some target tensors were not (they keep
            their values) or some image-VAE tensors were not used; by default raise.

    Raises:
        InflationError: the models do not fit, or (without ``allow_unfilled``) tensors were
            left unfilled or unused; the message names them. ``target`` is then unchanged.
    """
    mode = infer_mode(image_vae, target)
    group = target.temporal_compression
    if temporal_frame is None:
        temporal_frame = default_temporal_frame(target, mode)
    if not is_whole_number(temporal_frame):  # its bits pick frames
        raise TypeError(f"temporal_frame must be an integer in 0..{group - 1} (frames per group), got {temporal_frame!r}")
    temporal_frame = int(temporal_frame)
    if not 0 <= temporal_frame < group:
        raise InflationError(f"temporal_frame must be in 0..{group - 1} (frames per group), got {temporal_frame}")
    if mode == "same" and temporal_frame != 0:
        raise InflationError("mode 'same' puts the keyframe's whole image latent in both halves: temporal_frame must be 0")
    walker = _Inflater(image_vae, target, mode, temporal_frame)
    walker.visit(target, image_vae, "")
    report = walker.report
    report.unfilled = [key for key in walker.target_state if key not in walker.out]
    report.unused = [key for key in walker.source_state if key not in walker.used]
    if (report.unfilled or report.unused) and not allow_unfilled:
        raise InflationError(
            "inflation would leave tensors unfilled or unused (pass allow_unfilled=True to accept): "
            + "; ".join(f"{label}: {', '.join(keys)}" for label, keys in (("unfilled", report.unfilled), ("unused", report.unused)) if keys)
        )
    wrong = [
        f"{key}: made {tuple(value.shape)}, needs {tuple(walker.target_state[key].shape)}"
        for key, value in walker.out.items()
        if value.shape != walker.target_state[key].shape
    ]
    if wrong:
        raise InflationError("inflation made tensors of the wrong shape: " + "; ".join(wrong))
    state = dict(walker.target_state)
    state.update({key: value.to(walker.target_state[key].dtype) for key, value in walker.out.items()})
    target.load_state_dict(state, strict=True)
    return report


def target_config(image_config: Mapping[str, Any], mode: str = "ktc") -> tuple[type, dict[str, Any]]:
    """The class and constructor arguments of the video VAE that ``mode`` makes from an image VAE config.

    ``ktc``: :class:`IVVAE` with twice the latent channels; ``same``: :class:`IVVAE` with as many;
    ``tail``: :class:`CausalVAE` with as many. Widths, depths and switches (PAC, attention) are the
    image VAE's; so is the latent normalisation (the latents start as image latents).
    """
    if mode not in MODES:
        raise ValueError(f"unknown inflation mode {mode!r}; expected one of {', '.join(MODES)}")
    if not isinstance(image_config, Mapping):
        raise TypeError(f"image_config must be the image VAE's config (a mapping, model.config), got {type(image_config).__name__}")
    config = {name: image_config[name] for name in SHARED_FIELDS + ("dropout", "scaling_factor", "shift_factor") if name in image_config}
    latent = image_config.get("latent_channels")
    if latent is None:
        raise InflationError("the image VAE config has no latent_channels")
    downsamplings = len(config.get("channel_multipliers", (1, 2, 4, 4))) - 1
    temporal_downsample = tuple(i >= downsamplings - 2 for i in range(downsamplings))
    if mode == "ktc":
        return IVVAE, {**config, "latent_channels": 2 * latent, "temporal_downsample": temporal_downsample}
    if mode == "same":
        if latent % 2:
            raise InflationError(f"mode 'same' splits the image VAE's Z={latent} latent channels between two halves: Z must be even")
        return IVVAE, {**config, "latent_channels": latent, "temporal_downsample": temporal_downsample}
    return CausalVAE, {**config, "latent_channels": latent, "temporal_downsample": temporal_downsample}


def inflate_image_vae(
    image_vae: nn.Module, mode: str = "ktc", *, temporal_frame: int | None = None, allow_unfilled: bool = False, **overrides: Any
) -> tuple[nn.Module, InflationReport]:
    """Build the video VAE of ``mode`` for ``image_vae`` and inflate it; ``overrides`` change its config.

    E.g. ``inflate_image_vae(image, "ktc", branches=("2d", "causal"))`` starts the ablation
    "KTC without GCConv" (the causal temporal branch gets the tail rule).
    """
    _check_family(image_vae, "image VAE")
    cls, config = target_config(image_vae.config, mode)
    config.update(overrides)
    parameter = next(image_vae.parameters())
    target = cls(**config).to(parameter.device)
    if parameter.dtype != torch.get_default_dtype():
        target = target.to(parameter.dtype)
    made = infer_mode(image_vae, target)
    if made != mode:  # overrides (latent_channels=...) can make another mode than the one asked for
        raise InflationError(f"the overrides {sorted(overrides)} turn mode {mode!r} into mode {made!r}; ask for mode {made!r} "
                             "or drop the overrides that change it")
    report = inflate(image_vae, target, temporal_frame=temporal_frame, allow_unfilled=allow_unfilled)
    return target.train(image_vae.training), report


def inflate_pretrained(
    image_vae_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    mode: str = "ktc",
    *,
    temporal_frame: int | None = None,
    allow_unfilled: bool = False,
    overwrite: bool = False,
    **overrides: Any,
) -> tuple[nn.Module, InflationReport]:
    """``ivvae inflate IMAGE_VAE_DIR OUT_DIR --mode ktc|tail|same``: load, inflate, save.

    Writes a ``from_pretrained`` folder (config + safetensors) and ``inflation_report.json``.

    Raises:
        FileExistsError: ``out_dir`` is a non-empty folder and ``overwrite`` is False.
        ValueError: ``out_dir`` is, contains or lies inside the image VAE's folder (even with ``overwrite``).
        OSError: the folder cannot be written ("cannot write 'OUT_DIR': ..."); no partial model is left behind.
        InflationError: see :func:`inflate`.
        ivvae.hub.ModelNotFoundError / ModelLoadError: the image VAE cannot be loaded.
    """
    from .hub import load_model

    if mode not in MODES:
        raise ValueError(f"unknown inflation mode {mode!r}; expected one of {', '.join(MODES)}")
    out_dir = refuse_nonempty_folder(out_dir, overwrite)
    refuse_writing_over_model(out_dir, image_vae_dir)
    image_vae = load_model(image_vae_dir)
    model, report = inflate_image_vae(image_vae, mode, temporal_frame=temporal_frame, allow_unfilled=allow_unfilled, **overrides)
    save_model_folder(model, out_dir, REPORT_NAME, {"image_vae": os.fspath(image_vae_dir), **report.to_dict()})
    return model, report
