"""Join the encoder of one model folder and the decoder of another into a new ``from_pretrained`` folder.

Stages that train one half with the other frozen (``model.freeze: [decoder]`` or ``[encoder]``) change only
their own half's tensors. Two such stages run from the same start model can therefore be joined: each half was
trained against the start model's other half, and the held-out set says whether the pair works together
(session 26: stage 3n-encoder's encoder + stage 3m-decoder's decoder). The config (and with it the latent
normalisation, which the encoder's latents set) comes from the encoder's folder; measure it again with
``ivvae latent-stats --write-model`` before shipping.

    python configs/small_z16/combine_halves.py --encoder-from runs/small_z16/3n_encoder_cpu/export \\
        --decoder-from runs/small_z16/3m_decoder_cpu/export --out runs/small_z16/combined_3n_3m
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

from ivvae.hub import CONFIG_NAME as CONFIG
from ivvae.hub import WEIGHTS_NAMES

WEIGHTS = WEIGHTS_NAMES[0]  # the safetensors file every export and save_pretrained writes
# config keys the two halves may differ in: the latent normalisation is re-measured for the result
NORMALISATION_KEYS = {"shift_factor", "scaling_factor"}


class CombineError(ValueError):
    """The two folders cannot be joined; the message names the problem and the fix."""


def _read_folder(folder: Path) -> tuple[dict, dict]:
    for name in (CONFIG, WEIGHTS):
        if not (folder / name).is_file():
            raise CombineError(f"{folder} has no {name}: give a model folder as written by `ivvae train` "
                               "(<run>/export) or `save_pretrained`")
    return json.loads((folder / CONFIG).read_text()), load_file(folder / WEIGHTS)


def _architecture(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in NORMALISATION_KEYS and not k.startswith("_")}


def combine_halves(encoder_from: Path, decoder_from: Path, out: Path) -> dict[str, int]:
    """Write ``out`` with ``encoder.*`` tensors from ``encoder_from`` and ``decoder.*`` from ``decoder_from``.

    Returns how many tensors came from each side. Refuses folders of different architectures, weights with
    tensors outside the two halves, and an existing ``out`` (nothing is overwritten).
    """
    if out.exists():
        raise CombineError(f"{out} already exists: choose a new --out folder (nothing is overwritten)")
    enc_config, enc_weights = _read_folder(encoder_from)
    dec_config, dec_weights = _read_folder(decoder_from)
    if _architecture(enc_config) != _architecture(dec_config):
        raise CombineError(f"{encoder_from} and {decoder_from} are different architectures (config.json differs "
                           "beyond the latent normalisation): join halves of the same model only")
    if enc_weights.keys() != dec_weights.keys():
        raise CombineError(f"{encoder_from} and {decoder_from} hold different tensors: join halves of the same model only")
    others = sorted(k for k in enc_weights if k.split(".", 1)[0] not in {"encoder", "decoder"})
    if others:
        raise CombineError(f"tensors outside encoder.* and decoder.* ({', '.join(others[:3])}...) belong to neither "
                           "half: this script joins models whose weights split into the two")
    mismatched = sorted(k for k in enc_weights if enc_weights[k].dtype != dec_weights[k].dtype)
    if mismatched:
        raise CombineError(f"{encoder_from} and {decoder_from} store tensors in different dtypes ({mismatched[0]}: "
                           f"{enc_weights[mismatched[0]].dtype} vs {dec_weights[mismatched[0]].dtype}): join exports "
                           "written with the same export.dtype")
    joined = {k: (enc_weights[k] if k.startswith("encoder.") else dec_weights[k]) for k in enc_weights}
    out.mkdir(parents=True)
    save_file(joined, out / WEIGHTS)
    shutil.copyfile(encoder_from / CONFIG, out / CONFIG)
    counts = {"encoder": sum(k.startswith("encoder.") for k in joined)}
    counts["decoder"] = len(joined) - counts["encoder"]
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder-from", type=Path, required=True, help="model folder whose encoder (and config) to take")
    parser.add_argument("--decoder-from", type=Path, required=True, help="model folder whose decoder to take")
    parser.add_argument("--out", type=Path, required=True, help="new folder to write (must not exist)")
    args = parser.parse_args(argv)
    try:
        counts = combine_halves(args.encoder_from, args.decoder_from, args.out)
    except CombineError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {counts['encoder']} encoder tensors from {args.encoder_from}, "
          f"{counts['decoder']} decoder tensors from {args.decoder_from}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
