"""Exponential moving average of a model's weights, kept as a full model copy.

The copy (:attr:`EMA.model`) is a ready-to-use model: validation runs it, export calls its
``save_pretrained``. Parameters are averaged in float32 whatever the training precision; buffers
are copied. Under DDP only the main process needs to keep one (every process sees the same
weights).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """``ema = d * ema + (1 - d) * weights`` every ``update_every`` optimiser steps.

    Args:
        model: the trained model (unwrapped); it is deep-copied.
        decay: ``d`` per update.
        update_every: update on steps that are multiples of it.
        start_step: before this step the copy just follows the weights.
        warmup: use ``min(decay, (1 + n) / (10 + n))`` for the n-th update (n from 0), so an
            early EMA is not dominated by the random initialisation.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, update_every: int = 1, start_step: int = 0,
                 warmup: bool = True) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        if update_every < 1:
            raise ValueError(f"update_every must be >= 1, got {update_every}")
        self.decay = float(decay)
        self.update_every = int(update_every)
        self.start_step = int(start_step)
        self.warmup = bool(warmup)
        self.num_updates = 0
        self.model = copy.deepcopy(model).float().eval().requires_grad_(False)
        self._names = [name for name, _ in self.model.named_parameters()]

    def current_decay(self) -> float:
        """The decay the next update will use."""
        if self.warmup:
            n = self.num_updates
            return min(self.decay, (1.0 + n) / (10.0 + n))
        return self.decay

    @torch.no_grad()
    def copy_from(self, model: nn.Module) -> None:
        """Set the EMA to the model's current weights."""
        params = dict(model.named_parameters())
        for name, ema_param in self.model.named_parameters():
            ema_param.copy_(params[name].detach())
        self._copy_buffers(model)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> bool:
        """Average in the weights after optimiser step ``step`` (1-based); True if it updated."""
        if step < self.start_step:
            self.copy_from(model)
            return False
        if step % self.update_every:
            return False
        weight = 1.0 - self.current_decay()
        params = dict(model.named_parameters())
        ema_params = [p for _, p in self.model.named_parameters()]
        new = [params[name].detach().to(p.dtype) for name, p in zip(self._names, ema_params, strict=True)]
        torch._foreach_lerp_(ema_params, new, weight)
        self._copy_buffers(model)
        self.num_updates += 1
        return True

    def _copy_buffers(self, model: nn.Module) -> None:
        buffers = dict(model.named_buffers())
        for name, buf in self.model.named_buffers():
            if name in buffers:
                buf.copy_(buffers[name])

    def to(self, device: torch.device | str) -> EMA:
        self.model.to(device)
        return self

    def state_dict(self) -> dict[str, Any]:
        """Counters and settings; the weights are :attr:`model`'s (saved as a model folder)."""
        return {"num_updates": self.num_updates, "decay": self.decay, "update_every": self.update_every,
                "start_step": self.start_step, "warmup": self.warmup}

    def load_state_dict(self, state: Mapping[str, Any], weights: Mapping[str, torch.Tensor] | None = None) -> None:
        """Restore the counters (settings stay those of the current config) and optionally weights."""
        self.num_updates = int(state.get("num_updates", 0))
        if weights is not None:
            missing, unexpected = self.model.load_state_dict(dict(weights), strict=False)  # checked here, named in one line
            if missing or unexpected:
                raise ValueError(f"EMA weights do not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
