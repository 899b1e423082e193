"""LPIPS: our plain-torch network against the reference lpips package.

The reference is the real ``lpips`` package (``lpips/lpips.py``: ScalingLayer, normalize_tensor,
NetLinLayer, spatial average, sum) with its real v0.1 linear-head files.  The package imports
torchvision only to build the trunk (``lpips/pretrained_networks.py`` slices
``tv.alexnet(...).features`` / ``tv.vgg16(...).features``); torchvision is not a dependency of this
project, so the test puts a minimal stand-in ``torchvision.models`` module in ``sys.modules`` whose
``alexnet()`` / ``vgg16()`` return a ``.features`` Sequential written here independently from
torchvision's definitions, filled with the same random weights that our network reads from a
file.  The package's own slicing and LPIPS code then produce the reference numbers.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from ivvae.eval.lpips import LPIPS, WeightsNotFoundError

lpips_spec = importlib.util.find_spec("lpips")  # the reference (test extra); tests needing it skip without it


def _lpips_weights_dir() -> Path:
    if lpips_spec is None:
        pytest.skip("the lpips package (test extra) is not installed")
    return Path(list(lpips_spec.submodule_search_locations)[0]) / "weights" / "v0.1"


# --- independent transcription of torchvision's trunks ----------------------------------------
def _tv_alexnet_features() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


def _tv_vgg16_features() -> nn.Sequential:
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    layers: list[nn.Module] = []
    c = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(c, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            c = v
    return nn.Sequential(*layers)


def _random_torchvision_checkpoint(features: nn.Sequential, seed: int) -> dict[str, torch.Tensor]:
    """A torchvision-style checkpoint: ``features.*`` (random, He-scaled) plus a ``classifier``."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, v in features.state_dict().items():
        if k.endswith("weight"):
            fan_in = v[0].numel()
            sd["features." + k] = torch.randn(v.shape, generator=g) * (2.0 / fan_in) ** 0.5
        else:
            sd["features." + k] = torch.randn(v.shape, generator=g) * 0.1
    sd["classifier.1.weight"] = torch.randn(8, 4, generator=g)  # ignored by LPIPS
    sd["classifier.1.bias"] = torch.randn(8, generator=g)
    return sd


@pytest.fixture
def reference_lpips(monkeypatch):
    """Yields ``make(net, checkpoint) -> lpips.LPIPS`` using the real package with a stand-in
    torchvision that serves ``checkpoint``; cleans the imported modules afterwards."""
    weights_dir = _lpips_weights_dir()
    saved = {k: v for k, v in sys.modules.items() if k == "lpips" or k.startswith("lpips.")}
    for k in saved:
        monkeypatch.delitem(sys.modules, k)
    served: dict[str, dict[str, torch.Tensor]] = {}

    def _make(builder, name):
        def factory(pretrained: bool = False, **kwargs):
            assert pretrained, "the reference must be built with pretrained trunk weights"
            m = nn.Module()
            m.features = builder()
            m.features.load_state_dict({k[len("features.") :]: v for k, v in served[name].items() if k.startswith("features.")})
            return m

        return factory

    tv = types.ModuleType("torchvision")
    models = types.ModuleType("torchvision.models")
    models.alexnet = _make(_tv_alexnet_features, "alex")
    models.vgg16 = _make(_tv_vgg16_features, "vgg")
    models.squeezenet1_1 = None
    models.resnet18 = models.resnet34 = models.resnet50 = models.resnet101 = models.resnet152 = None
    tv.models = models
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    monkeypatch.setitem(sys.modules, "torchvision.models", models)
    import lpips  # the real package, importing the stand-in torchvision

    def make(net: str, checkpoint: dict[str, torch.Tensor]):
        served[net] = checkpoint
        return lpips.LPIPS(net=net, version="0.1", model_path=str(weights_dir / f"{net}.pth"), verbose=False)

    yield make
    for k in [k for k in sys.modules if k == "lpips" or k.startswith("lpips.")]:
        del sys.modules[k]
    sys.modules.update(saved)


def _images(seed: int, n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g) * 2 - 1
    # y: a blurred, noisy version of x (a plausible distortion)
    y = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1) + 0.1 * torch.randn(x.shape, generator=g)
    return x, y.clamp(-1, 1)


@pytest.mark.parametrize("net, size", [("alex", 96), ("vgg", 48)])
def test_matches_reference_package(tmp_path, reference_lpips, net, size):
    builder = _tv_alexnet_features if net == "alex" else _tv_vgg16_features
    ckpt = _random_torchvision_checkpoint(builder(), seed=1 if net == "alex" else 2)
    ckpt_path = tmp_path / ("alexnet-owt-7be5be79.pth" if net == "alex" else "vgg16-397923af.pth")
    torch.save(ckpt, ckpt_path)
    head_path = _lpips_weights_dir() / f"{net}.pth"

    ref = reference_lpips(net, ckpt)
    ours = LPIPS(net=net, backbone_weights=ckpt_path, head_weights=head_path)
    x, y = _images(0, 3, size)
    with torch.no_grad():
        expected = ref(x, y).flatten()
        got = ours(x, y)
        got_01 = ours((x + 1) / 2, (y + 1) / 2, normalize=True)
        same = ours(x, x)
    assert got.shape == (3,)
    assert expected.abs().min() > 1e-3  # a non-trivial comparison
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_01, expected, rtol=1e-5, atol=1e-6)
    assert torch.all(same.abs() < 1e-7)
    # the real head weights were loaded (they are non-negative and not our untrained constant)
    assert torch.equal(ours.lin2.model[1].weight, torch.load(head_path, map_location="cpu")["lin2.model.1.weight"])


def test_video_helper_and_gradients(tmp_path):
    ckpt = _random_torchvision_checkpoint(_tv_alexnet_features(), seed=3)
    torch.save(ckpt, tmp_path / "alexnet-owt-7be5be79.pth")
    heads = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate([64, 192, 384, 256, 256])}
    torch.save(heads, tmp_path / "alex.pth")
    m = LPIPS("alex", backbone_weights=tmp_path / "alexnet-owt-7be5be79.pth", head_weights=tmp_path / "alex.pth")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 5, 64, 64, generator=g) * 2 - 1
    y = (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    per_frame = m.video(x, y, per_frame=True, frame_chunk=3)
    assert per_frame.shape == (2, 5)
    frame = m(x[:, :, 2], y[:, :, 2])
    torch.testing.assert_close(per_frame[:, 2], frame)
    torch.testing.assert_close(m.video(x, y), per_frame.mean(dim=1))
    torch.testing.assert_close(m.video(x[0], y[0]), per_frame[:1].mean(dim=1))
    # usable as a loss: gradients reach the input, the network stays frozen and in eval mode
    m.train()
    assert not m.training and not m.lin0.model[0].training
    y_req = y[:, :, 0].clone().requires_grad_(True)
    m(x[:, :, 0], y_req).sum().backward()
    assert y_req.grad is not None and y_req.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in m.parameters())


def test_missing_and_wrong_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("IVVAE_WEIGHTS_DIR", raising=False)
    with pytest.raises(WeightsNotFoundError) as ei:
        LPIPS("alex", backbone_weights=tmp_path / "nope.pth", head_weights=tmp_path / "alex.pth")
    msg = str(ei.value)
    assert "alexnet-owt-7be5be79.pth" in msg and "nope.pth" in msg and "backbone_weights=" in msg
    assert isinstance(ei.value, FileNotFoundError)
    # default lookup finds nothing for the trunk -> message lists where it looked
    with pytest.raises(WeightsNotFoundError, match="vgg16-397923af.pth"):
        LPIPS("vgg")
    # a file found through $IVVAE_WEIGHTS_DIR; then a missing head file is reported
    ckpt = _random_torchvision_checkpoint(_tv_alexnet_features(), seed=4)
    torch.save(ckpt, tmp_path / "alexnet-owt-7be5be79.pth")
    monkeypatch.setenv("IVVAE_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(WeightsNotFoundError, match="head_weights=") as ei:
        LPIPS("alex", head_weights=tmp_path / "missing_alex.pth")
    assert "missing_alex.pth" in str(ei.value)
    # wrong trunk file: VGG weights given to AlexNet
    torch.save(_random_torchvision_checkpoint(_tv_vgg16_features(), seed=5), tmp_path / "vgg.pth")
    heads = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate([64, 192, 384, 256, 256])}
    torch.save(heads, tmp_path / "lpips_alex.pth")
    with pytest.raises(ValueError, match="AlexNet"):
        LPIPS("alex", backbone_weights=tmp_path / "vgg.pth")
    # an empty file / a state dict with no tensors: named, with what is wrong
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.pth' is empty \(0 bytes\), not the torchvision AlexNet"):
        LPIPS("alex", backbone_weights=tmp_path / "empty.pth")
    torch.save({}, tmp_path / "nothing.pth")
    with pytest.raises(ValueError, match=r"nothing.pth' does not hold a state dict of tensors"):
        LPIPS("alex", head_weights=tmp_path / "nothing.pth")
    # heads of another trunk
    with pytest.raises(ValueError, match="lin1"):
        LPIPS("vgg", backbone_weights=tmp_path / "vgg.pth", head_weights=tmp_path / "lpips_alex.pth")
    # found through $IVVAE_WEIGHTS_DIR (trunk) and lpips_alex.pth (heads)
    m = LPIPS("alex")
    assert m.backbone_path == tmp_path / "alexnet-owt-7be5be79.pth"
    assert m.head_path == tmp_path / "lpips_alex.pth"


def test_untrained_mode_reads_no_file(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("IVVAE_WEIGHTS_DIR", raising=False)
    m = LPIPS("alex", pretrained=False)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    assert m(x, x).item() == pytest.approx(0.0, abs=1e-7)
    assert m(x, -x).item() > 0
