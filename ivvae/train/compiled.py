"""``torch.compile`` of the training step, trusted only after its gradients match eager ones.

The trainer compiles the module it calls each step (the autoencoder, DDP-wrapped when
distributed) and, before the first optimiser step, runs one plain L1 step on the first batch
twice, eagerly and compiled, with no optimiser update. :func:`compare_gradients` then decides:
every parameter whose eager gradient is non-zero must get a compiled gradient that is not
zeroed and points the same way (cosine similarity >= ``min_cosine``). A failed check sends the run
back to the eager module, so a compiler bug costs speed, not a silently broken model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import torch
from torch import nn

__all__ = ["GradientCheck", "compare_gradients", "compile_module", "step_gradients"]


@dataclass
class GradientCheck:
    """The verdict of :func:`compare_gradients` (``asdict`` of it goes into summary.json)."""

    passed: bool
    parameters: int  # parameters with a non-zero eager gradient
    zeroed: int  # of those, how many the compiled step left zero (or without a gradient)
    min_cosine: float  # the lowest cosine similarity between eager and compiled gradients
    worst_parameter: str | None  # the parameter with that lowest similarity
    threshold: float

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return (f"{self.zeroed} of {self.parameters} gradients zeroed, lowest cosine similarity "
                f"{self.min_cosine:.4f} ({self.worst_parameter}; threshold {self.threshold})")


def compile_module(module: nn.Module, mode: str = "default", dynamic: bool | None = False) -> nn.Module:
    """``torch.compile(module)`` with the config's mode and shape policy."""
    return torch.compile(module, mode=mode, dynamic=dynamic)


def step_gradients(module: nn.Module, parameters: list[nn.Parameter], x: torch.Tensor,
                   autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                   ) -> list[torch.Tensor | None]:
    """The gradients of one deterministic L1 reconstruction step (posterior mean decoded), as
    fp32 copies; the parameters' ``.grad`` are left cleared."""
    for p in parameters:
        p.grad = None
    with autocast():
        rec, _, _ = module(x, sample_posterior=False)
        loss = (rec.float() - x.float()).abs().mean()
    loss.backward()
    grads = [None if p.grad is None else p.grad.detach().float().clone() for p in parameters]
    for p in parameters:
        p.grad = None
    return grads


def compare_gradients(eager: Iterable[torch.Tensor | None], compiled: Iterable[torch.Tensor | None],
                      names: Iterable[str], min_cosine: float = 0.99) -> GradientCheck:
    """Compare per-parameter gradients of the same step run eagerly and compiled.

    Parameters whose eager gradient is missing or zero are not judged (nothing to compare with);
    a non-finite compiled gradient counts as cosine -1.
    """
    judged = zeroed = 0
    worst, worst_name = 1.0, None
    for name, a, b in zip(names, eager, compiled, strict=True):
        if a is None or not bool(a.abs().max() > 0):
            continue
        judged += 1
        if b is not None and not bool(torch.isfinite(b).all()):
            cosine = -1.0  # NaN or inf: as wrong as a gradient can be
        elif b is None or not bool(b.abs().max() > 0):
            zeroed += 1
            cosine = 0.0
        else:
            cosine = float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))
        if cosine < worst:
            worst, worst_name = cosine, name
    return GradientCheck(passed=zeroed == 0 and worst >= min_cosine, parameters=judged, zeroed=zeroed,
                         min_cosine=round(worst, 6), worst_parameter=worst_name, threshold=min_cosine)
