"""Writes the miniature latent packages: mini-flow, mini-vp-eps and mini-vp-v.

    /usr/bin/python3 python/examples/miniature/build_packages.py --out DIR [--only mini-flow]

Each package: 17 frames (5 causal latent frames of 8 channels) at 64x64, fps 8, 3 stages with
4 steps each, guidance 4; a SentencePiece vocabulary trained with `spm_train` from corpus.txt;
random weights from --seed (the same seed gives byte-identical weights). Requires Debian's
`sentencepiece` tools and python3-torch.
"""

import argparse
import atexit
import os
import shutil
import subprocess
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))  # python/: tpdiff_kit
sys.path.insert(0, HERE)

from tpdiff_kit.export import export_package  # noqa: E402
from model import DiT, TextEncoder, VaeDecoder  # noqa: E402

LATENT_CHANNELS = 8
TEXT_DIM = 64
# Per-channel latent normalisation (z = (vae_latent - shift) * scale), like Wan's mean/std.
VAE_SCALE = [1.0, 0.8, 0.625, 0.5, 1.25, 0.9, 0.75, 1.1]
VAE_SHIFT = [0.1, -0.2, 0.05, 0.0, -0.1, 0.3, -0.05, 0.2]

VP = {"type": "vp", "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
      "num_train_timesteps": 1000}
PACKAGES = {
    "mini-flow": {"type": "flow_matching", "shift": 3.0, "timestep_scale": 1000.0,
                  "prediction": "flow_velocity"},
    "mini-vp-eps": dict(VP, prediction="epsilon"),
    "mini-vp-v": dict(VP, prediction="v"),
}
SPM_OPTIONS = ["--vocab_size=200", "--model_type=bpe", "--character_coverage=1.0",
               "--pad_id=0", "--eos_id=1", "--unk_id=2", "--bos_id=-1", "--num_threads=1"]


def train_tokenizer(work_dir: str) -> str:
    """Trains the vocabulary in work_dir with relative paths only, so the model file (which
    records its trainer options) is the same wherever it is built."""
    shutil.copyfile(os.path.join(HERE, "corpus.txt"), os.path.join(work_dir, "corpus.txt"))
    cmd = ["spm_train", "--input=corpus.txt", "--model_prefix=tokenizer"] + SPM_OPTIONS
    done = subprocess.run(cmd, cwd=work_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f"spm_train failed ({done.returncode}):\n{done.stdout[-2000:]}")
    return os.path.join(work_dir, "tokenizer.model")


def manifest(name: str, schedule: dict) -> dict:
    return {
        "name": name,
        "description": "Miniature random-weight latent model (T5-style encoder, DiT, causal "
                       "3D VAE decoder) for tests",
        "frames": 17, "height": 64, "width": 64, "fps": 8,
        "stages": 3,
        "default_stage_steps": [4, 4, 4],
        "default_guidance_scale": 4.0,
        "schedule": dict(schedule),
        "tokenizer": {"kind": "sentencepiece", "max_tokens": 32},
        "text_encoder": {"dim": TEXT_DIM, "dtype": "float32"},
        "denoiser": {"dtype": "float32"},
        "vae": {"latent_channels": LATENT_CHANNELS, "temporal_factor": 4, "spatial_factor": 8,
                "causal_first_frame": True, "scale": list(VAE_SCALE), "shift": list(VAE_SHIFT),
                "dtype": "float32"},
    }


def build_modules(vocab_size: int, prediction: str, seed: int):
    """(text encoder, denoiser, VAE decoder) with weights fixed by the seed."""
    torch.manual_seed(seed)
    encoder = TextEncoder(vocab_size, dim=TEXT_DIM)
    denoiser = DiT(latent_channels=LATENT_CHANNELS, text_dim=TEXT_DIM, causal=True,
                   input_skip=1.0 if prediction == "epsilon" else 0.0)
    vae = VaeDecoder(latent_channels=LATENT_CHANNELS, output_gain=2.0)
    return encoder.eval(), denoiser.eval(), vae.eval()


def build(out_dir: str, names=None, seed: int = 0, log=print) -> dict:
    """Writes the packages under out_dir/<name>; returns {name: manifest}."""
    names = list(names or PACKAGES)
    written = {}
    with tempfile.TemporaryDirectory() as work:
        spm = train_tokenizer(work)
        import sentencepiece
        vocab = sentencepiece.SentencePieceProcessor(model_file=spm).get_piece_size()
        for name in names:
            schedule = PACKAGES[name]
            modules = build_modules(vocab, schedule["prediction"], seed)
            written[name] = export_package(os.path.join(out_dir, name), manifest(name, schedule),
                                           *modules, tokenizer_file=spm, log=log)
    return written


def factory(name: str = "mini-flow") -> dict:
    """The arguments of export_package for one package, for
    `python3 -m tpdiff_kit.export --factory build_packages:factory --out DIR`."""
    work = tempfile.mkdtemp(prefix="tpdiff-spm-")
    atexit.register(shutil.rmtree, work, True)
    spm = train_tokenizer(work)
    schedule = PACKAGES[name]
    encoder, denoiser, vae = build_modules(200, schedule["prediction"], seed=0)
    return {"manifest": manifest(name, schedule), "text_encoder": encoder, "denoiser": denoiser,
            "vae_decoder": vae, "tokenizer_file": spm}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for the package folders")
    parser.add_argument("--only", action="append", choices=sorted(PACKAGES),
                        help="build only this package (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="weight seed")
    args = parser.parse_args()
    torch.set_num_threads(1)
    build(args.out, args.only, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
