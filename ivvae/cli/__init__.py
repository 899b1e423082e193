"""The ``ivvae`` command line: a thin layer over :mod:`ivvae.pipeline`, :mod:`ivvae.hub` and the
training and evaluation packages.

- :mod:`.registry`: the :class:`Command` registry (``register``, ``register_lazy``);
- :mod:`.video` (reconstruct, encode, decode, demo), :mod:`.models` (convert, info, inflate, grow),
  :mod:`.latents` (latent-stats, encode-dataset), :mod:`.lazy` (train, eval, motion-score,
  build-motionhd, imported when run);
- :mod:`.options`, :mod:`.argtypes`: shared options and argument types;
- :mod:`.support`: what every handler shares: one-line errors (exit code 2, ``--debug`` for the
  traceback) and the checks made before any work (outputs, devices, data sources).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence

from .. import __version__
from . import registry
from .argtypes import OneLineErrorParser
from .registry import COMMANDS, Command, register, register_lazy
from .support import EXIT_USAGE, run_handler

# Importing a command module registers its commands; `ivvae --help` lists them in this order.
# isort: off
from . import video, models, latents, lazy  # noqa: E402, F401
# isort: on

__all__ = ["COMMANDS", "Command", "build_parser", "main", "register", "register_lazy"]


def _selected_command(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (the top-level options take no values)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``ivvae`` parser. Only the command named in ``argv`` gets its arguments (and imports its
    module); the others are listed with their one-line help. ``argv=None``: every command in full."""
    parser = OneLineErrorParser(
        prog="ivvae",
        description="IV-VAE: the improved video VAE (keyframe-based temporal compression, group causal convs): "
        "reconstruct, encode and decode videos, convert released checkpoints, inspect models.",
        epilog=textwrap.dedent(
            """
            examples:
              ivvae demo                                          # bundled sample video, default model
              ivvae convert ivvae_z16_dim64.pth models/z16        # released checkpoint -> model folder
              ivvae reconstruct in.mp4 out.mp4 --model models/z16 --side-by-side
              ivvae encode in.mp4 in.safetensors --model models/z16 && ivvae decode in.safetensors out.mp4
              ivvae info --presets

            `ivvae COMMAND --help` documents each command. Errors print one line and exit with code 2
            (--debug shows the traceback).
            """
        ).strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ivvae {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line error messages")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks instead of one-line error messages"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    selected = _selected_command(argv) if argv is not None else None
    for command in registry.COMMANDS.values():
        if argv is None or command.name == selected:
            command = command.resolve()
        sub = subparsers.add_parser(
            command.name,
            help=command.help,
            description=command.description or command.help,
            epilog=command.epilog or None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[common],
        )
        command.add_arguments(sub)
        sub.set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ivvae`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version and argparse's usage errors
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else EXIT_USAGE
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    prog = f"ivvae {args.command}"
    from ..runtime import tune_cpu_allocator

    tune_cpu_allocator()  # large activations: reuse freed memory instead of page-faulting it in again
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    return run_handler(prog, args._run, args)
