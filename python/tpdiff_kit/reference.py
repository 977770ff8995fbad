"""The reference staged sampler for latent packages, on the CPU in float32.

The C++ worker's sampler must reproduce it (final latents to 1e-4, frames within one 8-bit
level). Everything that fixes the numbers:

* Text: the prompt and the negative prompt (empty = unconditional) are encoded once, in one
  text-encoder call of batch 2 [cond, negative]; with guidance 1 only the prompt (batch 1).
* Noise: ``g = torch.Generator().manual_seed(seed)``, every draw ``torch.randn(shape,
  generator=g)`` float32, in this order: the initial noise [1, C, T'_K, h, w]; then at each
  jump, in sampling order, the pair noise [1, C, N_from, h, w] (N_from = the pooled frames of
  the stage jumped from) and, with a causal first frame, z0 [1, C, 1, h, w].
* Steps: uniform in the unshifted time inside each stage window (method.Stage.step_levels).
  Each step calls the denoiser once with latents [2, ...] = [x, x], timestep [2] (flow:
  sigma * timestep_scale; VP: tau * (num_train_timesteps - 1)), stage [2] = k, the context
  [2, L, dim] and mask [2, L]; pred = uncond + (cond - uncond) * w (guidance 1: batch 1, cond
  only). The raw prediction becomes the stage target (method.prediction_to_target) and the
  step is Euler (flow matching) or DDIM (VP) (method.StageGeometry.step).
* Stage ends: the end latent, and a preview latent = the closed-form clean estimate from the
  end latent and the last target (method.StageGeometry.preview); the last stage's preview is
  its end latent.
* Decoding: video = vae_decoder(z / scale + shift); 8-bit frames are
  ``((video.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)`` in float32, torch.round
  rounding halves to even, laid out [T, H, W, 3] (frame-major, row-major, RGB): the rule of
  the worker's TensorToVideo.

CLI (writes one safetensors file):
  python3 -m tpdiff_kit.reference --package DIR --prompt "a red ball" --seed 7 \
      --guidance 4 --steps 4,4,4 --out out.safetensors
Tensors: "latents" (final [1, C, T', h, w] float32), "stage<k>.latents" and "stage<k>.preview"
(per stage, k = stage number), "video" (decoded float32 [1, 3, T, H, W]), "frames" (uint8
[T, H, W, 3]) and "stage<k>.preview_frames" (uint8); metadata: the request and the windows.
"""

import argparse
import json
import sys
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import torch

from tpdiff_kit import method
from tpdiff_kit import safetensors
from tpdiff_kit.package import LatentPackage


@dataclass
class StageResult:
    k: int
    frames: int
    start: float  # unshifted times of the window
    end: float
    latents: torch.Tensor  # end latent [1, C, T'_k, h, w]
    preview: torch.Tensor  # clean estimate at the stage's frame count


@dataclass
class SampleResult:
    latents: torch.Tensor
    stages: List[StageResult] = field(default_factory=list)
    video: Optional[torch.Tensor] = None  # [1, 3, T, H, W] in [-1, 1]
    denoiser_calls: int = 0


def to_uint8_frames(video: torch.Tensor) -> torch.Tensor:
    """[1, 3, T, H, W] float in [-1, 1] -> uint8 [T, H, W, 3] by the worker's rule."""
    u8 = ((video[0].to(torch.float32).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return u8.permute(1, 2, 3, 0).contiguous()


def resolve_steps(package: LatentPackage, stages: Optional[int],
                  steps: Optional[Sequence[int]]) -> List[int]:
    """Steps per stage (noisiest first). Defaults: the manifest's stages and steps; one stage
    (vanilla) without steps takes the sum of the default steps."""
    defaults = package.manifest["default_stage_steps"]
    if steps:
        steps = [int(s) for s in steps]
        if stages is not None and len(steps) != stages:
            raise ValueError(f"steps: {len(steps)} values given, one per stage ({stages}) "
                             "required")
        return steps
    if stages is None or stages == len(defaults):
        return list(defaults)
    if stages == 1:
        return [sum(defaults)]
    raise ValueError(f"steps: required for {stages} stages (the package's defaults are for "
                     f"{len(defaults)})")


def plan(package: LatentPackage, steps: Sequence[int]) -> List[method.Stage]:
    """The stage windows; the manifest's boundaries apply when the stage count is its own."""
    boundaries = package.manifest.get("boundaries") or None
    if boundaries and len(boundaries) != len(steps) - 1:
        boundaries = None
    return method.plan_stages(package.schedule, package.latent_frames, package.causal, steps,
                              boundaries)


@torch.no_grad()
def sample(package: LatentPackage, prompt: str, negative_prompt: str = "", seed: int = 0,
           guidance: Optional[float] = None, steps: Optional[Sequence[int]] = None,
           stages: Optional[int] = None, decode: bool = True) -> SampleResult:
    """Samples one video (batch 1) from a latent package; see the module docstring."""
    w = float(package.manifest["default_guidance_scale"] if guidance is None else guidance)
    guided = w != 1.0
    plan_steps = resolve_steps(package, stages, steps)
    stage_list = plan(package, plan_steps)
    sch, causal = package.schedule, package.causal

    prompts = [prompt, negative_prompt] if guided else [prompt]
    tokens, mask = package.tokenizer.encode(prompts)
    context = package.text_encoder(tokens, mask).to(torch.float32)
    rows = len(prompts)

    g = torch.Generator().manual_seed(int(seed))
    shape = [1, package.latent_channels, stage_list[0].frames, package.latent_height,
             package.latent_width]
    x = torch.randn(shape, generator=g, dtype=torch.float32)
    result = SampleResult(latents=x)

    def predict(x: torch.Tensor, r: float, k: int) -> torch.Tensor:
        latents = torch.cat([x] * rows, 0)
        timestep = torch.full((rows,), sch.timestep(r), dtype=torch.float32)
        stage = torch.full((rows,), k, dtype=torch.int64)
        out = package.denoiser(latents, timestep, stage, context, mask).to(torch.float32)
        if out.shape != latents.shape:
            raise RuntimeError(f"denoiser: output shape {list(out.shape)} for latents "
                               f"{list(latents.shape)}")
        result.denoiser_calls += 1
        if not guided:
            return out
        cond, uncond = out[:1], out[1:]
        return uncond + (cond - uncond) * w

    for i, stage in enumerate(stage_list):
        geo = method.StageGeometry(sch, stage, causal)
        if i > 0:
            coeffs = method.jump_coefficients(sch, stage_list[i - 1], stage)
            draws = [torch.randn(s, generator=g, dtype=torch.float32)
                     for s in method.jump_noise_shapes(list(x.shape), causal)]
            x = method.jump(x, coeffs, *draws, causal=causal)
        levels = stage.step_levels(sch)
        target = None
        for r, r_next in zip(levels, levels[1:]):
            pred = predict(x, r, stage.k)
            target = method.prediction_to_target(package.prediction, geo, x, r, pred)
            x = geo.step(x, r, r_next, target)
        last = i + 1 == len(stage_list)
        preview = x if last else geo.preview(x, stage.r_end, target)
        result.stages.append(StageResult(stage.k, stage.frames, stage.start, stage.end, x,
                                         preview))
    result.latents = x
    if decode:
        result.video = package.decode(x)
    return result


def _parse_steps(text: str) -> List[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"steps: {text!r} is not a comma-separated list of "
                                         "integers")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m tpdiff_kit.reference",
        description="Reference staged sampler for latent packages: writes final latents, "
                    "per-stage end and preview latents and decoded frames to safetensors.")
    parser.add_argument("--package", required=True, help="package folder (model.json)")
    parser.add_argument("--prompt", default="")
    parser.add_argument("--negative-prompt", default="")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--guidance", type=float, default=None,
                        help="guidance scale (default: the manifest's)")
    parser.add_argument("--steps", type=_parse_steps, default=None,
                        help="steps per stage, noisiest first, e.g. 4,4,4")
    parser.add_argument("--stages", type=int, default=None,
                        help="stage count (1 = vanilla; default: the manifest's)")
    parser.add_argument("--out", required=True, help="output .safetensors file")
    parser.add_argument("--no-decode", action="store_true", help="latents only")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    package = LatentPackage(args.package)
    res = sample(package, args.prompt, args.negative_prompt, args.seed, args.guidance,
                 args.steps, args.stages, decode=not args.no_decode)
    tensors = {"latents": res.latents}
    for st in res.stages:
        tensors[f"stage{st.k}.latents"] = st.latents
        tensors[f"stage{st.k}.preview"] = st.preview
        if res.video is not None:
            tensors[f"stage{st.k}.preview_frames"] = to_uint8_frames(package.decode(st.preview))
    if res.video is not None:
        tensors["video"] = res.video
        tensors["frames"] = to_uint8_frames(res.video)
    guidance = (package.manifest["default_guidance_scale"] if args.guidance is None
                else args.guidance)
    metadata = {
        "package": package.name, "prompt": args.prompt, "negative_prompt": args.negative_prompt,
        "seed": str(args.seed), "guidance": repr(float(guidance)),
        "steps": ",".join(str(s) for s in resolve_steps(package, args.stages, args.steps)),
        "windows": json.dumps([[st.k, st.start, st.end] for st in res.stages]),
        "denoiser_calls": str(res.denoiser_calls),
    }
    safetensors.save(args.out, tensors, metadata)
    print(f"wrote {args.out}: latents {list(res.latents.shape)}, "
          f"{len(res.stages)} stage(s), {res.denoiser_calls} denoiser calls"
          + (f", frames {list(tensors['frames'].shape)}" if "frames" in tensors else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
