"""Graceful stop: SIGTERM or Ctrl-C ends a training run at the next step with a checkpoint and an export.

`timeout`, a scheduler's preemption notice or Ctrl-C would otherwise lose every step since the
last checkpoint (on a leased GPU, minutes). The first signal asks the run to stop after the step
in progress, which then saves a checkpoint (always) and its export (if ``export.at_end``); a second
signal of the same kind acts at once, as it would have without this module. Data workers ignore
both signals (``timeout`` and a terminal's Ctrl-C signal the whole process group): a worker killed
mid-batch would fail the main process before it could save anything.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

logger = logging.getLogger("ivvae.train")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """While entered, SIGTERM and SIGINT set :attr:`signal_name` instead of ending the process.

    Handlers can only be installed from the main thread; elsewhere (a trainer run from a worker
    thread) the context does nothing and the signals keep their usual effect.
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signal_name is not None:  # asked twice: do what the signal would have done
            signal.signal(signum, self._previous.pop(signum, signal.SIG_DFL))
            signal.raise_signal(signum)
            return
        self.signal_name = name
        logger.warning("%s received: stopping after this step with a checkpoint "
                       "(send it again to stop at once, without one)", name)


def ignore_stop_signals(worker_id: int | None = None) -> None:
    """``worker_init_fn`` of the data loader: its workers leave stopping to the main process."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
