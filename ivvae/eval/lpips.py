"""LPIPS (Zhang et al., CVPR 2018), version 0.1, in plain torch (no torchvision needed).

This reproduces the computation of the ``lpips`` PyPI package (``lpips.LPIPS(net=...,
version='0.1')``, the metric every video-VAE paper reports):

1. ``ScalingLayer``: ``(x - shift) / scale`` with ``shift = [-.030, -.088, -.188]`` and
   ``scale = [.458, .448, .450]`` (inputs in ``[-1, 1]``);
2. the ImageNet backbone (``torchvision.models.alexnet().features`` or ``vgg16().features``),
   tapped after the ReLUs that end the package's five slices (AlexNet layers ``[0:2] [2:5]
   [5:8] [8:10] [10:12]``, VGG16 ``[0:4] [4:9] [9:16] [16:23] [23:30]``);
3. each tap unit-normalised over channels, ``f / (||f||_2 + 1e-10)``;
4. squared difference, a learned non-negative 1x1 conv (``lin0..lin4``), spatial mean;
5. the sum over the five layers.

The backbone is an ``nn.Sequential`` with torchvision's layer indexing, so a torchvision
checkpoint (``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth``, keys ``features.N.weight``;
its ``classifier.*`` keys are ignored) loads directly, and the linear heads load the package's
``lpips/weights/v0.1/alex.pth`` / ``vgg.pth`` (keys ``lin0.model.1.weight`` ...).

Where the weights are looked for when no path is given (first hit wins):

* ``$IVVAE_WEIGHTS_DIR/<file>`` (backbone: the torchvision file name; heads:
  ``lpips_alex.pth`` / ``lpips_vgg.pth``),
* the torch hub cache ``$TORCH_HOME/hub/checkpoints/<torchvision file name>`` (where torchvision
  itself downloads them),
* for the heads, the ``weights/v0.1/`` folder of an installed ``lpips`` package (found without
  importing it, so torchvision is not needed).

Nothing is ever downloaded.  A missing file raises :class:`WeightsNotFoundError`.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
import torch.nn as nn

from .metrics import FAR_OUTSIDE_RANGES

__all__ = [
    "WeightsNotFoundError",
    "find_weights",
    "load_state_dict_file",
    "LPIPS",
    "ScalingLayer",
    "NetLinLayer",
    "LPIPSBackbone",
    "normalize_tensor",
    "BACKBONE_FILES",
]


class WeightsNotFoundError(FileNotFoundError):
    """A pretrained weight file needed by an evaluation network is missing.

    The message names the file, says what it is and how to pass it.
    """


WEIGHTS_DIR_ENV = "IVVAE_WEIGHTS_DIR"

#: torchvision ImageNet checkpoints of the LPIPS backbones
BACKBONE_FILES: dict[str, str] = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
_BACKBONE_DESC: dict[str, str] = {
    "alex": "torchvision AlexNet ImageNet weights alexnet-owt-7be5be79.pth "
    "(torchvision.models.alexnet(weights='IMAGENET1K_V1'))",
    "vgg": "torchvision VGG16 ImageNet weights vgg16-397923af.pth "
    "(torchvision.models.vgg16(weights='IMAGENET1K_V1'))",
}
_HEAD_FILES: dict[str, str] = {"alex": "alex.pth", "vgg": "vgg.pth"}


def _torch_hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _lpips_package_weights_dir() -> Path | None:
    """``<site-packages>/lpips/weights/v0.1`` of an installed lpips package, without importing it."""
    try:
        spec = importlib.util.find_spec("lpips")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        d = Path(loc) / "weights" / "v0.1"
        if d.is_dir():
            return d
    return None


def find_weights(
    path: str | os.PathLike[str] | None,
    *,
    description: str,
    how_to_pass: str,
    candidates: Iterable[Path] = (),
) -> Path:
    """Resolve a weight file: ``path`` if given (it must exist), else the first existing
    candidate.  Raises :class:`WeightsNotFoundError` naming the file, what it is and how to
    pass it."""
    if path is not None:
        p = Path(path).expanduser()
        if p.is_file():
            return p
        raise WeightsNotFoundError(
            f"{description} not found: {str(p)!r} does not exist or is not a file. {how_to_pass}"
        )
    tried = []
    for c in candidates:
        tried.append(str(c))
        if c.is_file():
            return c
    where = "; ".join(tried) if tried else "(no default location)"
    raise WeightsNotFoundError(
        f"{description} not found (looked in: {where}). {how_to_pass} "
        f"Nothing is downloaded at run time; alternatively put the file in ${WEIGHTS_DIR_ENV}."
    )


def _first_line(error: BaseException, limit: int = 200) -> str:
    """A one-line cause: torch.load errors can be empty (EOFError) or span many lines."""
    line = next((" ".join(t.split()) for t in str(error).splitlines() if t.strip()), "")
    text = f"{type(error).__name__}: {line}" if line else type(error).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def _torch_load(path: Path, description: str) -> object:
    if not path.is_file():
        raise WeightsNotFoundError(f"{description.split(' (')[0]} not found: {str(path)!r} does not exist or is not a file")
    if path.stat().st_size == 0:
        raise ValueError(f"{str(path)!r} is empty (0 bytes), not the {description.split(' (')[0]}; download the file again")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with context
        raise ValueError(f"{str(path)!r} is not a PyTorch weight file torch.load reads ({_first_line(e)}), "
                         f"not the {description.split(' (')[0]}") from e


def load_state_dict_file(path: Path, description: str) -> dict[str, torch.Tensor]:
    """Load a plain state dict (tensors only) from ``path`` on CPU, unwrapping ``{'state_dict': ...}``
    / ``{'model': ...}`` containers and a DataParallel ``module.`` prefix.  Every failure is a
    one-line ValueError naming the file and what is wrong (empty, unreadable, not a state dict)."""
    obj = _torch_load(Path(path), description)
    for key in ("state_dict", "model", "net"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{str(path)!r} does not hold a state dict of tensors ({description})")
    broken = [k for k, v in obj.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:  # they would load and make every distance NaN
        raise ValueError(f"{str(path)!r} holds NaN or infinite values in {len(broken)} tensor(s) ({', '.join(broken[:3])}): "
                         f"the file is damaged, download the {description.split(' (')[0]} again")
    out = {}
    for k, v in obj.items():
        out[k[len("module.") :] if k.startswith("module.") else k] = v
    return out


# --------------------------------------------------------------------------------------------
# network pieces
# --------------------------------------------------------------------------------------------
def normalize_tensor(feat: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Unit-normalise features over the channel dimension: ``f / (sqrt(sum_c f^2) + eps)``."""
    norm = torch.sqrt(torch.sum(feat**2, dim=1, keepdim=True))
    return feat / (norm + eps)


class ScalingLayer(nn.Module):
    """LPIPS input scaling: ``(x - shift) / scale`` per RGB channel (inputs in ``[-1, 1]``)."""

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale


class NetLinLayer(nn.Module):
    """A learned 1x1 conv (no bias) from ``chn_in`` channels to 1; ``model = [Dropout, Conv]`` so
    the state-dict keys match the lpips package (``model.1.weight``)."""

    def __init__(self, chn_in: int, chn_out: int = 1) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(chn_in, chn_out, 1, stride=1, padding=0, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _alexnet_features() -> nn.Sequential:
    """``torchvision.models.alexnet().features`` (same layers, same indices)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),  # 0
        nn.ReLU(),  # 1  -> relu1
        nn.MaxPool2d(kernel_size=3, stride=2),  # 2
        nn.Conv2d(64, 192, kernel_size=5, padding=2),  # 3
        nn.ReLU(),  # 4  -> relu2
        nn.MaxPool2d(kernel_size=3, stride=2),  # 5
        nn.Conv2d(192, 384, kernel_size=3, padding=1),  # 6
        nn.ReLU(),  # 7  -> relu3
        nn.Conv2d(384, 256, kernel_size=3, padding=1),  # 8
        nn.ReLU(),  # 9  -> relu4
        nn.Conv2d(256, 256, kernel_size=3, padding=1),  # 10
        nn.ReLU(),  # 11 -> relu5
        nn.MaxPool2d(kernel_size=3, stride=2),  # 12 (unused by LPIPS)
    )


_VGG16_CFG: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def _vgg16_features() -> nn.Sequential:
    """``torchvision.models.vgg16().features`` (configuration "D", no batch norm, 31 layers)."""
    layers: list[nn.Module] = []
    cin = 3
    for v in _VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            assert isinstance(v, int)
            layers += [nn.Conv2d(cin, v, kernel_size=3, padding=1), nn.ReLU()]
            cin = v
    return nn.Sequential(*layers)


class LPIPSBackbone(nn.Module):
    """The ImageNet trunk of LPIPS with torchvision indexing; ``forward`` returns the five taps."""

    #: (features builder, end index of each slice, channels of each tap)
    CONFIGS: dict[str, tuple[object, tuple[int, ...], tuple[int, ...]]] = {
        "alex": (_alexnet_features, (2, 5, 8, 10, 12), (64, 192, 384, 256, 256)),
        "vgg": (_vgg16_features, (4, 9, 16, 23, 30), (64, 128, 256, 512, 512)),
    }

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        if net == "vgg16":
            net = "vgg"
        if net not in self.CONFIGS:
            raise ValueError(f"LPIPS net must be 'alex' or 'vgg', got {net!r} (squeeze is not supported)")
        builder, ends, chns = self.CONFIGS[net]
        self.net_name = net
        self.features: nn.Sequential = builder()  # type: ignore[operator]
        self.slice_ends = ends
        self.channels = chns

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        start = 0
        for end in self.slice_ends:
            for i in range(start, end):
                x = self.features[i](x)
            taps.append(x)
            start = end
        return taps


_LPIPS_SLICE_KEY = re.compile(r"^net\.slice\d+\.(\d+)\.(weight|bias)$")


def _backbone_state(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Extract ``features.*`` entries (keys ``N.weight``) from a torchvision checkpoint, a
    features-only state dict, or a full lpips-package model state dict (``net.sliceK.N.*``)."""
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if k.startswith("features."):
            out[k[len("features.") :]] = v
        elif re.match(r"^\d+\.(weight|bias)$", k):
            out[k] = v
        else:
            m = _LPIPS_SLICE_KEY.match(k)
            if m:
                out[f"{m.group(1)}.{m.group(2)}"] = v
    return out


# --------------------------------------------------------------------------------------------
# LPIPS
# --------------------------------------------------------------------------------------------
#: Smallest frame side each trunk accepts: AlexNet's stride-4 conv and two 3x3/2 pools, VGG's four 2x2 pools.
MIN_SIZE: dict[str, int] = {"alex": 31, "vgg": 16}


def _check_tensors(x: object, y: object) -> None:
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
        raise TypeError(f"LPIPS takes two torch.Tensors, got {type(x).__name__} and {type(y).__name__}")


#: Float frames beyond +-this are in another convention (0..255, say): decoders overshoot [-1, 1] far less.
#: The bound :mod:`ivvae.eval.metrics` puts on [-1, 1] data (that many value ranges outside it).
FAR_OUTSIDE = 1.0 + 2.0 * FAR_OUTSIDE_RANGES


def _check_video_range(x: torch.Tensor, name: str) -> None:
    """Frames in 0..255 (or NaN) would give a plausible but meaningless LPIPS: refuse them with the fix."""
    if not x.is_floating_point():
        raise ValueError(f"LPIPS takes float videos in [-1, 1], got {name} as {x.dtype} (map uint8 frames with ivvae.io.frames_to_tensor)")
    if x.numel() == 0:
        return
    low, high = float(x.detach().min()), float(x.detach().max())
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{name} holds NaN or infinite values")
    if low < -FAR_OUTSIDE or high > FAR_OUTSIDE:
        raise ValueError(f"{name} holds values in [{low:g}, {high:g}], far outside [-1, 1], the range LPIPS takes; "
                         "map 0..255 frames with x / 127.5 - 1 (and [0, 1] frames with 2 * x - 1)")


class LPIPS(nn.Module):
    """LPIPS v0.1 distance with an AlexNet (default) or VGG16 trunk.

    Args:
        net: ``"alex"`` or ``"vgg"``.
        backbone_weights: the torchvision ImageNet checkpoint (``alexnet-owt-7be5be79.pth`` /
            ``vgg16-397923af.pth``); ``None`` searches the default locations (module docstring).
        head_weights: the lpips package's ``weights/v0.1/alex.pth`` / ``vgg.pth``; ``None``
            searches the default locations (including an installed ``lpips`` package).
        pretrained: ``False`` builds an untrained network without reading any file (torch default
            init for the trunk, heads set to ``1 / channels``): for tests and smoke runs only, the
            numbers are not LPIPS.

    The module is frozen (no parameter requires grad) and always stays in eval mode (dropout off),
    even inside a model switched to ``train()``; gradients still flow to the *inputs*, so it can be
    used as a perceptual loss.

    ``forward(x, y)`` takes images ``(B, 3, H, W)`` in ``[-1, 1]`` and returns ``(B,)``;
    :meth:`video` takes videos ``(B, 3, T, H, W)`` and returns the mean over frames ``(B,)`` (or the
    per-frame values ``(B, T)``).
    """

    def __init__(
        self,
        net: str = "alex",
        backbone_weights: str | os.PathLike[str] | None = None,
        head_weights: str | os.PathLike[str] | None = None,
        *,
        pretrained: bool = True,
    ) -> None:
        super().__init__()
        self.scaling_layer = ScalingLayer()
        self.net = LPIPSBackbone(net)
        self.net_name = self.net.net_name
        chns = self.net.channels
        self.lin0 = NetLinLayer(chns[0])
        self.lin1 = NetLinLayer(chns[1])
        self.lin2 = NetLinLayer(chns[2])
        self.lin3 = NetLinLayer(chns[3])
        self.lin4 = NetLinLayer(chns[4])
        self.lins = [self.lin0, self.lin1, self.lin2, self.lin3, self.lin4]
        self.backbone_path: Path | None = None
        self.head_path: Path | None = None
        if pretrained:
            self.load_backbone(self._resolve_backbone(backbone_weights))
            self.load_heads(self._resolve_heads(head_weights))
        else:
            for lin, c in zip(self.lins, chns, strict=True):
                nn.init.constant_(lin.model[1].weight, 1.0 / c)
        self.requires_grad_(False)
        super().train(False)

    # ---------------------------------------------------------------- weights
    def _resolve_backbone(self, path: str | os.PathLike[str] | None) -> Path:
        fname = BACKBONE_FILES[self.net_name]
        cands = []
        if os.environ.get(WEIGHTS_DIR_ENV):
            cands.append(Path(os.environ[WEIGHTS_DIR_ENV]) / fname)
        cands.append(_torch_hub_checkpoints() / fname)
        return find_weights(
            path,
            description=f"LPIPS backbone: {_BACKBONE_DESC[self.net_name]}",
            how_to_pass=f"Pass LPIPS(net={self.net_name!r}, backbone_weights='/path/to/{fname}').",
            candidates=cands,
        )

    def _resolve_heads(self, path: str | os.PathLike[str] | None) -> Path:
        fname = _HEAD_FILES[self.net_name]
        cands = []
        if os.environ.get(WEIGHTS_DIR_ENV):
            cands.append(Path(os.environ[WEIGHTS_DIR_ENV]) / f"lpips_{fname}")
        pkg = _lpips_package_weights_dir()
        if pkg is not None:
            cands.append(pkg / fname)
        return find_weights(
            path,
            description=f"LPIPS v0.1 linear heads for {self.net_name!r}: the lpips package file "
            f"lpips/weights/v0.1/{fname} (keys lin0.model.1.weight .. lin4.model.1.weight)",
            how_to_pass=f"Pass LPIPS(net={self.net_name!r}, head_weights='/path/to/{fname}') "
            f"(the file ships inside the lpips wheel: `pip install lpips --no-deps`).",
            candidates=cands,
        )

    def load_backbone(self, path: str | os.PathLike[str]) -> None:
        """Load the trunk from a torchvision checkpoint (strict on ``features.*``)."""
        path = Path(path)
        desc = _BACKBONE_DESC[self.net_name]
        sd = _backbone_state(load_state_dict_file(path, desc))
        expected = set(self.net.features.state_dict().keys())
        missing = sorted(expected - set(sd), key=lambda k: (int(k.split(".")[0]), k))
        unexpected = sorted(set(sd) - expected)
        if missing or unexpected:
            raise ValueError(
                f"{str(path)!r} is not the expected {desc}: missing keys "
                f"{['features.' + k for k in missing][:6]}, unexpected keys {['features.' + k for k in unexpected][:6]}"
            )
        expected_shapes = self.net.features.state_dict()
        wrong = [f"features.{k}: {tuple(v.shape)} != {tuple(expected_shapes[k].shape)}" for k, v in sd.items()
                 if v.shape != expected_shapes[k].shape]
        if wrong:  # load_state_dict would say so over several lines
            raise ValueError(f"{str(path)!r} does not match the {desc}: {len(wrong)} shape mismatch(es): {'; '.join(wrong[:3])}")
        self.net.features.load_state_dict(sd, strict=True)
        self.backbone_path = path

    def load_heads(self, path: str | os.PathLike[str]) -> None:
        """Load ``lin0..lin4`` from the lpips package's v0.1 weight file (strict)."""
        path = Path(path)
        desc = f"LPIPS v0.1 linear heads for {self.net_name!r}"
        sd = load_state_dict_file(path, desc)
        state = {}
        for i in range(5):
            for key in (f"lin{i}.model.1.weight", f"lin{i}.model.0.weight"):
                if key in sd:
                    state[f"lin{i}.model.1.weight"] = sd[key]
                    break
            else:
                raise ValueError(f"{str(path)!r} is not an {desc} file: key 'lin{i}.model.1.weight' is missing")
        for i, lin in enumerate(self.lins):
            w = state[f"lin{i}.model.1.weight"]
            if not w.is_floating_point():  # integer heads would load truncated without a word
                raise ValueError(f"{str(path)!r}: lin{i} holds {w.dtype} values, not float weights: not an {desc} file")
            if w.shape != lin.model[1].weight.shape:
                raise ValueError(
                    f"{str(path)!r}: lin{i} has shape {tuple(w.shape)}, expected {tuple(lin.model[1].weight.shape)} "
                    f"(heads for another trunk than {self.net_name!r}?)"
                )
            with torch.no_grad():
                lin.model[1].weight.copy_(w)
        self.head_path = path

    # ---------------------------------------------------------------- modes
    def train(self, mode: bool = True) -> LPIPS:
        """LPIPS is a fixed metric: it stays in eval mode whatever ``mode`` is."""
        return super().train(False)

    # ---------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor, y: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """LPIPS distance of images ``(B, 3, H, W)`` in ``[-1, 1]`` (``normalize=True``: in
        ``[0, 1]``) -> ``(B,)``."""
        _check_tensors(x, y)
        if x.shape != y.shape or x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected two (B, 3, H, W) images of the same shape, got {tuple(x.shape)}, {tuple(y.shape)}")
        self._check_images(x)
        if normalize:
            x = 2 * x - 1
            y = 2 * y - 1
        b = x.shape[0]
        dtype = self.lin0.model[1].weight.dtype
        taps = self.net(self.scaling_layer(torch.cat([x, y], dim=0).to(dtype)))
        val = torch.zeros(b, dtype=dtype, device=x.device)
        for k, f in enumerate(taps):
            diff = (normalize_tensor(f[:b]) - normalize_tensor(f[b:])) ** 2
            val = val + self.lins[k](diff).mean(dim=(2, 3))[:, 0]
        return val

    def video(self, x: torch.Tensor, y: torch.Tensor, per_frame: bool = False, frame_chunk: int = 16) -> torch.Tensor:
        """LPIPS of videos ``(B, 3, T, H, W)`` (or a clip ``(3, T, H, W)``) in ``[-1, 1]``: a clip's
        LPIPS is the mean over its frames ``(B,)``; ``per_frame=True`` returns ``(B, T)``.
        ``frame_chunk`` frames go through the network at once.  Values beyond +-9 (0..255 frames),
        NaN and channels-last frames raise ``ValueError``."""
        _check_tensors(x, y)
        if isinstance(frame_chunk, bool) or not isinstance(frame_chunk, int) or frame_chunk < 1:
            raise ValueError(f"frame_chunk must be an integer >= 1, got {frame_chunk!r}")
        given = f"{tuple(x.shape)}, {tuple(y.shape)}"
        if x.dim() == 4:
            x, y = x.unsqueeze(0), y.unsqueeze(0)
        if x.shape != y.shape or x.dim() != 5:
            raise ValueError(f"expected two (B, 3, T, H, W) videos of the same shape, got {given}")
        if x.shape[1] != 3:  # (T, H, W, 3) frames would be read as T channels: a torch shape error deep in the trunk
            raise ValueError(f"expected RGB videos (B, 3, T, H, W) or clips (3, T, H, W) in [-1, 1], got {given} "
                             "(map uint8 (T, H, W, 3) frames with ivvae.io.frames_to_tensor)")
        _check_video_range(x, "x")
        _check_video_range(y, "y")
        b, c, t, h, w = x.shape
        if b * t == 0:
            raise ValueError(f"expected at least one frame, got videos of shape {tuple(x.shape)}")
        xf = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        yf = y.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        out = [self(xf[i : i + frame_chunk], yf[i : i + frame_chunk]) for i in range(0, b * t, frame_chunk)]
        frames = torch.cat(out).view(b, t)
        return frames if per_frame else frames.mean(dim=1)

    def _check_images(self, x: torch.Tensor) -> None:
        """Float images at least as large as the trunk's pooling needs (else a torch shape error)."""
        if not x.is_floating_point():
            raise ValueError(f"LPIPS takes float images in [-1, 1], got {x.dtype} (map uint8 frames with ivvae.io.frames_to_tensor)")
        smallest = MIN_SIZE[self.net_name]
        if x.shape[0] == 0 or min(x.shape[-2:]) < smallest:
            raise ValueError(f"LPIPS ({self.net_name}) needs at least one image of {smallest}x{smallest} pixels or more, "
                             f"got shape {tuple(x.shape)}")

    def extra_repr(self) -> str:
        return f"net={self.net_name!r}, backbone={self.backbone_path}, heads={self.head_path}"
