"""TPDiff stage-wise training for any PyTorch denoiser: the step a diffusers-style training
script runs in place of "draw t and noise, build x_t and the target".

    kit = TPDiffTraining.from_manifest(json.load(open("model.json")))   # or TPDiffTraining(...)
    for latents, context, mask in loader:              # latents [B, C, T', h, w], normalised
        batches = kit.draw_batches(latents, generator)  # one stage per sample, grouped by stage
        preds = [model(b.x_t, b.timestep, b.stage_ids, context[b.indices], mask[b.indices])
                 for b in batches]
        loss = kit.loss(preds, batches)
        loss.backward(); optimizer.step(); optimizer.zero_grad()

What a batch holds (docs/method.md, method note section 4):
- stage k drawn per sample (or per batch) from `stage_weights` (uniform by default);
- D_k(x0): the clip pooled k-1 times in time (pairs averaged; with causal_first_frame the
  first latent frame is kept as is at every stage);
- t uniform in the stage window [e_k, s_k] of UNSHIFTED time (the window's start rolled back
  for the jump), the noise level r(t) (flow: the shifted sigma; VP: tau = t);
- x_t on the stage path between x_s = a(s) Up(D_{k+1}) + b(s) eps (x_s = eps for the noisiest
  stage) and x_e = a(e) D_k + b(e) eps, with one eps for both;
- the target in the model's prediction units: flow "flow_velocity" (x_s - x_e)/(sigma_s -
  sigma_e), the derivative along the stage path in sigma, which a stock flow model predicts as
  eps - x0 on its vanilla path; VP "epsilon" eps_k = (x_e/a_e - x_s/a_s)/(lambda_e - lambda_s),
  VP "v" (eps_k - b(t) x_t)/a(t);
- the timestep input the denoiser expects: flow sigma * timestep_scale, VP tau * (N - 1);
- data-noise alignment: each stage group's noise permuted by an exact minimum-cost assignment
  against D_k (alignment.py), O(B^3).

With num_stages=1 the same calls are ordinary (vanilla) training of the model's schedule.
Nothing here depends on the network: it sees tensors in, tensors out.
"""

from dataclasses import dataclass
from functools import lru_cache
from typing import List, Optional, Sequence

import math

import torch

from tpdiff_kit import alignment
from tpdiff_kit import method


@dataclass
class StageBatch:
    """The samples of one stage. Tensors live on the clips' device; `t` and `noise_level` are
    float64, `timestep` float32, `stage_ids` int64."""

    stage: int                 # k: K is the noisiest, 1 the full frame rate
    indices: torch.Tensor      # [n] positions of these samples in the caller's batch
    x_t: torch.Tensor          # [n, C, T_k, h, w] the denoiser's input
    target: torch.Tensor       # [n, C, T_k, h, w] in the prediction's units
    timestep: torch.Tensor     # [n] the denoiser's timestep input
    stage_ids: torch.Tensor    # [n] all equal to `stage`
    t: torch.Tensor            # [n] unshifted time inside the window
    noise_level: torch.Tensor  # [n] the schedule's level r(t): flow sigma(t), VP tau = t
    eps: torch.Tensor          # [n, C, T_k, h, w] the noise after alignment
    clean: torch.Tensor        # [n, C, T_k, h, w] D_k(x0)
    window: method.Stage       # the stage's window (start/end in t, r_start/r_end in level)
    # Flow matching: sigma(s_k) - sigma(e_k). target * velocity_scale is the stage velocity
    # x_s - x_e in the stage's u units, the built-in (v1) network's target in core/.
    velocity_scale: float = 1.0


class TPDiffTraining:
    """Stage-wise training settings and draws. Immutable after construction; the methods are
    pure functions of their arguments (random draws come from the generators passed in), so
    one instance may serve several data-loader or training threads."""

    def __init__(self, schedule: method.Schedule, num_stages: int = 3,
                 causal_first_frame: bool = False, prediction: Optional[str] = None,
                 stage_weights: Optional[Sequence[float]] = None,
                 boundaries: Optional[Sequence[float]] = None, align_noise: bool = True):
        self.schedule = schedule
        self.flow = isinstance(schedule, method.FlowMatching)
        kind = "flow_matching" if self.flow else "vp"
        allowed = method.PREDICTIONS[kind]
        self.prediction = prediction or allowed[0]
        if self.prediction not in allowed:
            raise ValueError(f"prediction: '{self.prediction}' is not one of "
                             f"{', '.join(allowed)} for a {kind} schedule")
        self.num_stages = int(num_stages)
        if not 1 <= self.num_stages <= 5:
            raise ValueError(f"stages: {self.num_stages} is outside the supported range 1..5")
        self.causal_first_frame = bool(causal_first_frame)
        self.boundaries = list(boundaries) if boundaries else None
        if stage_weights is not None:
            stage_weights = [float(w) for w in stage_weights]
            if len(stage_weights) != self.num_stages:
                raise ValueError(f"stage_weights: {len(stage_weights)} weights for "
                                 f"{self.num_stages} stages (give one per stage)")
            for w in stage_weights:
                if not (math.isfinite(w) and w >= 0):
                    raise ValueError(f"stage_weights: {w} is not a finite weight >= 0")
            if sum(stage_weights) <= 0:
                raise ValueError("stage_weights: at least one weight must be positive")
        self.stage_weights = stage_weights
        self.align_noise = bool(align_noise)
        self._plan = lru_cache(maxsize=8)(self._make_plan)
        # Checks the windows (boundaries, jump correction) once, on the smallest clip.
        self._plan((1 if self.causal_first_frame else 0) + (1 << (self.num_stages - 1)))

    @classmethod
    def from_manifest(cls, manifest: dict, **overrides) -> "TPDiffTraining":
        """Settings of a latent package manifest (model.json, contract format 2): schedule,
        prediction, stages, boundaries, vae.causal_first_frame. Keyword overrides win."""
        sched = manifest.get("schedule", {})
        args = dict(schedule=method.schedule_from_manifest(sched),
                    num_stages=manifest.get("stages", 3),
                    causal_first_frame=manifest.get("vae", {}).get("causal_first_frame", False),
                    prediction=sched.get("prediction"),
                    boundaries=manifest.get("boundaries") or None)
        args.update(overrides)
        return cls(**args)

    # -- geometry -----------------------------------------------------------------------------

    def _make_plan(self, frames: int) -> List[method.Stage]:
        return method.plan_stages(self.schedule, frames, self.causal_first_frame,
                                  [1] * self.num_stages, self.boundaries)

    def window(self, k: int, frames: Optional[int] = None) -> method.Stage:
        """Stage k's window (and frame count, for a clip of `frames` latent frames)."""
        if not 1 <= k <= self.num_stages:
            raise ValueError(f"stage: {k} is outside 1..{self.num_stages}")
        if frames is None:
            frames = (1 if self.causal_first_frame else 0) + (1 << (self.num_stages - 1))
        return self._plan(frames)[self.num_stages - k]

    def stage_frames(self, frames: int, k: int) -> int:
        return method.stage_frames(frames, k, self.causal_first_frame)

    def stage_clean(self, x0: torch.Tensor, k: int) -> torch.Tensor:
        """D_k(x0): [B, C, T, h, w] pooled k - 1 times in time."""
        self._check_clips(x0)
        return method.down_times(x0, k - 1, self.causal_first_frame)

    def _check_clips(self, x0: torch.Tensor) -> None:
        if x0.dim() != 5:
            raise ValueError(f"latents: expected [B, C, T, h, w], got {tuple(x0.shape)}")
        method.stage_frames(x0.shape[2], self.num_stages, self.causal_first_frame)

    # -- deterministic core -------------------------------------------------------------------

    def build(self, x0: torch.Tensor, stage: int, t: torch.Tensor, eps: torch.Tensor,
              indices: Optional[torch.Tensor] = None) -> StageBatch:
        """x_t, target and inputs for clean clips x0 [n, C, T, h, w] at stage `stage`, times
        t [n] (unshifted, inside the window) and noise eps [n, C, T_k, h, w] (no alignment)."""
        d = self.stage_clean(x0, stage)
        win = self.window(stage, x0.shape[2])
        if eps.shape != d.shape:
            raise ValueError(f"noise: shape {tuple(eps.shape)} != stage {stage} clip shape "
                             f"{tuple(d.shape)}")
        n = x0.shape[0]
        times = t.detach().to("cpu", torch.float64).reshape(-1).tolist()
        if len(times) != n:
            raise ValueError(f"t: {len(times)} values for {n} clips")
        sched = self.schedule
        geo = method.StageGeometry(sched, win, self.causal_first_frame)
        levels = [sched.level(ti) for ti in times]
        states = [geo.state(r) for r in levels]
        qd = geo.q(d)
        # Per-sample coefficients rounded to float32 first (as core/ does) unless the clips are
        # float64; half-precision clips get the float32 values.
        coef_dtype = torch.float64 if x0.dtype == torch.float64 else torch.float32

        def column(values):
            return torch.tensor(values, dtype=coef_dtype).reshape(n, 1, 1, 1, 1).to(
                x0.device, x0.dtype)

        x_t = (column([m.alpha for m in states]) * d + column([m.gamma for m in states]) * qd
               + column([m.sigma for m in states]) * eps)
        # The stage target (core's: velocity x_s - x_e in u units, or eps_k), then the
        # model-native prediction the denoiser is trained on.
        stage_target = geo.compose(geo.target(), d, eps)
        velocity_scale = win.r_start - win.r_end if self.flow else 1.0
        if self.prediction == "v":
            target = torch.cat([
                method.target_to_prediction("v", geo, x_t[i:i + 1], levels[i],
                                            stage_target[i:i + 1]) for i in range(n)])
        else:
            target = method.target_to_prediction(self.prediction, geo, x_t, levels[0],
                                                 stage_target)
        device = x0.device
        return StageBatch(
            stage=stage,
            indices=(indices if indices is not None else torch.arange(n)).to(device),
            x_t=x_t,
            target=target,
            timestep=torch.tensor([sched.timestep(r) for r in levels],
                                  dtype=torch.float32, device=device),
            stage_ids=torch.full((n,), stage, dtype=torch.long, device=device),
            t=torch.tensor(times, dtype=torch.float64, device=device),
            noise_level=torch.tensor(levels, dtype=torch.float64, device=device),
            eps=eps,
            clean=d,
            window=win,
            velocity_scale=velocity_scale)

    # -- draws --------------------------------------------------------------------------------
    def draw_stage(self, generator: torch.Generator) -> int:
        """One stage from the weights, consuming `generator` exactly as core's
        DrawTrainingBatch does (randint without weights, one float64 rand with them)."""
        K = self.num_stages
        if self.stage_weights is None:
            return 1 + int(torch.randint(K, (1,), generator=generator).item())
        total = sum(self.stage_weights)
        u = total * torch.rand(1, generator=generator, dtype=torch.float64).item()
        stage = K  # u can round up to the total; the last positive weight then takes it
        while stage > 1 and self.stage_weights[stage - 1] == 0:
            stage -= 1
        cumulative = 0.0
        for k in range(1, K + 1):
            cumulative += self.stage_weights[k - 1]
            if u < cumulative:
                return k
        return stage

    def draw_stages(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """[batch] int64 stages, one per sample, from the weights."""
        weights = torch.tensor(self.stage_weights or [1.0] * self.num_stages,
                               dtype=torch.float64)
        return 1 + torch.multinomial(weights, batch, replacement=True, generator=generator)

    def _draw_group(self, x0: torch.Tensor, stage: int, generator: torch.Generator,
                    noise_generator: Optional[torch.Generator],
                    indices: Optional[torch.Tensor]) -> StageBatch:
        win = self.window(stage, x0.shape[2])
        n = x0.shape[0]
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        t = win.end + (win.start - win.end) * u
        shape = list(x0.shape)
        shape[2] = win.frames
        if noise_generator is not None:
            eps = torch.randn(shape, generator=noise_generator, device=x0.device, dtype=x0.dtype)
        else:
            eps = torch.randn(shape, generator=generator, dtype=torch.float32).to(
                x0.device, x0.dtype)
        if self.align_noise and n > 1:
            eps = alignment.align_noise(self.stage_clean(x0, stage), eps)
        return self.build(x0, stage, t, eps, indices)

    def draw_batch(self, x0: torch.Tensor, generator: torch.Generator,
                   stage: Optional[int] = None,
                   noise_generator: Optional[torch.Generator] = None) -> StageBatch:
        """One stage for the whole batch (one denoiser call per step). Draw order, identical to
        core's DrawTrainingBatch: the stage (unless given), t [B] (float64 rand), the noise
        (float32 randn, from noise_generator when given), then alignment."""
        self._check_clips(x0)
        k = self.draw_stage(generator) if stage is None else stage
        return self._draw_group(x0, k, generator, noise_generator, None)

    def draw_batches(self, x0: torch.Tensor, generator: torch.Generator,
                     noise_generator: Optional[torch.Generator] = None) -> List[StageBatch]:
        """One stage per sample, returned as one StageBatch per drawn stage (frame counts
        differ between stages), noisiest first. Draw order: the stages [B]
        (torch.multinomial), then per group as draw_batch does. Each group's noise is aligned
        within the group."""
        self._check_clips(x0)
        stages = self.draw_stages(x0.shape[0], generator)
        out = []
        for k in range(self.num_stages, 0, -1):
            idx = torch.nonzero(stages == k).reshape(-1)
            if idx.numel() == 0:
                continue
            out.append(self._draw_group(x0.index_select(0, idx.to(x0.device)), k, generator,
                                        noise_generator, idx))
        return out

    # -- loss ---------------------------------------------------------------------------------

    @staticmethod
    def sample_losses(prediction: torch.Tensor, batch: StageBatch) -> torch.Tensor:
        """[n] mean squared error per sample."""
        if prediction.shape != batch.target.shape:
            raise ValueError(f"prediction: shape {tuple(prediction.shape)} != target shape "
                             f"{tuple(batch.target.shape)}")
        return (prediction.float() - batch.target.float()).pow(2).flatten(1).mean(1)

    def loss(self, predictions: Sequence[torch.Tensor],
             batches: Sequence[StageBatch]) -> torch.Tensor:
        """Mean over all samples of the per-sample MSE (every sample weighs the same, whatever
        its stage's frame count)."""
        if isinstance(batches, StageBatch):
            batches, predictions = [batches], [predictions]
        per_sample = [self.sample_losses(p, b) for p, b in zip(predictions, batches)]
        return torch.cat(per_sample).mean()
