"""The registry of ``ivvae`` subcommands.

Each subcommand is one :class:`Command` (an ``add_arguments(parser)`` and a ``run(args)``), added to
:data:`COMMANDS` by :func:`register` when its module is imported; adding a command is a few lines.
Commands whose code lives in heavy modules (training, evaluation) are added with
:func:`register_lazy`: only their one-line help is known up front, and their module is imported
when that command runs, so ``ivvae --help`` stays instant.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """A subcommand: its one-line help, how it adds its arguments, and what it runs."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | None]
    description: str = ""
    epilog: str = ""
    #: For lazily registered commands: returns the full command (imports its module).
    load: Callable[[], Command] | None = None

    def resolve(self) -> Command:
        return self.load() if self.load is not None else self


COMMANDS: dict[str, Command] = {}


def register(
    name: str,
    help: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], int | None],
    description: str = "",
    epilog: str = "",
) -> Command:
    """Add a subcommand (replacing one of the same name)."""
    command = Command(name, help, add_arguments, run, textwrap.dedent(description).strip(), textwrap.dedent(epilog).strip())
    COMMANDS[name] = command
    return command


def register_lazy(name: str, help: str, load: Callable[[], Command]) -> Command:
    """Add a subcommand whose arguments and code are loaded (imported) only when it is run."""
    command = Command(name, help, lambda parser: None, lambda args: 0, load=load)
    COMMANDS[name] = command
    return command
