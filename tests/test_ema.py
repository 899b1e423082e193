"""The EMA of the weights: its decay schedule, start step, update interval, buffers and restore."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ivvae.train.ema import EMA


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(3))
        self.register_buffer("count", torch.zeros(()))


def _set(net: _Net, value: float) -> None:
    with torch.no_grad():
        net.weight.fill_(value)
        net.count.fill_(value)


def test_the_warmup_decay_follows_early_weights_then_caps():
    ema = EMA(_Net(), decay=0.9)
    decays = []
    for step in range(1, 100):
        decays.append(ema.current_decay())
        ema.update(_Net(), step)
    assert decays[:3] == pytest.approx([1 / 10, 2 / 11, 3 / 12])  # (1 + n) / (10 + n)
    assert decays[-1] == 0.9 and max(decays) == 0.9
    assert EMA(_Net(), decay=0.9, warmup=False).current_decay() == 0.9


def test_update_averages_weights_and_copies_buffers():
    net = _Net()
    ema = EMA(net, decay=0.5, warmup=False)
    _set(net, 1.0)
    assert ema.update(net, 1)
    assert torch.allclose(ema.model.weight, torch.full((3,), 0.5))  # 0.5 * 0 + 0.5 * 1
    assert float(ema.model.count) == 1.0  # buffers are copied, not averaged
    assert not ema.model.weight.requires_grad and not ema.model.training


def test_before_start_step_the_ema_follows_the_weights_and_update_every_skips_steps():
    net = _Net()
    ema = EMA(net, decay=0.5, warmup=False, start_step=3, update_every=2)
    _set(net, 2.0)
    assert not ema.update(net, 2)  # before the start: a copy, not an update
    assert torch.equal(ema.model.weight, net.weight.detach()) and ema.num_updates == 0
    _set(net, 4.0)
    assert not ema.update(net, 3)  # 3 is not a multiple of update_every
    assert torch.allclose(ema.model.weight, torch.full((3,), 2.0))
    assert ema.update(net, 4)
    assert torch.allclose(ema.model.weight, torch.full((3,), 3.0)) and ema.num_updates == 1


def test_state_dict_restores_counters_and_weights():
    net = _Net()
    ema = EMA(net, decay=0.9)
    _set(net, 1.0)
    for step in range(1, 6):
        ema.update(net, step)
    restored = EMA(_Net(), decay=0.9)
    restored.load_state_dict(ema.state_dict(), ema.model.state_dict())
    assert restored.num_updates == 5 and restored.current_decay() == ema.current_decay()
    assert torch.equal(restored.model.weight, ema.model.weight)
    with pytest.raises(ValueError, match=r"EMA weights do not fit the model: missing \['weight', 'count'\], unexpected \['other'\]"):
        restored.load_state_dict(ema.state_dict(), {"other": torch.zeros(3)})


@pytest.mark.parametrize(("decay", "update_every"), [(1.0, 1), (-0.1, 1), (0.9, 0)])
def test_settings_outside_their_range_are_refused(decay, update_every):
    with pytest.raises(ValueError, match="decay must be in|update_every must be"):
        EMA(_Net(), decay=decay, update_every=update_every)
