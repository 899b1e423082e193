"""Commands that make or describe model folders: ``convert``, ``info``, ``inflate`` and ``grow``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .argtypes import finite_float, nonnegative_int, positive_float, positive_int
from .registry import register
from .support import check_output_folder, refuse_writing_over_model


# --------------------------------------------------------------------------------------------
# convert
# --------------------------------------------------------------------------------------------
def _convert_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, metavar="CHECKPOINT",
                        help="the authors' released state dict (ivvae_z{Z}_dim{C}.pth); or, to export, a model folder")
    parser.add_argument("target", type=Path, metavar="OUT",
                        help="folder to write (config.json + diffusion_pytorch_model.safetensors); or, to export, a .pth file")
    parser.add_argument(
        "--variant",
        default=None,
        metavar="NAME",
        help="the released variant, e.g. ivvae_z16_dim64 (`ivvae info --presets` lists them); default: inferred from the tensor shapes",
    )
    parser.add_argument("--scaling-factor", type=positive_float, default=None, metavar="S",
                        help="latent normalisation to record in OUT (default: CHECKPOINT.pth.json when an export wrote one, "
                             "else the released variant's, else 1)")
    parser.add_argument("--shift-factor", type=finite_float, default=None, metavar="B",
                        help="latent shift to record in OUT (default: as --scaling-factor; else 0)")
    parser.add_argument("--key", default=None, metavar="NAME",
                        help="the entry of a training checkpoint that holds the weights, where it has several (e.g. ema)")
    parser.add_argument("--overwrite", action="store_true", help="write into OUT even if it exists (a non-empty folder, a .pth file)")


#: Names of weight files a user may give as OUT by mistake (OUT of an import is a folder).
_FILE_SUFFIXES = (".pth", ".pt", ".safetensors", ".bin", ".ckpt")


def _convert_run(args: argparse.Namespace) -> int:
    """Import (a checkpoint file -> a folder) or export (a model folder or bundled name -> .pth), by the source."""
    if _is_model_source(args.source):
        return _export_run(args)
    if args.target.suffix.lower() in _FILE_SUFFIXES:
        raise ValueError(f"OUT '{args.target}' is named like a weights file: converting the checkpoint '{args.source}' writes a "
                         f"model folder (config.json + weights); give a folder name such as models/{args.source.stem}")
    return _import_run(args)


def _is_model_source(source: Path) -> bool:
    """A model folder or a bundled model's name (export); a file means a checkpoint (import)."""
    from ..hub import ModelNotFoundError, resolve_model_path

    if source.is_dir():
        if (source / "config.json").is_file():
            return True
        found = sorted(p.name for p in source.iterdir() if p.suffix.lower() in _FILE_SUFFIXES)
        raise ValueError(f"'{source}' is a folder, not a checkpoint (and not a model folder: no config.json)"
                         + (f"; it holds {', '.join(found[:5])}: pass one of them" if found else ""))
    if source.exists():
        return False
    try:
        resolve_model_path(source)
    except ModelNotFoundError:
        raise FileNotFoundError(f"no such checkpoint or model folder: '{source}'") from None
    return True


def _import_run(args: argparse.Namespace) -> int:
    from ..convert import convert_official_checkpoint

    check_output_folder(args.target)
    model = convert_official_checkpoint(args.source, args.target, variant=args.variant, overwrite=args.overwrite,
                                        scaling_factor=args.scaling_factor, shift_factor=args.shift_factor, key=args.key)
    n = sum(p.numel() for p in model.parameters())
    print(f"converted {args.source} -> {args.target} ({n:,} parameters, latent channels {model.config.latent_channels}, "
          f"base width {model.config.base_channels})")
    print(f"latent normalisation: scaling_factor {model.config.scaling_factor:g}, shift_factor {model.config.shift_factor:g} "
          f"({_normalization_origin(args, model)})")
    print(f"use it with: ivvae reconstruct IN.mp4 OUT.mp4 --model {args.target}")
    return 0


def _normalization_origin(args: argparse.Namespace, model) -> str:
    """Where the latent normalisation written came from, for the user to check it."""
    from ..convert import normalization_file, released_variant

    given = [name for name in ("scaling_factor", "shift_factor") if getattr(args, name) is not None]
    if len(given) == 2:
        return "as given"
    if normalization_file(args.source).is_file():
        rest = f"from {normalization_file(args.source)}"
    elif args.variant or released_variant(model):
        rest = "the released variant's"
    else:  # another Z or width than the released ones: nobody measured its latent statistics
        rest = "not a released variant, none recorded: measure it with `ivvae latent-stats`"
    return f"{given[0]} as given, the other {rest}" if given else rest


def _export_run(args: argparse.Namespace) -> int:
    """``ivvae convert MODEL_DIR OUT.pth``: a model folder back to the released layout."""
    from ..convert import export_official_checkpoint, normalization_file
    from ..hub import load_model

    if args.variant is not None or args.scaling_factor is not None or args.shift_factor is not None or args.key is not None:
        raise ValueError("--variant, --scaling-factor, --shift-factor and --key are for reading a checkpoint; a model folder's "
                         "config already fixes them")
    if args.target.suffix.lower() not in (".pth", ".pt"):
        raise ValueError(f"OUT '{args.target}': a model folder is exported as a released checkpoint; name it *.pth")
    model = load_model(args.source)
    count = export_official_checkpoint(model, args.target, overwrite=args.overwrite)
    print(f"exported {args.source} -> {args.target} ({count} tensors under the released names, float32; "
          f"latent channels {model.config.latent_channels}, base width {model.config.base_channels})")
    print(f"latent normalisation (scaling_factor {model.config.scaling_factor:g}, shift_factor {model.config.shift_factor:g}): "
          f"not in the .pth, which holds weights only; written to {normalization_file(args.target)}, which "
          f"`ivvae convert {args.target} DIR` reads back")
    return 0


register(
    "convert",
    "convert a released checkpoint (.pth) into a model folder, or back",
    _convert_arguments,
    _convert_run,
    description="""
        Convert one of the authors' released IV-VAE state dicts (ivvae_z{Z}_dim{C}.pth) into a
        from_pretrained folder (config.json + diffusion_pytorch_model.safetensors) that every command
        takes with --model. The checkpoint is read safely (weights only) and checked tensor by tensor;
        a mismatch names the missing, unexpected and mis-shaped tensors. A state dict of the released
        layout at another Z or width (e.g. one this command exported) converts too, with Z and width
        taken from its shapes and latent normalisation scaling_factor 1, shift_factor 0. The
        normalisation recorded in CHECKPOINT.pth.json (which an export writes) comes first, and
        --scaling-factor / --shift-factor come before that.

        Given a model folder (or a bundled model) and a .pth name, it exports the other way: the folder's
        weights under the released names, for the authors' inference code (e.g. a released model
        fine-tuned with `ivvae train`). Only an IVVAE of the released architecture (any Z and width)
        has that layout. The authors' loader takes no extra entries, so the latent normalisation goes
        to OUT.pth.json beside it, which converting OUT.pth back reads.
    """,
    epilog="""
        examples:
          ivvae convert ivvae_z16_dim64.pth models/ivvae_z16_dim64
          ivvae reconstruct clip.mp4 recon.mp4 --model models/ivvae_z16_dim64
          ivvae convert runs/finetune/export finetuned_z16_dim64.pth    # back to the released layout
    """,
)


# --------------------------------------------------------------------------------------------
# info
# --------------------------------------------------------------------------------------------
def _info_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", default=None, metavar="MODEL",
                        help="a model folder, a bundled model name, or a preset name (architecture only, built on the meta device); "
                        "default: the bundled default model")
    parser.add_argument(
        "--presets", action="store_true", help="list every preset with its parameter count (instant: built on the meta device)"
    )
    parser.add_argument("--json", action="store_true", help="print the description as JSON")


def _print_presets(as_json: bool) -> None:
    import json

    from ..models import list_presets

    rows = list_presets()
    if as_json:
        print(json.dumps([{"name": n, "description": d, "parameters": p} for n, d, p in rows], indent=2))
        return
    width = max(len(n) for n, _, _ in rows)
    print(f"{'preset':<{width}}  {'parameters':>13}  description")
    for name, description, parameters in rows:
        print(f"{name:<{width}}  {parameters:>13,}  {description}")


def _info_run(args: argparse.Namespace) -> int:
    import json

    import torch

    from ..hub import DEFAULT_MODEL, load_model
    from ..models import PRESETS, build_model, describe_model

    if args.presets:
        _print_presets(args.json)
        if args.model is None:
            return 0
        print()
    name = args.model or DEFAULT_MODEL
    if name in PRESETS and not Path(name).exists():
        with torch.device("meta"):
            model = build_model(name)
        source = f"preset {name} (architecture only; random weights)"
    else:
        model = load_model(name)
        source = f"{name} ({Path(name).resolve() if Path(name).exists() else 'bundled'})"
    info = describe_model(model)
    if args.json:
        print(json.dumps({"model": source, **info}, indent=2))
        return 0
    p = info["parameters"]
    c = info["compression"]
    example = info["example"]
    branches = info["branches"]
    print(f"model        {source}")
    print(f"class        {info['class']}  (branches: {' + '.join(branches)})")
    print(f"parameters   {p['total']:,}  (encoder {p['encoder']:,}, decoder {p['decoder']:,})")
    print(f"compression  {c['temporal']}x in time, {c['spatial']}x{c['spatial']} in space, {info['latent_channels']} latent channels")
    t, h, w = example["input_shape"][2:]
    print(f"example      {t}x{h}x{w} clip {tuple(example['input_shape'])} -> latents {tuple(example['latent_shape'])}")
    config = info["config"]
    print(f"latent norm  scaling_factor {config.get('scaling_factor')}, shift_factor {config.get('shift_factor')}  "
          "(diffusion latents = scaling_factor * (z - shift_factor))")
    print("config")
    for key, value in config.items():
        print(f"  {key}: {value}")
    return 0


register(
    "info",
    "describe a model or preset; list presets",
    _info_arguments,
    _info_run,
    description="""
        Print a model's class, parameter counts, compression factors, the latent shape of a 17x256x256
        clip, its latent normalisation and its config. MODEL may be a model folder, a bundled model or a
        preset name (built on the meta device: no weights, instant).
    """,
    epilog="""
        examples:
          ivvae info models/ivvae_z16_dim64
          ivvae info ivvae_z16_dim96
          ivvae info --presets
    """,
)


# --------------------------------------------------------------------------------------------
# inflate
# --------------------------------------------------------------------------------------------
def _inflate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image_vae", metavar="IMAGE_VAE", help="a trained image VAE: model folder or bundled name")
    parser.add_argument(
        "out_dir", type=Path, metavar="OUT_DIR", help="folder to write the video VAE to (config, safetensors, inflation_report.json)"
    )
    parser.add_argument("--mode", choices=["ktc", "tail", "same"], default="ktc",
                        help="ktc: IV-VAE with twice the image latent channels (the paper's initialisation); tail: causal 3-D "
                        "baseline with as many; same: IV-VAE with as many (default %(default)s)")
    parser.add_argument("--temporal-frame", type=nonnegative_int, default=None, metavar="I",
                        help="frame of each group the temporal branch starts from (default: the mode's, frame 2 for ktc)")
    parser.add_argument("--allow-unfilled", action="store_true", help="accept target tensors that no rule fills (left at random init)")
    parser.add_argument("--overwrite", action="store_true", help="write into OUT_DIR even if it exists and is not empty")


def _inflate_run(args: argparse.Namespace) -> int:
    from ..inflate import inflate_pretrained

    refuse_writing_over_model(args.out_dir, args.image_vae, "OUT_DIR")
    check_output_folder(args.out_dir)
    model, report = inflate_pretrained(args.image_vae, args.out_dir, args.mode, temporal_frame=args.temporal_frame,
                                       allow_unfilled=args.allow_unfilled, overwrite=args.overwrite)
    n = sum(p.numel() for p in model.parameters())
    print(report.summary())
    print(f"wrote {args.out_dir} ({type(model).__name__}, {n:,} parameters, {model.config.latent_channels} latent channels)")
    return 0


register(
    "inflate",
    "initialise a video VAE from a trained image VAE (KTC)",
    _inflate_arguments,
    _inflate_run,
    description="""
        Build the video VAE that an image VAE initialises (method.md, "Initialisation (KTC)") and save it
        as a model folder, with inflation_report.json listing the rule that filled every tensor. With
        --mode ktc the result reconstructs each group's first frame exactly as the image VAE does.
    """,
    epilog="""
        examples:
          ivvae inflate runs/image_vae/export models/ivvae_init             # KTC: Z -> 2Z
          ivvae inflate runs/image_vae/export models/causal_init --mode tail
    """,
)


# --------------------------------------------------------------------------------------------
# grow
# --------------------------------------------------------------------------------------------
def _grow_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", metavar="MODEL", help="a trained model (IV-VAE, image VAE, causal baseline or ablation): folder or bundled name"
    )
    parser.add_argument(
        "out_dir", type=Path, metavar="OUT_DIR", help="folder to write the wider model to (config, safetensors, growth_report.json)"
    )
    parser.add_argument("--channel-multipliers", type=positive_int, nargs="+", default=None, metavar="M",
                        help="new stage widths in units of the base width, one per stage (e.g. 1 2 5 8)")
    parser.add_argument("--base-channels", type=positive_int, default=None, metavar="C", help="new base width (default: unchanged)")
    parser.add_argument("--new-weight-scale", type=positive_float, default=1e-2, metavar="S",
                        help="scale of the new channels' random initialisation: the wider model differs from the old one by "
                        "terms of order S^2 (default %(default)s)")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the new channels' initialisation (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="write into OUT_DIR even if it exists and is not empty")


def _grow_run(args: argparse.Namespace) -> int:
    from ..grow import grow_pretrained

    if args.channel_multipliers is None and args.base_channels is None:
        raise ValueError("give the new widths: --channel-multipliers M ... and/or --base-channels C")
    refuse_writing_over_model(args.out_dir, args.model, "OUT_DIR")
    check_output_folder(args.out_dir)
    model, report = grow_pretrained(args.model, args.out_dir, base_channels=args.base_channels,
                                    channel_multipliers=args.channel_multipliers, new_weight_scale=args.new_weight_scale,
                                    seed=args.seed, overwrite=args.overwrite)
    print(report.summary())
    print(f"wrote {args.out_dir} ({type(model).__name__}, {sum(p.numel() for p in model.parameters()):,} parameters)")
    return 0


register(
    "grow",
    "widen a trained model, keeping what it computes",
    _grow_arguments,
    _grow_run,
    description="""
        Build a wider copy of a trained model (IV-VAE, image VAE, causal baseline or ablation: more channels
        per stage) that starts out computing what the trained one computes, so training goes on with more
        capacity instead of starting over. Old channels ignore the new ones; new channels start small and
        random, so both learn from the first step. Each branch of a two-branch model grows on its own, and the
        latent normalisation carries over. Prints how far the two models' reconstructions of a test clip differ.
    """,
    epilog="""
        examples:
          ivvae grow ivvae-small-z16 models/ivvae_wide --channel-multipliers 1 2 5 8
          ivvae grow runs/image_vae/export models/image_vae_wide --base-channels 24
    """,
)
