"""Widening a trained model without changing what it computes.

A wider network trained from scratch throws away the training the narrow one absorbed. :func:`grow`
builds the wider network (more channels per stage: ``base_channels`` and/or
``channel_multipliers``) and copies every trained tensor into it, so that it starts out
reconstructing what the narrow model did, and training goes on from there with more capacity.

The rules, for every layer whose width grows:

- **old features ignore new ones**: an old output channel reads every new input channel with
  weight 0;
- **new features start small**: a new output channel gets the layer's default random
  initialisation scaled by ``new_weight_scale`` (default 1e-2) and bias 0. They must not be exactly
  zero: a zero feature read by zero weights gets no gradient, and neither would ever learn. Small
  ones give both a gradient from the first step (Adam turns it into lr-sized steps);
- **RMSNorm** multiplies by ``sqrt(width)``: the gammas are scaled by ``sqrt(old / new)`` so the old
  channels keep their scale (the small new channels barely move the norm);
- **attention** is single-head, scaled by ``1 / sqrt(width)``: the old query weights are scaled by
  ``sqrt(new / old)``; queries, keys and values grow as three blocks;
- a **shortcut** that was the identity (a block with equal in and out widths) and becomes a 1x1
  conv starts as the identity on the old channels.

The wider model therefore computes the narrow one's function up to terms of order
``new_weight_scale ** 2``; :func:`max_reconstruction_difference` measures it (``ivvae grow``
prints it).

Every member of the family grows, the two-branch IV-VAE included: its branches sit side by side on
the channel axis (see :mod:`ivvae.layers`), so each branch's old channels keep their place at the
start of that branch's wider block, and a layer that reads both branches (a branch conv, a dense
per-frame conv after full compression, the parallel atrous conv) reads each one's old channels there.

Limits. Widths may only grow, and a residual block whose in and out widths differ must still differ
(its 1x1 shortcut has no identity to become): with ``base_channels`` 16, multipliers
``[1, 2, 4, 4] -> [1, 2, 4, 6]`` grows, ``[1, 2, 4, 8]`` does not (the decoder's first upsampling then
halves 128 to 64 channels, and the next block, 64 -> 64, has no shortcut conv where the old one,
32 -> 64, had); ``[1, 2, 5, 8]`` does.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from ._checks import is_whole_number
from ._files import refuse_nonempty_folder, save_model_folder
from .inflate import refuse_writing_over_model
from .layers import BranchConv, Downsample, RMSNorm, Upsample
from .layers.attention import SpatialAttention

#: Config fields :func:`grow` may change.
GROWABLE_FIELDS = ("base_channels", "channel_multipliers")

REPORT_NAME = "growth_report.json"


class GrowthError(ValueError):
    """The model cannot be grown to the requested widths (and why)."""


@dataclass
class GrowthReport:
    """What :func:`grow` did.

    Attributes:
        source / target: ``base_channels`` and ``channel_multipliers`` before and after.
        grown: tensors that took the old values into a larger shape.
        copied: tensors whose shape did not change (copied as they were).
        identity: shortcut convs that replaced an identity shortcut (identity-initialised; one per
            branch in a two-branch block).
        new_weight_scale: the scale of the new output channels' initialisation.
        max_difference: largest absolute difference between the two models' reconstructions of a
            test input (values in [-1, 1]); ``None`` until measured.
    """

    source: dict[str, Any]
    target: dict[str, Any]
    grown: list[str] = field(default_factory=list)
    copied: list[str] = field(default_factory=list)
    identity: list[str] = field(default_factory=list)
    new_weight_scale: float = 1e-2
    max_difference: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def identity_shortcuts(self) -> int:
        """Residual blocks whose identity shortcut became a conv (a two-branch block's is one conv per branch)."""
        return len({name.split(".shortcut", 1)[0] for name in self.identity})

    def summary(self) -> str:
        widths = lambda c: f"base {c['base_channels']} x {list(c['channel_multipliers'])}"  # noqa: E731
        shortcuts = self.identity_shortcuts()
        line = (f"grown from {widths(self.source)} to {widths(self.target)}: {len(self.grown)} tensors grown, "
                f"{len(self.copied)} copied, {shortcuts} identity shortcut{'s' * (shortcuts != 1)}")
        if self.max_difference is not None:
            line += f"; reconstructions differ by at most {self.max_difference:.2e}"
        return line


def _widths(config: dict[str, Any]) -> list[int]:
    return [config["base_channels"] * m for m in config["channel_multipliers"]]


def _requested_widths(base_channels: Any, channel_multipliers: Any) -> dict[str, Any]:
    """The config changes asked for, as ints: a float width would be truncated, a string read digit by digit."""
    changes: dict[str, Any] = {}
    if base_channels is not None:
        if not is_whole_number(base_channels) or base_channels < 1:
            raise GrowthError(f"base_channels must be a positive integer, got {base_channels!r}")
        changes["base_channels"] = int(base_channels)
    if channel_multipliers is not None:
        if isinstance(channel_multipliers, (str, bytes)) or not isinstance(channel_multipliers, Iterable) \
                or not all(is_whole_number(m) and m >= 1 for m in list(channel_multipliers)):
            raise GrowthError(f"channel_multipliers must be a list of positive integers (e.g. [1, 2, 4, 6]), got {channel_multipliers!r}")
        changes["channel_multipliers"] = [int(m) for m in channel_multipliers]
    return changes


def _check_request(model: nn.Module, changes: dict[str, Any]) -> None:
    spec = getattr(model, "spec", None)
    if spec is None:
        raise GrowthError(f"cannot grow a {type(model).__name__}: expected a model of the IV-VAE family")
    old, new = dict(model.config), {**model.config, **changes}
    if len(new["channel_multipliers"]) != len(old["channel_multipliers"]):
        raise GrowthError(f"channel_multipliers must keep {len(old['channel_multipliers'])} stages (the compression), "
                          f"got {list(new['channel_multipliers'])}")
    for stage, (before, after) in enumerate(zip(_widths(old), _widths(new), strict=True)):
        if after < before:
            raise GrowthError(f"stage {stage} would shrink from {before} to {after} channels; widths can only grow")
    if _widths(old) == _widths(new):
        raise GrowthError(f"the widths do not change ({_widths(old)}); give larger channel_multipliers or base_channels")


def _positions(old_size: int, new_size: int, blocks: int, name: str) -> torch.Tensor:
    """Where the ``old_size`` channels (``blocks`` equal blocks) sit among ``new_size`` ones."""
    if old_size == new_size:  # an ungrown side (image or latent channels) keeps its order, whatever its blocks
        return torch.arange(old_size)
    if old_size % blocks or new_size % blocks or new_size < old_size:
        raise GrowthError(f"{name}: cannot place {old_size} channels ({blocks} blocks) into {new_size}")
    old_block, new_block = old_size // blocks, new_size // blocks
    return torch.cat([torch.arange(old_block) + b * new_block for b in range(blocks)])


@dataclass(frozen=True)
class _ConvLayout:
    """How a conv's channels split into equal blocks that grow apart (see :func:`_conv_layouts`).

    ``branch``: for one branch's conv inside a :class:`~ivvae.layers.BranchConv` (reading every
    branch, writing its own), which branch it writes.
    """

    in_blocks: int
    out_blocks: int
    branch: int | None = None


def _conv_layouts(model: nn.Module) -> dict[str, _ConvLayout]:
    """The channel layout of every conv that does not read and write all branches side by side.

    The rest (dense per-frame convs after full compression, the decoder's first conv, the encoder
    head and the parallel atrous conv) read and write one block per branch.
    """
    layouts: dict[str, _ConvLayout] = {}
    for name, module in model.named_modules():
        if isinstance(module, BranchConv):
            for branch, key in enumerate(module.convs):
                layouts[f"{name}.convs.{key}"] = _ConvLayout(len(module.convs), 1, branch)
        elif isinstance(module, (Downsample, Upsample)):  # one module per branch, each on its own channels
            layouts.update({f"{name}.spatial.{key}": _ConvLayout(1, 1) for key in module.spatial})
            # an upsampling time conv writes two frames' channels side by side: two blocks of width
            time_blocks = 2 if isinstance(module, Upsample) else 1
            layouts.update({f"{name}.time_convs.{key}": _ConvLayout(1, time_blocks) for key in getattr(module, "time_convs", {})})
        elif isinstance(module, SpatialAttention):  # one per branch; queries, keys and values grow as three blocks
            layouts.update({f"{name}.to_qkv": _ConvLayout(1, 3), f"{name}.proj": _ConvLayout(1, 1)})
    return layouts


class _Grower:
    """Fills the target model's tensors from the source's, module by module (paired by name)."""

    def __init__(self, source: nn.Module, target: nn.Module, scale: float, report: GrowthReport) -> None:
        self.source_modules = dict(source.named_modules())
        self.target = target
        self.scale = scale
        self.report = report
        self.used: set[str] = set()
        self.num_branches = target.spec.num_branches
        self.layouts = _conv_layouts(target)

    def layout(self, name: str) -> _ConvLayout:
        return self.layouts.get(name, _ConvLayout(self.num_branches, self.num_branches))

    def run(self) -> None:
        inside_attention: tuple[str, ...] = ()
        for name, module in self.target.named_modules():
            if name.startswith(inside_attention):
                continue
            if isinstance(module, SpatialAttention):
                self.attention(name, module)
                inside_attention += (name + ".",)
            elif isinstance(module, nn.modules.conv._ConvNd):
                self.conv(name, module)
            elif isinstance(module, RMSNorm):
                self.norm(name, module)
            elif any(True for _ in module.parameters(recurse=False)):
                raise GrowthError(f"{name}: no growth rule for {type(module).__name__}")
        unused = sorted(k for k in self._source_parameter_names() if k not in self.used)
        if unused:
            raise GrowthError(self._unused_message(unused))

    def _unused_message(self, unused: list[str]) -> str:
        """Name the residual blocks that lose their shortcut conv (the one way tensors go unused)."""
        target_modules = dict(self.target.named_modules())
        blocks = sorted({k.split(".shortcut", 1)[0] for k in unused if ".shortcut" in k})
        described = []
        for block in blocks:
            old, new = self.source_modules[block], target_modules.get(block)
            widths = lambda b: f"{b.norm1.width} -> {b.norm2.width}"  # noqa: E731
            described.append(f"{block} ({widths(old)} channels) would be {widths(new)}" if new is not None else block)
        if described:
            return ("a residual block would lose its 1x1 shortcut conv (in and out widths become equal), which has no "
                    f"function-preserving place: {'; '.join(described)}. Choose widths that keep in != out there "
                    "(e.g. a smaller last multiplier)")
        return f"these trained tensors have no place in the wider model: {', '.join(unused[:6])}" + (" ..." if len(unused) > 6 else "")

    def _source_parameter_names(self):
        return (f"{m}.{p}" if m else p for m, mod in self.source_modules.items() for p, _ in mod.named_parameters(recurse=False))

    def _identity_ancestor(self, name: str) -> str | None:
        """The name of the source's identity module that ``name`` replaces, if any."""
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):
            prefix = ".".join(parts[:cut])
            if isinstance(self.source_modules.get(prefix), nn.Identity):
                return prefix
        return None

    def conv(self, name: str, target: nn.Module, query_scale: float | None = None) -> None:
        source = self.source_modules.get(name)
        if source is None or isinstance(source, nn.Identity):
            replaced = self._identity_ancestor(name)
            if replaced is None:
                raise GrowthError(f"{name}: no such layer in the model being grown")
            return self.identity(name, target, replaced)
        if not isinstance(source, nn.modules.conv._ConvNd) or source.weight.dim() != target.weight.dim():
            raise GrowthError(f"{name}: {type(source).__name__} cannot grow into {type(target).__name__}")
        old = source.weight.detach().float()
        layout = self.layout(name)
        rows = _positions(old.shape[0], target.weight.shape[0], layout.out_blocks, name)
        cols = _positions(old.shape[1], target.weight.shape[1], layout.in_blocks, name)
        weight = target.weight.detach().float() * self.scale  # new output channels: small default init
        weight[rows] = 0.0  # old output channels: no weight on any new input channel ...
        if query_scale is not None:  # the first block of to_qkv are the queries
            old = old.clone()
            old[: old.shape[0] // 3] *= query_scale
        weight[rows.unsqueeze(1), cols.unsqueeze(0)] = old  # ... and their trained ones on the old inputs
        self._set(target.weight, weight, f"{name}.weight", old.shape)
        if target.bias is not None:
            bias = torch.zeros_like(target.bias, dtype=torch.float32)
            old_bias = source.bias.detach().float().clone()
            if query_scale is not None:
                old_bias[: old_bias.shape[0] // 3] *= query_scale
            bias[rows] = old_bias
            self._set(target.bias, bias, f"{name}.bias", old_bias.shape)

    def identity(self, name: str, target: nn.Module, replaced: str) -> None:
        """A 1x1 shortcut conv in place of the identity ``replaced``: identity on the old channels."""
        kernel = target.weight.shape[2:]
        if any(k != 1 for k in kernel):
            raise GrowthError(f"{name}: an identity shortcut can only become a 1x1 conv, not kernel {tuple(kernel)}")
        block_norm = self.source_modules.get(replaced.rsplit(".", 1)[0] + ".norm1")
        if not isinstance(block_norm, RMSNorm):
            raise GrowthError(f"{name}: replaces {replaced}, which is not a residual block's shortcut")
        old_width, branches = block_norm.width, block_norm.num_branches
        layout = self.layout(name)
        # where each branch's old channels sit among this conv's inputs, and among its outputs
        cols = _positions(old_width * branches, target.weight.shape[1], branches, name)
        if layout.branch is None:  # a dense conv: every branch in, every branch out
            rows = _positions(old_width * branches, target.weight.shape[0], branches, name)
        else:  # one branch's conv: reads every branch, passes its own branch's old channels on
            rows = torch.arange(old_width)
            cols = cols[layout.branch * old_width : (layout.branch + 1) * old_width]
        weight = target.weight.detach().float() * self.scale
        weight[rows] = 0.0
        weight[rows, cols] = 1.0
        with torch.no_grad():
            target.weight.copy_(weight)
            if target.bias is not None:
                target.bias.zero_()
        self.report.identity.append(name)

    def norm(self, name: str, target: RMSNorm) -> None:
        source = self.source_modules.get(name)
        if not isinstance(source, RMSNorm):
            raise GrowthError(f"{name}: no RMSNorm to grow from")
        keep_scale = (source.width / target.width) ** 0.5
        gamma = torch.full_like(target.gamma, keep_scale, dtype=torch.float32)
        rows = _positions(source.gamma.shape[0], gamma.shape[0], source.num_branches, name)
        gamma[rows] = source.gamma.detach().float() * keep_scale
        self._set(target.gamma, gamma, f"{name}.gamma", source.gamma.shape)

    def attention(self, name: str, target: SpatialAttention) -> None:
        source = self.source_modules.get(name)
        if not isinstance(source, SpatialAttention):
            raise GrowthError(f"{name}: no attention block to grow from")
        old_width, new_width = source.proj.weight.shape[0], target.proj.weight.shape[0]
        self.norm(f"{name}.norm", target.norm)
        self.conv(f"{name}.to_qkv", target.to_qkv, query_scale=(new_width / old_width) ** 0.5)
        self.conv(f"{name}.proj", target.proj)

    def _set(self, parameter: nn.Parameter, value: torch.Tensor, key: str, old_shape) -> None:
        with torch.no_grad():
            parameter.copy_(value)
        self.used.add(key)
        (self.report.copied if tuple(old_shape) == tuple(value.shape) else self.report.grown).append(key)


def grow(
    model: nn.Module,
    *,
    base_channels: int | None = None,
    channel_multipliers: Sequence[int] | None = None,
    new_weight_scale: float = 1e-2,
    seed: int = 0,
) -> tuple[nn.Module, GrowthReport]:
    """A wider copy of ``model`` that computes (almost exactly) what ``model`` computes.

    Args:
        model: any member of the family: the IV-VAE, the image VAE, the causal baseline or an ablation.
        base_channels / channel_multipliers: the new widths (``None``: unchanged); every stage's
            width must stay or grow.
        new_weight_scale: scale of the new output channels' default initialisation (> 0: at 0 the
            new channels would never learn, see the module docstring).
        seed: seeds the new channels' initialisation.

    Returns:
        The wider model (float32, eval mode) and a :class:`GrowthReport`.

    Raises:
        GrowthError: a model outside the family, shrinking or unchanged widths, or widths whose block
            structure cannot hold the old weights (see the module docstring).
    """
    if isinstance(new_weight_scale, bool) or not isinstance(new_weight_scale, numbers.Real) \
            or not math.isfinite(new_weight_scale) or new_weight_scale <= 0:  # 0: dead new channels, see the module docstring
        raise GrowthError(f"new_weight_scale must be a finite number > 0, got {new_weight_scale!r}")
    if not is_whole_number(seed):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    changes = _requested_widths(base_channels, channel_multipliers)
    _check_request(model, changes)
    config = {k: v for k, v in model.config.items() if not k.startswith("_")}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        target = type(model)(**{**config, **changes})
    report = GrowthReport(
        source={k: model.config[k] for k in GROWABLE_FIELDS},
        target={k: target.config[k] for k in GROWABLE_FIELDS},
        new_weight_scale=new_weight_scale,
    )
    _Grower(model, target, new_weight_scale, report).run()
    return target.eval(), report


@torch.no_grad()
def max_reconstruction_difference(a: nn.Module, b: nn.Module, size: int = 64, seed: int = 0) -> float:
    """Largest absolute difference of two models' reconstructions of one random test clip.

    The clip has ``1 + temporal_compression`` frames of ``size x size`` pixels, values in [-1, 1];
    each model runs in eval mode on its own device and dtype (its mode is restored afterwards).
    """
    generator = torch.Generator().manual_seed(seed)
    frames = 1 + getattr(a, "temporal_compression", 1)
    clip = torch.rand(1, a.config.in_channels, frames, size, size, generator=generator) * 2 - 1
    outputs = []
    for model in (a, b):
        parameter = next(model.parameters())
        was_training = model.training
        outputs.append(model.eval()(clip.to(parameter.device, parameter.dtype)).sample.float().cpu())
        model.train(was_training)
    return float((outputs[0] - outputs[1]).abs().max())


def _check_difference(report: GrowthReport) -> None:
    """A non-finite difference means the wider model computes NaN or inf: refuse it before writing."""
    if report.max_difference is not None and not math.isfinite(report.max_difference):
        raise GrowthError(f"the grown model's reconstruction is not finite (difference {report.max_difference}): "
                          f"new_weight_scale={report.new_weight_scale:g} makes the new channels' activations overflow; "
                          "use a small scale (default 1e-2)")


def grow_pretrained(
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    base_channels: int | None = None,
    channel_multipliers: Sequence[int] | None = None,
    new_weight_scale: float = 1e-2,
    seed: int = 0,
    overwrite: bool = False,
) -> tuple[nn.Module, GrowthReport]:
    """``ivvae grow MODEL OUT_DIR``: load, grow, measure the difference, save.

    Writes a ``from_pretrained`` folder (config + float32 safetensors) and ``growth_report.json``.

    Raises:
        FileExistsError: ``out_dir`` is a non-empty folder and ``overwrite`` is False.
        ValueError: ``out_dir`` is, contains or lies inside the model's folder (even with ``overwrite``).
        OSError: the folder cannot be written ("cannot write 'OUT_DIR': ..."); no partial model is left behind.
        GrowthError: see :func:`grow`.
        ivvae.hub.ModelNotFoundError / ModelLoadError: the model cannot be loaded.
    """
    from .hub import load_model

    out_dir = refuse_nonempty_folder(out_dir, overwrite)
    refuse_writing_over_model(out_dir, model_dir)
    source = load_model(model_dir, dtype=torch.float32)
    model, report = grow(source, base_channels=base_channels, channel_multipliers=channel_multipliers,
                         new_weight_scale=new_weight_scale, seed=seed)
    report.max_difference = max_reconstruction_difference(source, model)
    _check_difference(report)
    save_model_folder(model, out_dir, REPORT_NAME, {"model": os.fspath(model_dir), **report.to_dict()})
    return model, report
