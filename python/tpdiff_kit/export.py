"""Turns three PyTorch modules (text encoder, denoiser, VAE decoder) into a latent package.

    from tpdiff_kit.export import export_package
    export_package("models/my-model", manifest, encoder, denoiser, vae_decoder,
                   tokenizer_file="spm.model")

``manifest`` is model.json without the file names (export_package fills them in): name,
frames, height, width, fps, stages, default_stage_steps, default_guidance_scale, schedule,
tokenizer {kind, max_tokens}, text_encoder {dim, dtype}, denoiser {dtype}, vae {latent_channels,
temporal_factor, spatial_factor, causal_first_frame, scale, shift, dtype}.

Each module is compiled with torch.jit.script, or traced on the example inputs when scripting
fails (or ``compile="trace"``). The saved file is loaded back and run on example inputs of the
manifest's shapes, at every stage's latent frame count and at batch 1 and 2; a wrong signature,
shape or dtype raises ExportError naming the module and the shapes, and outputs must equal the
eager module's. The command line form takes a factory returning the same arguments:

    python3 -m tpdiff_kit.export --factory mymodule:build --out DIR
"""

import argparse
import copy
import importlib
import json
import os
import shutil
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from tpdiff_kit import method
from tpdiff_kit.package import validate_manifest
from tpdiff_kit.tokenizer import SentencePieceTokenizer

FILES = {"tokenizer": "tokenizer.model", "text_encoder": "text_encoder.pt",
         "denoiser": "denoiser.pt", "vae": "vae_decoder.pt"}
SIGNATURES = {
    "text_encoder": "forward(tokens: Tensor[B,L] int64, mask: Tensor[B,L] int64) -> "
                    "Tensor[B,L,dim]",
    "denoiser": "forward(latents: Tensor[B,C,T',h,w], timestep: Tensor[B] float, "
                "stage: Tensor[B] int64, context: Tensor[B,L,dim], mask: Tensor[B,L] int64) -> "
                "Tensor[B,C,T',h,w]",
    "vae": "forward(latents: Tensor[B,C,T',h,w]) -> Tensor[B,3,T,H,W]",
}
ARG_COUNTS = {"text_encoder": 2, "denoiser": 5, "vae": 1}


class ExportError(ValueError):
    """A module does not meet the package contract; the message names the module."""


def _compile(name: str, module: torch.nn.Module, example: Tuple[torch.Tensor, ...],
             how: str) -> Tuple[torch.jit.ScriptModule, str]:
    module = module.eval()
    if isinstance(module, torch.jit.ScriptModule):
        return module, "script"
    if how in ("auto", "script"):
        try:
            return torch.jit.script(module), "script"
        except Exception as e:  # TorchScript raises many error types
            if how == "script":
                raise ExportError(f"{name}: torch.jit.script failed: {e}") from e
    try:
        with torch.no_grad():
            return torch.jit.trace(module, example, check_trace=False), "trace"
    except Exception as e:
        raise ExportError(f"{name}: neither torch.jit.script nor torch.jit.trace worked; "
                          f"trace: {e}") from e


def _check_arguments(name: str, module: torch.jit.ScriptModule) -> None:
    schema = getattr(getattr(module, "forward", None), "schema", None)
    if schema is None:
        return
    args = [a for a in schema.arguments if a.name != "self"]
    if len(args) != ARG_COUNTS[name]:
        raise ExportError(f"{name}: forward takes {len(args)} arguments "
                          f"({', '.join(a.name for a in args)}); the contract is "
                          f"{SIGNATURES[name]}")


def _run(name: str, module: Callable, args: Tuple[torch.Tensor, ...]) -> torch.Tensor:
    try:
        with torch.no_grad():
            out = module(*args)
    except Exception as e:
        shapes = ", ".join(f"{list(a.shape)} {a.dtype}" for a in args)
        raise ExportError(f"{name}: failed on inputs ({shapes}); the contract is "
                          f"{SIGNATURES[name]}: {e}") from e
    if not isinstance(out, torch.Tensor):
        raise ExportError(f"{name}: returned {type(out).__name__}, not a Tensor; the contract "
                          f"is {SIGNATURES[name]}")
    if not out.is_floating_point():
        raise ExportError(f"{name}: returned dtype {out.dtype}, not a floating point tensor")
    if not torch.isfinite(out).all():
        raise ExportError(f"{name}: returned non-finite values for inputs of shapes "
                          f"{[list(a.shape) for a in args]}")
    return out


def _expect_shape(name: str, out: torch.Tensor, want: List[int], what: str) -> None:
    if list(out.shape) != want:
        raise ExportError(f"{name}: output shape {list(out.shape)} for {what}; expected {want}")


def _close(name: str, got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    tol = 1e-4 * max(1.0, want.abs().max().item())
    diff = (got.float() - want.float()).abs().max().item()
    if diff > tol:
        raise ExportError(f"{name}: the exported module differs from the eager one by {diff:g} "
                          f"(limit {tol:g}) for {what}")


def example_inputs(manifest: Dict[str, Any], tokenizer: SentencePieceTokenizer,
                   seed: int = 0) -> Dict[str, Any]:
    """Deterministic example inputs at the manifest's shapes: tokens of a prompt and of the
    empty prompt, and latents at every stage's frame count."""
    vae = manifest["vae"]
    causal = vae["causal_first_frame"]
    latent_frames = method.latent_frame_count(manifest["frames"], vae["temporal_factor"],
                                              causal)
    h = manifest["height"] // vae["spatial_factor"]
    w = manifest["width"] // vae["spatial_factor"]
    tokens, mask = tokenizer.encode(["a red circle moves to the right", ""])
    g = torch.Generator().manual_seed(seed)
    stages = manifest["stages"]
    latents = {}
    for k in range(1, stages + 1):
        frames = method.stage_frames(latent_frames, k, causal)
        latents[k] = torch.randn([2, vae["latent_channels"], frames, h, w], generator=g)
    return {"tokens": tokens, "mask": mask, "latents": latents, "latent_frames": latent_frames,
            "h": h, "w": w}


def export_package(out_dir: str, manifest: Dict[str, Any], text_encoder: torch.nn.Module,
                   denoiser: torch.nn.Module, vae_decoder: torch.nn.Module,
                   tokenizer_file: str, compile: str = "auto",
                   log: Optional[Callable[[str], None]] = print) -> Dict[str, Any]:
    """Writes the package folder and returns the manifest it wrote (see the module docstring).
    ``compile``: "auto" (script, trace fallback), "script" or "trace"."""
    if compile not in ("auto", "script", "trace"):
        raise ValueError(f"compile: {compile!r} is not one of auto, script, trace")
    m = copy.deepcopy(manifest)
    m["kind"] = "latent"
    for part, file in FILES.items():
        m.setdefault(part, {})["file"] = file
    validate_manifest(m)
    if m["tokenizer"]["kind"] != "sentencepiece":
        raise ExportError("tokenizer.kind: export writes sentencepiece tokenizers")
    tokenizer = SentencePieceTokenizer(tokenizer_file, m["tokenizer"]["max_tokens"])
    ex = example_inputs(m, tokenizer)
    vae = m["vae"]
    tokens, mask = ex["tokens"], ex["mask"]
    dim = m["text_encoder"]["dim"]
    tf, sf, causal = vae["temporal_factor"], vae["spatial_factor"], vae["causal_first_frame"]

    os.makedirs(out_dir, exist_ok=True)
    written = []

    def save(name: str, module: torch.nn.Module, example: Tuple[torch.Tensor, ...]):
        compiled, how = _compile(name, module, example, compile)
        _check_arguments(name, compiled)
        path = os.path.join(out_dir, FILES[name])
        compiled.save(path)
        loaded = torch.jit.load(path, map_location="cpu")
        loaded.eval()
        written.append((FILES[name], how))
        return loaded

    # Text encoder: [2, L] -> [2, L, dim].
    eager_context = _run("text_encoder", text_encoder.eval(), (tokens, mask))
    _expect_shape("text_encoder", eager_context, [2, tokens.shape[1], dim],
                  f"tokens {list(tokens.shape)} (text_encoder.dim = {dim})")
    enc = save("text_encoder", text_encoder, (tokens, mask))
    for rows in (2, 1):
        out = _run("text_encoder", enc, (tokens[:rows], mask[:rows]))
        _expect_shape("text_encoder", out, [rows, tokens.shape[1], dim],
                      f"tokens {list(tokens[:rows].shape)}")
        _close("text_encoder", out, eager_context[:rows], f"tokens {list(tokens[:rows].shape)}")
    context = eager_context.float()

    # Denoiser: same shape as the latents at every stage's frame count.
    def den_args(k: int, rows: int) -> Tuple[torch.Tensor, ...]:
        x = ex["latents"][k][:rows]
        return (x, torch.full((rows,), 500.0), torch.full((rows,), k, dtype=torch.int64),
                context[:rows], mask[:rows])

    K = m["stages"]
    eager = {k: _run("denoiser", denoiser.eval(), den_args(k, 2)) for k in range(1, K + 1)}
    den = save("denoiser", denoiser, den_args(1, 2))
    for k in range(1, K + 1):
        for rows in (2, 1):
            args = den_args(k, rows)
            what = f"latents {list(args[0].shape)} at stage {k}"
            out = _run("denoiser", den, args)
            _expect_shape("denoiser", out, list(args[0].shape), what)
            _close("denoiser", out, eager[k][:rows], what)

    # VAE decoder: [1, C, T', h, w] -> [1, 3, T, H, W] in [-1, 1] for every stage's frames.
    def vae_want(frames: int) -> List[int]:
        return [1, 3, method.pixel_frame_count(frames, tf, causal), ex["h"] * sf, ex["w"] * sf]

    eager_video = {k: _run("vae", vae_decoder.eval(), (ex["latents"][k][:1],))
                   for k in range(1, K + 1)}
    dec = save("vae", vae_decoder, (ex["latents"][1][:1],))
    for k in range(1, K + 1):
        x = ex["latents"][k][:1]
        what = (f"latents {list(x.shape)} (temporal_factor {tf}, spatial_factor {sf}, "
                f"causal_first_frame {str(causal).lower()})")
        _expect_shape("vae", eager_video[k], vae_want(x.shape[2]), what)
        out = _run("vae", dec, (x,))
        _expect_shape("vae", out, vae_want(x.shape[2]), what)
        if out.abs().max().item() > 1.0 + 1e-6:
            raise ExportError(f"vae: output outside [-1, 1] (max |x| {out.abs().max().item():g})"
                              f" for {what}")
        _close("vae", out, eager_video[k], what)

    shutil.copyfile(tokenizer_file, os.path.join(out_dir, FILES["tokenizer"]))
    written.append((FILES["tokenizer"], "copied"))
    with open(os.path.join(out_dir, "model.json"), "w", encoding="utf-8") as f:
        json.dump(m, f, indent=2)
        f.write("\n")
    written.append(("model.json", "manifest"))
    if log is not None:
        log(f"{out_dir}: package '{m['name']}' ({m['schedule']['type']}, "
            f"{m['schedule']['prediction']}, {m['frames']} frames {m['width']}x{m['height']}, "
            f"{K} stages)")
        for file, how in written:
            size = os.path.getsize(os.path.join(out_dir, file))
            log(f"  {file:<18} {size:>9} bytes  {how}")
    return m


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m tpdiff_kit.export",
        description="Export a text encoder, denoiser and VAE decoder as a latent package. The "
                    "factory is a Python function MODULE:FUNCTION returning a dict with keys "
                    "manifest, text_encoder, denoiser, vae_decoder and tokenizer_file.")
    parser.add_argument("--factory", required=True, help="MODULE:FUNCTION")
    parser.add_argument("--out", required=True, help="package folder to write")
    parser.add_argument("--compile", choices=["auto", "script", "trace"], default="auto")
    args = parser.parse_args(argv)
    module_name, _, function = args.factory.partition(":")
    if not function:
        parser.error("--factory: expected MODULE:FUNCTION")
    parts = getattr(importlib.import_module(module_name), function)()
    try:
        export_package(args.out, parts["manifest"], parts["text_encoder"], parts["denoiser"],
                       parts["vae_decoder"], parts["tokenizer_file"], compile=args.compile)
    except (ExportError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
