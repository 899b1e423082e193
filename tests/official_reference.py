"""An independent, deliberately literal reference implementation of IV-VAE.

Written from ``shared/spec/architecture.md`` alone (not from ``ivvae.layers`` / ``ivvae.models``),
as a test oracle. It works directly on a state dict with the *official* checkpoint key names
(``encoder.downsamples.3.residual.2.conv_3d.weight`` ...) and processes time exactly as the authors
do: encode frame 0 alone then chunks of 4 frames; decode latent frame 0 alone then one latent frame
at a time, with an explicit per-layer cache (a dict keyed by the layer's official key prefix).

Clarity over speed and elegance: every block is a plain function of ``(state, prefix, x)``.

Tensors are ``(B, channels, T, H, W)`` everywhere. Every feature map has two halves of equal width:
the keyframe half (first) and the temporal half (second).

Structure (derived from the spec tables + the layout files; ``official_shapes`` regenerates the
layout files exactly for the released variants):

encoder (widths C, 2C, 4C, 4C)
    conv1                        dual conv 3 -> C, 3x3x3                      t_c 4
    downsamples.0, .1            residual-3D C -> C                           t_c 4
    downsamples.2                spatial downsample (C)
    downsamples.3, .4            residual-3D C -> 2C (shortcut on .3)         t_c 4
    downsamples.5                space-time downsample (2C)
    downsamples.6, .7            residual-3D 2C -> 4C (shortcut on .6)        t_c 2
    downsamples.8                space-time downsample (4C)
    downsamples.9                attention (4C)
    downsamples.10 .. .13        (residual-2D 4C, attention) x 2
    middle.0 / .1 / .2           residual-2D, attention, residual-2D
    head.0 (norm), head.1 (SiLU), head.2 (PAC -> width Z)
conv1                            dual conv 1x1, width Z -> Z; regrouped into mean / logvar
conv2                            dual conv 1x1, Z channels -> width Z/2
decoder (widths 4C, 4C, 2C, C)
    conv1                        dense 2-D conv 3x3, Z -> 4C
    middle.0 / .1 / .2           residual-2D, attention, residual-2D
    upsamples.0 .. .5            (residual-2D 4C, attention) x 3
    upsamples.6                  space-time upsample 4C -> 2C
    upsamples.7, .8, .9          residual-3D 2C -> 4C (shortcut on .7), 4C, 4C   t_c 2
    upsamples.10                 space-time upsample 4C -> 2C
    upsamples.11, .12, .13       residual-3D 2C -> 2C                           t_c 4
    upsamples.14                 spatial upsample 2C -> C
    upsamples.15, .16, .17       residual-3D C -> C                             t_c 4
    head.0 (norm), head.1 (SiLU), head.2 dual conv 3x3x3 -> 3 + 3               t_c 4
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F

MULTIPLIERS = (1, 2, 4, 4)
ENCODER_BLOCKS = 2
DECODER_BLOCKS = 3
PAC_DILATIONS = (("PAC_0", 1, 1), ("PAC_1", 3, 1), ("PAC_3", 3, 3), ("PAC_6", 3, 6), ("PAC_9", 3, 9), ("PAC_12", 3, 12))
# (name, kernel size, dilation); PAC_0 is a plain 1x1 conv, PAC_1 a plain 3x3.


# --------------------------------------------------------------------------------------------------
# The plan: one list of layers per network, shared by the shape generator and the forward pass.
# Each entry is a dict with 'kind', 'key' (official prefix) and the widths (per half) it needs.
# --------------------------------------------------------------------------------------------------


def encoder_plan(C: int, Z: int) -> list[dict]:
    plan = [dict(kind="dual", key="encoder.conv1", cin=3, w=C, k=3, t_c=4)]
    widths = [C * m for m in MULTIPLIERS]
    # stage -> (t_c of its 3-D blocks, downsample kind after its blocks)
    stage_info = {0: (4, "spatial"), 1: (4, "spacetime"), 2: (2, "spacetime"), 3: (None, None)}
    idx = 0
    w_in = C
    for stage, w_out in enumerate(widths):
        t_c, down = stage_info[stage]
        for _ in range(ENCODER_BLOCKS):
            if stage < 3:
                plan.append(dict(kind="res3d", key=f"encoder.downsamples.{idx}", w_in=w_in, w_out=w_out, t_c=t_c))
                idx += 1
            else:
                plan.append(dict(kind="res2d", key=f"encoder.downsamples.{idx}", w_in=w_in, w_out=w_out))
                idx += 1
                plan.append(dict(kind="attn", key=f"encoder.downsamples.{idx}", w=w_out))
                idx += 1
            w_in = w_out
        if down is not None:
            plan.append(dict(kind="down_" + down, key=f"encoder.downsamples.{idx}", w=w_out))
            idx += 1
        if stage == 2:  # attention once fully compressed (after the last space-time downsample)
            plan.append(dict(kind="attn", key=f"encoder.downsamples.{idx}", w=w_out))
            idx += 1
    w = widths[-1]
    plan += [
        dict(kind="res2d", key="encoder.middle.0", w_in=w, w_out=w),
        dict(kind="attn", key="encoder.middle.1", w=w),
        dict(kind="res2d", key="encoder.middle.2", w_in=w, w_out=w),
        dict(kind="pac_head", key="encoder.head", w=w, z=Z),
        dict(kind="dual", key="conv1", cin=2 * Z, w=Z, k=1, t_c=None),
    ]
    return plan


def decoder_plan(C: int, Z: int) -> list[dict]:
    top = C * MULTIPLIERS[-1]
    plan = [
        dict(kind="dual", key="conv2", cin=Z, w=Z // 2, k=1, t_c=None),
        dict(kind="dense", key="decoder.conv1", cin=Z, w=top, k=3, dilation=1),
        dict(kind="res2d", key="decoder.middle.0", w_in=top, w_out=top),
        dict(kind="attn", key="decoder.middle.1", w=top),
        dict(kind="res2d", key="decoder.middle.2", w_in=top, w_out=top),
    ]
    widths = [C * m for m in reversed(MULTIPLIERS)]  # 4C, 4C, 2C, C
    stage_info = {0: (None, "spacetime"), 1: (2, "spacetime"), 2: (4, "spatial"), 3: (4, None)}
    idx = 0
    w_in = top
    for stage, w_out in enumerate(widths):
        t_c, up = stage_info[stage]
        for _ in range(DECODER_BLOCKS):
            if stage == 0:
                plan.append(dict(kind="res2d", key=f"decoder.upsamples.{idx}", w_in=w_in, w_out=w_out))
                idx += 1
                plan.append(dict(kind="attn", key=f"decoder.upsamples.{idx}", w=w_out))
                idx += 1
            else:
                plan.append(dict(kind="res3d", key=f"decoder.upsamples.{idx}", w_in=w_in, w_out=w_out, t_c=t_c))
                idx += 1
            w_in = w_out
        if up is not None:
            plan.append(dict(kind="up_" + up, key=f"decoder.upsamples.{idx}", w=w_out))
            idx += 1
            w_in = w_out // 2  # each upsample halves the width it hands on
    plan.append(dict(kind="rgb_head", key="decoder.head", w=widths[-1], t_c=4))
    return plan


# --------------------------------------------------------------------------------------------------
# Shapes of the official checkpoint.
# --------------------------------------------------------------------------------------------------


def _entry_shapes(e: dict) -> list[tuple[str, tuple[int, ...]]]:
    kind, p = e["kind"], e["key"]
    out: list[tuple[str, tuple[int, ...]]] = []

    def dual(prefix, cin, w, k):
        out.extend([
            (f"{prefix}.conv_2d.weight", (w, cin, k, k)),
            (f"{prefix}.conv_2d.bias", (w,)),
            (f"{prefix}.conv_3d.weight", (w, cin, k, k, k)),
            (f"{prefix}.conv_3d.bias", (w,)),
        ])

    def dense(prefix, cin, cout, k):
        out.extend([(f"{prefix}.conv.weight", (cout, cin, k, k)), (f"{prefix}.conv.bias", (cout,))])

    def gamma(prefix, w):
        out.append((f"{prefix}.gamma", (2 * w, 1, 1, 1)))

    if kind == "dual":
        dual(p, e["cin"], e["w"], e["k"])
    elif kind == "dense":
        dense(p, e["cin"], 2 * e["w"], e["k"])
    elif kind in ("res3d", "res2d"):
        wi, wo = e["w_in"], e["w_out"]
        conv = (lambda pre, ci, w: dual(pre, ci, w, 3)) if kind == "res3d" else (lambda pre, ci, w: dense(pre, ci, 2 * w, 3))
        gamma(f"{p}.residual.0", wi)
        conv(f"{p}.residual.2", 2 * wi, wo)
        gamma(f"{p}.residual.3", wo)
        conv(f"{p}.residual.6", 2 * wo, wo)
        if wi != wo:
            assert kind == "res3d"
            dual(f"{p}.shortcut", 2 * wi, wo, 1)
    elif kind == "attn":
        w = e["w"]
        for half in ("Attention_2d", "Attention_3d"):
            out.extend([
                (f"{p}.{half}.norm.gamma", (w, 1, 1)),
                (f"{p}.{half}.to_qkv.weight", (3 * w, w, 1, 1)),
                (f"{p}.{half}.to_qkv.bias", (3 * w,)),
                (f"{p}.{half}.proj.weight", (w, w, 1, 1)),
                (f"{p}.{half}.proj.bias", (w,)),
            ])
    elif kind in ("down_spatial", "down_spacetime"):
        w = e["w"]
        for half in ("resample_2d", "resample_3d"):
            out.extend([(f"{p}.{half}.1.weight", (w, w, 3, 3)), (f"{p}.{half}.1.bias", (w,))])
        if kind == "down_spacetime":
            out.extend([(f"{p}.time_conv.weight", (w, w, 2, 1, 1)), (f"{p}.time_conv.bias", (w,))])
    elif kind in ("up_spatial", "up_spacetime"):
        w = e["w"]
        for half in ("resample_2d", "resample_3d"):
            out.extend([(f"{p}.{half}.1.weight", (w // 2, w, 3, 3)), (f"{p}.{half}.1.bias", (w // 2,))])
        if kind == "up_spacetime":
            out.extend([(f"{p}.time_conv.weight", (2 * w, w, 1, 1, 1)), (f"{p}.time_conv.bias", (2 * w,))])
    elif kind == "pac_head":
        w, z = e["w"], e["z"]
        gamma(f"{p}.0", w)
        for name, k, _ in PAC_DILATIONS:
            dense(f"{p}.2.{name}", 2 * w, 2 * z, k)
        dense(f"{p}.2.PAC_conv", 12 * z, 2 * z, 1)
    elif kind == "rgb_head":
        gamma(f"{p}.0", e["w"])
        dual(f"{p}.2", 2 * e["w"], 3, 3)
    else:  # pragma: no cover
        raise ValueError(kind)
    return out


def official_shapes(C: int, Z: int) -> OrderedDict[str, tuple[int, ...]]:
    """Every tensor key of the official checkpoint with base width C, latent Z, in checkpoint order."""
    assert Z % 2 == 0, "Z must be even (the latent is split between the two branches)"
    shapes: OrderedDict[str, tuple[int, ...]] = OrderedDict()
    for e in encoder_plan(C, Z) + decoder_plan(C, Z):
        for k, s in _entry_shapes(e):
            assert k not in shapes, k
            shapes[k] = s
    return shapes


def random_official_state(C: int, Z: int, seed: int = 0, dtype=torch.float32) -> dict[str, torch.Tensor]:
    """A random state dict with the official layout, scaled so activations stay O(1)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in official_shapes(C, Z).items():
        if key.endswith("gamma"):
            t = 1.0 + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
        elif key.endswith("bias"):
            t = 0.05 * torch.randn(shape, generator=g, dtype=torch.float64)
        else:
            fan_in = math.prod(shape[1:])
            t = torch.randn(shape, generator=g, dtype=torch.float64) / math.sqrt(fan_in)
        state[key] = t.to(dtype)
    return state


# --------------------------------------------------------------------------------------------------
# Building blocks.
# --------------------------------------------------------------------------------------------------


def halves(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    w = x.shape[1] // 2
    assert 2 * w == x.shape[1]
    return x[:, :w], x[:, w:]


def rms_norm_halves(x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Each half normalised on its own over its channels, times sqrt(half width), times gamma."""
    kf, tp = halves(x)
    w = kf.shape[1]
    kf = F.normalize(kf, dim=1, eps=1e-12) * math.sqrt(w)
    tp = F.normalize(tp, dim=1, eps=1e-12) * math.sqrt(w)
    y = torch.cat([kf, tp], dim=1)
    return y * gamma.reshape(1, -1, *([1] * (x.dim() - 2)))


def conv2d_per_frame(x: torch.Tensor, weight, bias, stride=1, padding=0, dilation=1) -> torch.Tensor:
    """A 2-D conv applied to every frame of ``x`` (B, c, T, H, W) independently."""
    B, c, T, H, W = x.shape
    frames = x.permute(0, 2, 1, 3, 4).reshape(B * T, c, H, W)
    y = F.conv2d(frames, weight, bias, stride=stride, padding=padding, dilation=dilation)
    return y.reshape(B, T, *y.shape[1:]).permute(0, 2, 1, 3, 4)


def group_causal_conv(x: torch.Tensor, weight, bias, cache: dict, key: str, t_c: int | None) -> torch.Tensor:
    """GCConv, temporal kernel 3 (or a pointwise-in-time conv for temporal kernel 1)."""
    kt, kh, kw = weight.shape[2:]
    if kt == 1:
        return F.conv3d(x, weight, bias, padding=(0, kh // 2, kw // 2))
    assert kt == 3 and t_c is not None
    T = x.shape[2]
    if key not in cache:
        # the video's first frame: padded [x, x, 0]; never needs a cache
        assert T == 1, f"{key}: the first chunk must be a single frame, got {T}"
        prev = x[:, :, :1]
    else:
        prev = cache[key]
        assert T % t_c == 0, f"{key}: chunk of {T} frames is not whole groups of {t_c}"
    group_len = 1 if T == 1 else t_c
    zero = torch.zeros_like(x[:, :, :1])
    outs = []
    for start in range(0, T, group_len):
        group = x[:, :, start:start + group_len]
        before = prev if start == 0 else x[:, :, start - 1:start]
        padded = torch.cat([before, group, zero], dim=2)
        outs.append(F.conv3d(padded, weight, bias, padding=(0, kh // 2, kw // 2)))
    cache[key] = x[:, :, -1:]  # last input frame of this chunk: the padding before the next chunk
    return torch.cat(outs, dim=2)


def dual_conv(state, prefix: str, x, cache: dict, t_c: int | None) -> torch.Tensor:
    """Sep_Conv3d: per-frame 2-D conv -> keyframe half; group-causal 3-D conv -> temporal half."""
    w2 = state[f"{prefix}.conv_2d.weight"]
    kf = conv2d_per_frame(x, w2, state[f"{prefix}.conv_2d.bias"], padding=w2.shape[-1] // 2)
    tp = group_causal_conv(x, state[f"{prefix}.conv_3d.weight"], state[f"{prefix}.conv_3d.bias"], cache, f"{prefix}.conv_3d", t_c)
    return torch.cat([kf, tp], dim=1)


def dense_conv(state, prefix: str, x, dilation: int = 1) -> torch.Tensor:
    """Sep_Conv2d: one per-frame 2-D conv over all channels."""
    w = state[f"{prefix}.conv.weight"]
    pad = dilation * (w.shape[-1] // 2)
    return conv2d_per_frame(x, w, state[f"{prefix}.conv.bias"], padding=pad, dilation=dilation)


def residual_3d(state, p: str, x, cache: dict, t_c: int) -> torch.Tensor:
    h = rms_norm_halves(x, state[f"{p}.residual.0.gamma"])
    h = F.silu(h)
    h = dual_conv(state, f"{p}.residual.2", h, cache, t_c)
    h = rms_norm_halves(h, state[f"{p}.residual.3.gamma"])
    h = F.silu(h)
    h = dual_conv(state, f"{p}.residual.6", h, cache, t_c)
    if f"{p}.shortcut.conv_2d.weight" in state:
        shortcut = dual_conv(state, f"{p}.shortcut", x, cache, None)
    else:
        shortcut = x
    return h + shortcut


def residual_2d(state, p: str, x) -> torch.Tensor:
    h = rms_norm_halves(x, state[f"{p}.residual.0.gamma"])
    h = F.silu(h)
    h = dense_conv(state, f"{p}.residual.2", h)
    h = rms_norm_halves(h, state[f"{p}.residual.3.gamma"])
    h = F.silu(h)
    h = dense_conv(state, f"{p}.residual.6", h)
    assert f"{p}.shortcut.conv.weight" not in state
    return h + x


def _attention_one_half(state, p: str, x) -> torch.Tensor:
    """Single head, per frame, over the H*W positions; plus the input."""
    B, w, T, H, W = x.shape
    frames = x.permute(0, 2, 1, 3, 4).reshape(B * T, w, H, W)
    n = F.normalize(frames, dim=1, eps=1e-12) * math.sqrt(w) * state[f"{p}.norm.gamma"].reshape(1, w, 1, 1)
    qkv = F.conv2d(n, state[f"{p}.to_qkv.weight"], state[f"{p}.to_qkv.bias"])
    q, k, v = qkv[:, :w], qkv[:, w:2 * w], qkv[:, 2 * w:]
    q = q.reshape(B * T, w, H * W).transpose(1, 2)  # (BT, HW, w)
    k = k.reshape(B * T, w, H * W).transpose(1, 2)
    v = v.reshape(B * T, w, H * W).transpose(1, 2)
    attn = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(w), dim=-1)
    o = (attn @ v).transpose(1, 2).reshape(B * T, w, H, W)
    o = F.conv2d(o, state[f"{p}.proj.weight"], state[f"{p}.proj.bias"])
    y = o + frames
    return y.reshape(B, T, w, H, W).permute(0, 2, 1, 3, 4)


def attention(state, p: str, x) -> torch.Tensor:
    kf, tp = halves(x)
    return torch.cat([_attention_one_half(state, f"{p}.Attention_2d", kf), _attention_one_half(state, f"{p}.Attention_3d", tp)], dim=1)


def spatial_downsample(state, p: str, x) -> tuple[torch.Tensor, torch.Tensor]:
    kf, tp = halves(x)
    out = []
    for half, name in ((kf, "resample_2d"), (tp, "resample_3d")):
        half = F.pad(half, (0, 1, 0, 1))  # zero: one pixel right (W) and bottom (H)
        out.append(conv2d_per_frame(half, state[f"{p}.{name}.1.weight"], state[f"{p}.{name}.1.bias"], stride=2))
    return out[0], out[1]


def spacetime_downsample(state, p: str, x) -> torch.Tensor:
    kf, tp = spatial_downsample(state, p, x)
    if x.shape[2] > 1:
        assert x.shape[2] % 2 == 0
        kf = kf[:, :, 0::2]
        tp = F.conv3d(tp, state[f"{p}.time_conv.weight"], state[f"{p}.time_conv.bias"], stride=(2, 1, 1))
    return torch.cat([kf, tp], dim=1)


def upsample(state, p: str, x, temporal: bool) -> torch.Tensor:
    kf, tp = halves(x)
    if temporal:
        B, w, T, H, W = kf.shape
        kf = kf.repeat_interleave(2, dim=2)
        y = F.conv3d(tp, state[f"{p}.time_conv.weight"], state[f"{p}.time_conv.bias"])  # (B, 2w, T, H, W)
        earlier, later = y[:, :w], y[:, w:]
        tp = torch.stack([earlier, later], dim=3).reshape(B, w, 2 * T, H, W)
    out = []
    for half, name in ((kf, "resample_2d"), (tp, "resample_3d")):
        B, w, T, H, W = half.shape
        frames = half.permute(0, 2, 1, 3, 4).reshape(B * T, w, H, W)
        frames = F.interpolate(frames, scale_factor=2.0, mode="nearest-exact")
        frames = frames.reshape(B, T, w, 2 * H, 2 * W).permute(0, 2, 1, 3, 4)
        out.append(conv2d_per_frame(frames, state[f"{p}.{name}.1.weight"], state[f"{p}.{name}.1.bias"], padding=1))
    return torch.cat(out, dim=1)


def pac_head(state, p: str, x, Z: int) -> torch.Tensor:
    h = rms_norm_halves(x, state[f"{p}.0.gamma"])
    h = F.silu(h)
    branches = [dense_conv(state, f"{p}.2.{name}", h, dilation=d) for name, _, d in PAC_DILATIONS]
    for b in branches:
        assert b.shape[1] == 2 * Z
    cat = torch.cat([b[:, :Z] for b in branches] + [b[:, Z:] for b in branches], dim=1)
    return dense_conv(state, f"{p}.2.PAC_conv", cat)


def rgb_head(state, p: str, x, cache: dict, t_c: int) -> torch.Tensor:
    h = rms_norm_halves(x, state[f"{p}.0.gamma"])
    h = F.silu(h)
    return dual_conv(state, f"{p}.2", h, cache, t_c)


def run_plan(state, plan: list[dict], x, cache: dict, first_chunk: bool) -> torch.Tensor:
    for e in plan:
        kind, p = e["kind"], e["key"]
        if kind == "dual":
            x = dual_conv(state, p, x, cache, e["t_c"])
        elif kind == "dense":
            x = dense_conv(state, p, x)
        elif kind == "res3d":
            x = residual_3d(state, p, x, cache, e["t_c"])
        elif kind == "res2d":
            x = residual_2d(state, p, x)
        elif kind == "attn":
            x = attention(state, p, x)
        elif kind == "down_spatial":
            x = torch.cat(spatial_downsample(state, p, x), dim=1)
        elif kind == "down_spacetime":
            x = spacetime_downsample(state, p, x)
        elif kind == "up_spatial":
            x = upsample(state, p, x, temporal=False)
        elif kind == "up_spacetime":
            x = upsample(state, p, x, temporal=not first_chunk)
        elif kind == "pac_head":
            x = pac_head(state, p, x, e["z"])
        elif kind == "rgb_head":
            x = rgb_head(state, p, x, cache, e["t_c"])
        else:  # pragma: no cover
            raise ValueError(kind)
    return x


def widths_of(state) -> tuple[int, int]:
    C = state["encoder.conv1.conv_2d.weight"].shape[0]
    Z = state["conv1.conv_2d.weight"].shape[0]
    return C, Z


# --------------------------------------------------------------------------------------------------
# Public functions.
# --------------------------------------------------------------------------------------------------


def reference_encode_moments(state, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, logvar), each (B, Z, 1 + (T-1)/4, H/8, W/8), chunk by chunk as the authors run it."""
    C, Z = widths_of(state)
    B, c, T, H, W = video.shape
    assert c == 3 and (T - 1) % 4 == 0 and H % 8 == 0 and W % 8 == 0, video.shape
    plan = encoder_plan(C, Z)
    cache: dict = {}
    chunks = [video[:, :, :1]] + [video[:, :, s:s + 4] for s in range(1, T, 4)]
    means, logvars = [], []
    for i, chunk in enumerate(chunks):
        out = run_plan(state, plan, chunk, cache, first_chunk=(i == 0))  # (B, 2Z, 1, H/8, W/8)
        kf, tp = out[:, :Z], out[:, Z:]
        h = Z // 2
        means.append(torch.cat([kf[:, :h], tp[:, :h]], dim=1))
        logvars.append(torch.cat([kf[:, h:], tp[:, h:]], dim=1))
    return torch.cat(means, dim=2), torch.cat(logvars, dim=2)


def reference_encode_mean(state, video: torch.Tensor) -> torch.Tensor:
    return reference_encode_moments(state, video)[0]


def reference_decode(state, z: torch.Tensor) -> torch.Tensor:
    """(B, Z, T', h, w) -> (B, 3, 1 + 4(T'-1), 8h, 8w), one latent frame at a time."""
    C, Z = widths_of(state)
    assert z.shape[1] == Z, z.shape
    plan = decoder_plan(C, Z)
    cache: dict = {}
    frames = []
    for i in range(z.shape[2]):
        out = run_plan(state, plan, z[:, :, i:i + 1], cache, first_chunk=(i == 0))  # (B, 6, 1 or 4, H, W)
        kf, tp = out[:, :3], out[:, 3:]
        if i == 0:
            assert out.shape[2] == 1
            frames.append(kf)
        else:
            assert out.shape[2] == 4
            frames.append(torch.cat([kf[:, :, :1], tp[:, :, 1:]], dim=2))
    return torch.cat(frames, dim=2)
