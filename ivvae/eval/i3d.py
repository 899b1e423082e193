"""Inception-I3D (Carreira & Zisserman 2017), the feature network of FVD, in plain torch.

The module tree and parameter names are those of the ``InceptionI3d`` class of
piergiaj/pytorch-i3d as shipped with VideoGPT (``videogpt/fvd/pytorch_i3d.py``), the class that
reads the widely used ``i3d_pretrained_400.pt`` (Kinetics-400 RGB I3D) also used by the
``common_metrics_on_video_quality``, Open-Sora-Plan and Latte FVD scripts.  Its state dict has keys
such as ``Conv3d_1a_7x7.conv3d.weight``, ``Conv3d_1a_7x7.bn.running_mean``,
``Mixed_3b.b1b.conv3d.weight`` and ``logits.conv3d.bias``, and it loads strictly here.

Architecture details reproduced exactly:

* every conv/pool uses TensorFlow-style "SAME" padding computed from the input size
  (``pad = max(k - s, 0)`` if ``size % s == 0`` else ``max(k - size % s, 0)``, split
  ``pad // 2`` before and the rest after), zero-padded (also before max-pools, as in the port);
* ``Unit3D`` = conv3d (no bias) -> BatchNorm3d -> ReLU; the logits layer is a 1x1x1 conv with bias
  and no BN/ReLU;
* BatchNorm epsilon: **1e-5** by default, the value of the VideoGPT copy that accompanies
  ``i3d_pretrained_400.pt`` (piergiaj's original file uses 1e-3; pass ``bn_eps=1e-3`` to get it);
* head: ``AvgPool3d((2, 7, 7), stride 1)`` -> dropout (eval: identity) -> logits -> squeeze the
  spatial dims -> mean over the remaining time steps.  At 224x224 the spatial map is 7x7, and the
  time axis needs >= 2 steps after the three stride-2 stages: **clips need at least 9 frames**.

``forward`` returns the 400-d logits (what the common PyTorch FVD code calls the FVD "logits"
embedding); ``forward(x, features="pool")`` returns the 1024-d average-pooled features instead.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .lpips import WEIGHTS_DIR_ENV, find_weights, load_state_dict_file

__all__ = ["InceptionI3d", "Unit3D", "MaxPool3dSamePadding", "InceptionModule", "load_i3d", "I3D_WEIGHTS_FILE", "MIN_FRAMES"]

I3D_WEIGHTS_FILE = "i3d_pretrained_400.pt"
I3D_DESCRIPTION = (
    "I3D Kinetics-400 weights i3d_pretrained_400.pt (the PyTorch InceptionI3d state dict of "
    "piergiaj/pytorch-i3d distributed with VideoGPT and used by the common FVD scripts)"
)
#: fewest input frames the I3D head accepts (time must be >= 2 before the (2, 7, 7) average pool)
MIN_FRAMES = 9


def _same_pad(size: int, k: int, s: int) -> tuple[int, int]:
    pad = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
    return pad // 2, pad - pad // 2


def _pad_same(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> torch.Tensor:
    t, h, w = x.shape[2:]
    pt = _same_pad(t, kernel[0], stride[0])
    ph = _same_pad(h, kernel[1], stride[1])
    pw = _same_pad(w, kernel[2], stride[2])
    if any(pt + ph + pw):
        x = F.pad(x, (pw[0], pw[1], ph[0], ph[1], pt[0], pt[1]))
    return x


class MaxPool3dSamePadding(nn.MaxPool3d):
    """3-D max pool with TF "SAME" (zero) padding."""

    def __init__(self, kernel_size: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__(kernel_size=kernel_size, stride=stride, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(_pad_same(x, self.kernel_size, self.stride))  # type: ignore[arg-type]


class Unit3D(nn.Module):
    """Conv3d (TF "SAME" padding) + optional BatchNorm3d + optional ReLU."""

    def __init__(
        self,
        in_channels: int,
        output_channels: int,
        kernel_shape: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
        activation: bool = True,
        use_batch_norm: bool = True,
        use_bias: bool = False,
        bn_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.kernel_shape = tuple(kernel_shape)
        self.stride = tuple(stride)
        self.activation = activation
        self.conv3d = nn.Conv3d(
            in_channels, output_channels, kernel_size=self.kernel_shape, stride=self.stride, padding=0, bias=use_bias
        )
        self.bn = nn.BatchNorm3d(output_channels, eps=bn_eps, momentum=0.001) if use_batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_pad_same(x, self.kernel_shape, self.stride))  # type: ignore[arg-type]
        if self.bn is not None:
            x = self.bn(x)
        if self.activation:
            x = F.relu(x)
        return x


class InceptionModule(nn.Module):
    """Inception block: 1x1 | 1x1->3x3 | 1x1->3x3 | maxpool3->1x1, concatenated over channels.

    ``out_channels = [b0, b1a, b1b, b2a, b2b, b3b]``.
    """

    def __init__(self, in_channels: int, out_channels: list[int], bn_eps: float = 1e-5) -> None:
        super().__init__()
        o = out_channels
        self.b0 = Unit3D(in_channels, o[0], (1, 1, 1), bn_eps=bn_eps)
        self.b1a = Unit3D(in_channels, o[1], (1, 1, 1), bn_eps=bn_eps)
        self.b1b = Unit3D(o[1], o[2], (3, 3, 3), bn_eps=bn_eps)
        self.b2a = Unit3D(in_channels, o[3], (1, 1, 1), bn_eps=bn_eps)
        self.b2b = Unit3D(o[3], o[4], (3, 3, 3), bn_eps=bn_eps)
        self.b3a = MaxPool3dSamePadding((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, o[5], (1, 1, 1), bn_eps=bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


class InceptionI3d(nn.Module):
    """Inception-v1 I3D (RGB), state-dict compatible with ``i3d_pretrained_400.pt``.

    Args:
        num_classes: size of the logits layer (400 for Kinetics-400).
        in_channels: 3 for RGB.
        bn_eps: BatchNorm epsilon (1e-5, see the module docstring).

    Input: ``(B, 3, T, 224, 224)`` in ``[-1, 1]`` with ``T >= 9`` (use
    :func:`ivvae.eval.fvd.preprocess_i3d` to get there from any video).
    """

    ENDPOINTS: tuple[str, ...] = (
        "Conv3d_1a_7x7",
        "MaxPool3d_2a_3x3",
        "Conv3d_2b_1x1",
        "Conv3d_2c_3x3",
        "MaxPool3d_3a_3x3",
        "Mixed_3b",
        "Mixed_3c",
        "MaxPool3d_4a_3x3",
        "Mixed_4b",
        "Mixed_4c",
        "Mixed_4d",
        "Mixed_4e",
        "Mixed_4f",
        "MaxPool3d_5a_2x2",
        "Mixed_5b",
        "Mixed_5c",
    )

    def __init__(self, num_classes: int = 400, in_channels: int = 3, bn_eps: float = 1e-5) -> None:
        super().__init__()
        e = bn_eps
        self.num_classes = num_classes
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, (7, 7, 7), stride=(2, 2, 2), bn_eps=e)
        self.MaxPool3d_2a_3x3 = MaxPool3dSamePadding((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64, (1, 1, 1), bn_eps=e)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3), bn_eps=e)
        self.MaxPool3d_3a_3x3 = MaxPool3dSamePadding((1, 3, 3), (1, 2, 2))
        self.Mixed_3b = InceptionModule(192, [64, 96, 128, 16, 32, 32], e)
        self.Mixed_3c = InceptionModule(256, [128, 128, 192, 32, 96, 64], e)
        self.MaxPool3d_4a_3x3 = MaxPool3dSamePadding((3, 3, 3), (2, 2, 2))
        self.Mixed_4b = InceptionModule(128 + 192 + 96 + 64, [192, 96, 208, 16, 48, 64], e)
        self.Mixed_4c = InceptionModule(192 + 208 + 48 + 64, [160, 112, 224, 24, 64, 64], e)
        self.Mixed_4d = InceptionModule(160 + 224 + 64 + 64, [128, 128, 256, 24, 64, 64], e)
        self.Mixed_4e = InceptionModule(128 + 256 + 64 + 64, [112, 144, 288, 32, 64, 64], e)
        self.Mixed_4f = InceptionModule(112 + 288 + 64 + 64, [256, 160, 320, 32, 128, 128], e)
        self.MaxPool3d_5a_2x2 = MaxPool3dSamePadding((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = InceptionModule(256 + 320 + 128 + 128, [256, 160, 320, 32, 128, 128], e)
        self.Mixed_5c = InceptionModule(256 + 320 + 128 + 128, [384, 192, 384, 48, 128, 128], e)
        self.avg_pool = nn.AvgPool3d(kernel_size=(2, 7, 7), stride=(1, 1, 1))
        self.dropout = nn.Dropout(0.5)
        self.logits = Unit3D(384 + 384 + 128 + 128, num_classes, (1, 1, 1), activation=False, use_batch_norm=False, use_bias=True)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Run the convolutional trunk up to ``Mixed_5c`` and the (2, 7, 7) average pool:
        ``(B, 1024, T', H', W')``."""
        if x.dim() != 5 or x.shape[1] != self.Conv3d_1a_7x7.conv3d.in_channels:
            raise ValueError(f"I3D expects (B, 3, T, H, W) videos, got shape {tuple(x.shape)}")
        if x.shape[2] < MIN_FRAMES:
            raise ValueError(f"I3D needs clips of at least {MIN_FRAMES} frames, got {x.shape[2]}")
        for name in self.ENDPOINTS:
            x = getattr(self, name)(x)
        if x.shape[-1] < 7 or x.shape[-2] < 7:
            raise ValueError("I3D expects 224x224 frames (spatial map smaller than 7x7 before the head)")
        return self.avg_pool(x)

    def forward(self, x: torch.Tensor, features: str = "logits") -> torch.Tensor:
        """``features="logits"``: the 400-d logits averaged over time ``(B, num_classes)`` (the
        embedding used for FVD with ``i3d_pretrained_400.pt``); ``"pool"``: the 1024-d pooled
        features averaged over time and space ``(B, 1024)``."""
        x = self.trunk(x)
        if features == "pool":
            return x.mean(dim=(2, 3, 4))
        if features != "logits":
            raise ValueError(f"features must be 'logits' or 'pool', got {features!r}")
        x = self.logits(self.dropout(x))  # (B, C, T', H', W') with H' = W' = 1 at 224x224
        return x.mean(dim=(3, 4)).mean(dim=2)


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith("constants.pkl") or "/code/" in n for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_i3d(
    path: str | os.PathLike[str] | None = None,
    *,
    device: str | torch.device = "cpu",
    bn_eps: float = 1e-5,
) -> InceptionI3d:
    """Build :class:`InceptionI3d` and load ``i3d_pretrained_400.pt`` strictly (eval mode, frozen).

    ``path=None`` looks for ``i3d_pretrained_400.pt`` in ``$IVVAE_WEIGHTS_DIR``, the torch hub
    checkpoint folder and VideoGPT's cache ``~/.cache/videogpt``.  Nothing is downloaded.

    Raises:
        WeightsNotFoundError: the file is missing (the message says what it is and how to pass it).
        ValueError: the file is not this network's state dict (e.g. StyleGAN-V's TorchScript
            ``i3d_torchscript.pt``, or missing / unexpected / mis-shaped keys).
    """
    cands = []
    if os.environ.get(WEIGHTS_DIR_ENV):
        cands.append(Path(os.environ[WEIGHTS_DIR_ENV]) / I3D_WEIGHTS_FILE)
    cands.append(Path(torch.hub.get_dir()) / "checkpoints" / I3D_WEIGHTS_FILE)
    cands.append(Path.home() / ".cache" / "videogpt" / I3D_WEIGHTS_FILE)
    p = find_weights(
        path,
        description=I3D_DESCRIPTION,
        how_to_pass=f"Pass load_i3d('/path/to/{I3D_WEIGHTS_FILE}') (or i3d_path= to the FVD helpers / --i3d on the CLI).",
        candidates=cands,
    )
    if _is_torchscript(p):
        raise ValueError(
            f"{str(p)!r} is a TorchScript archive (StyleGAN-V's i3d_torchscript.pt?), not a state dict; "
            f"this FVD implementation needs {I3D_WEIGHTS_FILE}"
        )
    sd = load_state_dict_file(p, I3D_DESCRIPTION)
    model = InceptionI3d(num_classes=400, in_channels=3, bn_eps=bn_eps)
    expected = model.state_dict()
    # files saved by old PyTorch versions lack BatchNorm's num_batches_tracked: not a real mismatch
    missing = [k for k in expected if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in expected]
    bad_shape = [
        f"{k}: {tuple(sd[k].shape)} != {tuple(expected[k].shape)}"
        for k in expected
        if k in sd and sd[k].shape != expected[k].shape
    ]
    if missing or unexpected or bad_shape:
        raise ValueError(
            f"{str(p)!r} is not the {I3D_WEIGHTS_FILE} state dict: {len(missing)} missing keys {missing[:3]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:5]}, {len(bad_shape)} shape mismatches {bad_shape[:3]}"
        )
    for k, v in expected.items():
        if k.endswith("num_batches_tracked") and k not in sd:
            sd[k] = v
    model.load_state_dict(sd, strict=True)
    model.requires_grad_(False)
    return model.eval().to(device)
