"""Commands whose code lives in heavy modules (``train``, ``eval``, ``motion-score``,
``build-motionhd``): registered by name and one-line help; their module is imported when they run."""

from __future__ import annotations

import textwrap
from collections.abc import Callable

from .registry import COMMANDS, Command, register_lazy


def _train_command() -> Command:
    from ..train.trainer import add_train_arguments, train_main

    return Command(
        "train",
        COMMANDS["train"].help,
        add_train_arguments,
        train_main,
        description="Train an image VAE, IV-VAE or baseline from a YAML config (see configs/); checkpoints, logs and "
        "the exported model folder go to the run folder.",
        epilog=textwrap.dedent(
            """
            examples:
              ivvae train configs/tiny_cpu.yaml
              ivvae train configs/tiny_cpu.yaml --set optimizer.lr=2e-4 --resume auto
              ivvae train configs/tiny_cpu.yaml --export-only      # export the latest checkpoint as a model folder
            """
        ).strip(),
    )


def _eval_command(name: str) -> Callable[[], Command]:
    def load() -> Command:
        from ..eval.commands import COMMAND_SPECS

        spec = next(spec for spec in COMMAND_SPECS if spec.name == name)
        return Command(spec.name, spec.help, spec.add_arguments, spec.run, spec.description, spec.epilog)

    return load


register_lazy("train", "train a model from a YAML config", _train_command)


register_lazy("eval", "evaluate models on a video data set (PSNR, SSIM, LPIPS, FVD, SSIM by position)", _eval_command("eval"))


register_lazy("motion-score", "motion scores (mean optical-flow magnitude) of videos, for MotionHD", _eval_command("motion-score"))


register_lazy("build-motionhd", "choose a MotionHD test set with a uniform motion-score histogram", _eval_command("build-motionhd"))
