"""The TPDiff method for latent video models: the one Python copy.

Everything here is architecture-independent: schedules, stage windows, the temporal pyramid
operators, the jump between stages, the per-stage algebra (states, training targets, solver
steps, previews) and the conversion of a denoiser's raw prediction into the stage's target.
The reference sampler (reference.py) and training code import it; nothing here draws noise
or calls a network.

Conventions (python/README.md):

* The sampler's time ``t`` in [0, 1] is the UNSHIFTED time; t = 1 is pure noise. Each schedule
  maps t to its own noise-level coordinate ``r`` (``Schedule.level``) in which
  x_r = a(r) x0 + b(r) eps. Flow matching: r = sigma = shift t / (1 + (shift - 1) t),
  a = 1 - sigma, b = sigma. VP: r = tau = t, a = sqrt(alphabar), b = sqrt(1 - alphabar).
  All stage algebra works in r; only the placement of solver steps uses t.
* Latent videos are [B, C, T, h, w]. With a causal first frame (``causal=True``) frame 0 is
  kept as is by every temporal operator and the remaining frames are pooled in pairs.
* Stages are numbered k = K (noisiest, fewest frames) .. 1 (full rate); lists of stages are in
  sampling order, stage K first.
"""

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch

SQRT2 = math.sqrt(2.0)


# --------------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------------


class Schedule:
    """x_r = a(r) x0 + b(r) eps on the schedule's noise-level coordinate r in [0, 1]."""

    def level(self, t: float) -> float:
        """Noise-level coordinate of the unshifted sampler time t."""
        return t

    def time(self, r: float) -> float:
        """Inverse of ``level``."""
        return r

    def a(self, r: float) -> float:
        raise NotImplementedError

    def b(self, r: float) -> float:
        raise NotImplementedError

    def lam(self, r: float) -> float:
        """Noise-to-signal ratio lambda = b / a (+inf where a = 0)."""
        a = self.a(r)
        return math.inf if a <= 0.0 else self.b(r) / a

    def timestep(self, r: float) -> float:
        """The denoiser's timestep input at level r."""
        return r

    def jump_start(self, r_end: float) -> float:
        """The level s > r_end with lambda(s) = sqrt(2) lambda(r_end) (method note, section 3);
        1 when that s lies past the noisiest level. Solved by bisection (lambda increases)."""
        want = SQRT2 * self.lam(r_end)
        if want >= self.lam(1.0):
            return 1.0
        lo, hi = r_end, 1.0
        for _ in range(200):
            if hi - lo <= 1e-15:
                break
            mid = 0.5 * (lo + hi)
            if self.lam(mid) < want:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)


class FlowMatching(Schedule):
    """Rectified flow with a timestep shift: sigma(t) = shift t / (1 + (shift - 1) t)."""

    def __init__(self, shift: float = 1.0, timestep_scale: float = 1000.0):
        if not shift >= 1.0:
            raise ValueError(f"schedule.shift: {shift} must be >= 1")
        self.shift = float(shift)
        self.timestep_scale = float(timestep_scale)

    def level(self, t: float) -> float:
        return self.shift * t / (1.0 + (self.shift - 1.0) * t)

    def time(self, r: float) -> float:
        return r / (self.shift - (self.shift - 1.0) * r)

    def a(self, r: float) -> float:
        return 1.0 - r

    def b(self, r: float) -> float:
        return r

    def timestep(self, r: float) -> float:
        return r * self.timestep_scale

    def jump_start(self, r_end: float) -> float:
        # s / (1 - s) = sqrt(2) e / (1 - e), in closed form.
        q = SQRT2 * r_end
        return q / ((1.0 - r_end) + q)


def _log_alphabar_table(betas: torch.Tensor) -> List[float]:
    return torch.cumsum(torch.log1p(-betas.double()), 0).tolist()


class DiscreteVP(Schedule):
    """DDPM betas over N training steps; tau in [0, 1] maps to the index i = tau (N - 1) and
    log(alphabar) is interpolated linearly between integer indices."""

    def __init__(self, beta_schedule: str = "scaled_linear", beta_start: float = 0.00085,
                 beta_end: float = 0.012, num_train_timesteps: int = 1000):
        n = int(num_train_timesteps)
        if n < 2:
            raise ValueError(f"schedule.num_train_timesteps: {n} must be >= 2")
        if beta_schedule == "scaled_linear":
            betas = torch.linspace(math.sqrt(beta_start), math.sqrt(beta_end), n,
                                   dtype=torch.float64) ** 2
        elif beta_schedule == "linear":
            betas = torch.linspace(beta_start, beta_end, n, dtype=torch.float64)
        else:
            raise ValueError(f"schedule.beta_schedule: '{beta_schedule}' is not one of "
                             "scaled_linear, linear")
        self.beta_schedule = beta_schedule
        self.num_train_timesteps = n
        self._log_ab = _log_alphabar_table(betas)

    def log_alphabar(self, r: float) -> float:
        i = min(max(r, 0.0), 1.0) * (self.num_train_timesteps - 1)
        lo = min(int(math.floor(i)), self.num_train_timesteps - 2)
        w = i - lo
        return (1.0 - w) * self._log_ab[lo] + w * self._log_ab[lo + 1]

    def a(self, r: float) -> float:
        return math.exp(0.5 * self.log_alphabar(r))

    def b(self, r: float) -> float:
        return math.sqrt(-math.expm1(self.log_alphabar(r)))

    def timestep(self, r: float) -> float:
        return r * (self.num_train_timesteps - 1)


class ContinuousVP(Schedule):
    """The v1 continuous linear-beta VP schedule (beta 0.1 -> 20):
    alphabar(t) = exp(-(0.1 t + 9.95 t^2))."""

    BETA_MIN = 0.1
    BETA_MAX = 20.0

    def _log_alphabar(self, r: float) -> float:
        return -(self.BETA_MIN * r + 0.5 * (self.BETA_MAX - self.BETA_MIN) * r * r)

    def a(self, r: float) -> float:
        return math.exp(0.5 * self._log_alphabar(r))

    def b(self, r: float) -> float:
        return math.sqrt(-math.expm1(self._log_alphabar(r)))


def schedule_from_manifest(schedule: dict) -> Schedule:
    """The Schedule described by a latent manifest's "schedule" object."""
    kind = schedule.get("type")
    if kind == "flow_matching":
        return FlowMatching(schedule.get("shift", 1.0), schedule.get("timestep_scale", 1000.0))
    if kind == "vp":
        return DiscreteVP(schedule.get("beta_schedule", "scaled_linear"),
                          schedule.get("beta_start", 0.00085), schedule.get("beta_end", 0.012),
                          schedule.get("num_train_timesteps", 1000))
    raise ValueError(f"schedule.type: '{kind}' is not one of flow_matching, vp")


# --------------------------------------------------------------------------------------------
# Temporal pyramid operators
# --------------------------------------------------------------------------------------------


def _pool_pairs(x: torch.Tensor) -> torch.Tensor:
    b, c, t, h, w = x.shape
    if t % 2 != 0:
        raise ValueError(f"temporal pooling needs an even number of pooled frames, got {t}")
    return x.reshape(b, c, t // 2, 2, h, w).mean(3)


def down(x: torch.Tensor, causal: bool) -> torch.Tensor:
    """Average pooling of frame pairs; with ``causal`` frame 0 is kept and frames (1,2),
    (3,4), ... are pooled."""
    if causal:
        return torch.cat([x[:, :, :1], _pool_pairs(x[:, :, 1:])], 2)
    return _pool_pairs(x)


def up(x: torch.Tensor, causal: bool) -> torch.Tensor:
    """Nearest upsampling by 2 in time; with ``causal`` frame 0 stays single."""
    if causal:
        return torch.cat([x[:, :, :1], x[:, :, 1:].repeat_interleave(2, 2)], 2)
    return x.repeat_interleave(2, 2)


def project(x: torch.Tensor, causal: bool) -> torch.Tensor:
    """P = Up(Down(x)): the orthogonal projection onto pairwise-constant videos (the identity
    on a causal frame 0)."""
    return up(down(x, causal), causal)


def down_times(x: torch.Tensor, times: int, causal: bool) -> torch.Tensor:
    """Down applied ``times`` times: D_k(x0) for times = k - 1."""
    for _ in range(times):
        x = down(x, causal)
    return x


def stage_frames(latent_frames: int, k: int, causal: bool) -> int:
    """Latent frame count of stage k: 1 + N / 2^(k-1) (causal, T' = 1 + N) or T' / 2^(k-1)."""
    stride = 1 << (k - 1)
    pooled = latent_frames - 1 if causal else latent_frames
    if pooled < stride or pooled % stride != 0:
        what = "latent frames - 1" if causal else "latent frames"
        raise ValueError(f"frames: {what} = {pooled} must be a positive multiple of "
                         f"2^(stages-1) = {stride}")
    return pooled // stride + (1 if causal else 0)


def latent_frame_count(frames: int, temporal_factor: int, causal: bool) -> int:
    """Latent frames T' for ``frames`` pixel frames."""
    if causal:
        if frames < 1 or (frames - 1) % temporal_factor != 0:
            raise ValueError(f"frames: {frames} must be 1 + {temporal_factor} * N")
        return 1 + (frames - 1) // temporal_factor
    if frames < 1 or frames % temporal_factor != 0:
        raise ValueError(f"frames: {frames} must be a multiple of {temporal_factor}")
    return frames // temporal_factor


def pixel_frame_count(latent_frames: int, temporal_factor: int, causal: bool) -> int:
    """Decoded pixel frames for ``latent_frames`` latent frames."""
    if causal:
        return 1 + temporal_factor * (latent_frames - 1)
    return temporal_factor * latent_frames


def temporal_positions(frames: int, stage: torch.Tensor, causal: bool) -> torch.Tensor:
    """Stage-consistent temporal positions [B, frames] (float32) for stage numbers ``stage``
    [B]: stage frame n stands for the full-rate latent frame n 2^(k-1) (non-causal), or
    1 + (n - 1) 2^(k-1) for n >= 1 with frame 0 at 0 (causal). TorchScript-compatible, so a
    denoiser can call it in its forward."""
    stride = torch.pow(2.0, (stage - 1).to(torch.float32))[:, None]
    n = torch.arange(frames, dtype=torch.float32, device=stage.device)[None, :]
    if causal:
        return torch.where(n == 0.0, torch.zeros_like(n * stride), 1.0 + (n - 1.0) * stride)
    return n * stride


# --------------------------------------------------------------------------------------------
# Stage windows
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """One stage of the pyramid. ``start``/``end`` are unshifted times, ``r_start``/``r_end``
    the same points as noise levels (r_start solves the jump for k < K)."""

    k: int
    frames: int
    start: float
    end: float
    r_start: float
    r_end: float
    steps: int
    starts_from_noise: bool

    def step_levels(self, schedule: Schedule) -> List[float]:
        """steps + 1 noise levels, uniform in the unshifted time from start to end (the
        endpoints exactly r_start and r_end)."""
        n = self.steps
        levels = [self.r_start]
        for i in range(1, n):
            levels.append(schedule.level(self.start - (self.start - self.end) * i / n))
        levels.append(self.r_end)
        return levels


def plan_stages(schedule: Schedule, latent_frames: int, causal: bool, steps: Sequence[int],
                boundaries: Optional[Sequence[float]] = None) -> List[Stage]:
    """Stages in sampling order (K first) for K = len(steps).

    Nominal boundaries are unshifted times (uniform 1 - i/K when empty), converted to noise
    levels; each later stage's start is rolled back on the schedule so that
    lambda(r_start) = sqrt(2) lambda(r_end of the previous stage), then mapped back to t."""
    K = len(steps)
    if K < 1:
        raise ValueError("stage_steps: at least one stage is required")
    for i, n in enumerate(steps):
        if int(n) < 1:
            raise ValueError(f"stage_steps[{i}]: {n} must be >= 1")
    if boundaries:
        if len(boundaries) != K - 1:
            raise ValueError(f"boundaries: {len(boundaries)} values given, {K - 1} required "
                             f"for {K} stages")
        nominal = [1.0] + [float(b) for b in boundaries] + [0.0]
        for i in range(1, K):
            if not (0.0 < nominal[i] < nominal[i - 1]):
                raise ValueError(f"boundaries: must be strictly decreasing inside (0, 1), got "
                                 f"{list(boundaries)}")
    else:
        nominal = [1.0 - i / K for i in range(K)] + [0.0]
    stages: List[Stage] = []
    for i in range(K):
        k = K - i
        end = nominal[i + 1]
        r_end = schedule.level(end)
        if i == 0:
            r_start, start = 1.0, 1.0
        else:
            r_start = schedule.jump_start(stages[-1].r_end)
            start = schedule.time(r_start)
        if not r_start > r_end:
            raise ValueError(f"boundaries: stage {k} window is empty after the jump correction "
                             f"(start {start}, end {end})")
        stages.append(Stage(k, stage_frames(latent_frames, k, causal), start, end, r_start,
                            r_end, int(steps[i]), i == 0))
    return stages


# --------------------------------------------------------------------------------------------
# The jump between stages
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JumpCoefficients:
    c: float
    alpha: float


def jump_coefficients(schedule: Schedule, frm: Stage, to: Stage) -> JumpCoefficients:
    """c = a(s) / a(e), alpha = b(s) / sqrt(2) for the jump from stage ``frm`` (ending at e)
    to the next stage ``to`` (starting at s)."""
    return JumpCoefficients(schedule.a(to.r_start) / schedule.a(frm.r_end),
                            schedule.b(to.r_start) / SQRT2)


def jump_noise_shapes(x_end_shape: Sequence[int], causal: bool) -> List[List[int]]:
    """Shapes of the standard normal draws one jump takes, in the order they are drawn: the
    pair noise z [B, C, N_from, h, w] (N_from = pooled frames of the stage jumped from), then,
    causal only, z0 [B, C, 1, h, w]."""
    b, c, t, h, w = x_end_shape
    if causal:
        return [[b, c, t - 1, h, w], [b, c, 1, h, w]]
    return [[b, c, t, h, w]]


def jump(x_end: torch.Tensor, coeffs: JumpCoefficients, z: torch.Tensor,
         z0: Optional[torch.Tensor] = None, causal: bool = False) -> torch.Tensor:
    """x_s = c Up(x_end) + alpha n'. n' is (+z, -z) on each duplicated pair (antithetic:
    the noise of the two copies decorrelates); with ``causal`` the single frame 0 gets the
    fresh independent z0 at the same alpha (c^2 b(e)^2 + alpha^2 = b(s)^2 there)."""
    b, c, n, h, w = z.shape
    pairs = torch.stack([z, -z], 3).reshape(b, c, 2 * n, h, w)
    if causal:
        if z0 is None:
            raise ValueError("jump: a causal first frame needs its own noise z0")
        pairs = torch.cat([z0, pairs], 2)
    return up(x_end, causal) * coeffs.c + pairs * coeffs.alpha


# --------------------------------------------------------------------------------------------
# Stage geometry: one algebra for states, targets, steps and previews
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mix:
    """alpha D + gamma Q D + sigma eps, with D = D_k(x0) and Q = P (0 from pure noise)."""

    alpha: float
    gamma: float
    sigma: float


class StageGeometry:
    """The closed-form algebra of one stage (method note, sections 3, 4 and 6).

    Start point x_s = a(s) Q D + beta eps (beta = b(s) after a jump; x_s = eps from pure
    noise), end point x_e = a(e) D + b(e) eps. Flow matching moves on the straight line
    between them, linear in sigma; VP moves x/a linearly in lambda (DPM-Solver form). The
    target is the stage velocity x_s - x_e (flow) or eps_k (VP)."""

    def __init__(self, schedule: Schedule, stage: Stage, causal: bool):
        self.schedule = schedule
        self.stage = stage
        self.causal = causal
        self.flow = isinstance(schedule, FlowMatching)

    def q(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x) if self.stage.starts_from_noise else project(x, self.causal)

    def state(self, r: float) -> Mix:
        """Coefficients of x at level r in [r_end, r_start]."""
        sch, s, e = self.schedule, self.stage.r_start, self.stage.r_end
        from_noise = self.stage.starts_from_noise
        beta = 1.0 if from_noise else sch.b(s)
        q_weight = 0.0 if from_noise else sch.a(s)
        if self.flow:
            u = (r - e) / (s - e)
            return Mix((1.0 - u) * sch.a(e), u * q_weight, (1.0 - u) * sch.b(e) + u * beta)
        a_s, a_r = sch.a(s), sch.a(r)
        l_s, l_e, l_r = sch.lam(s), sch.lam(e), sch.lam(r)
        w = (l_r - l_s) / (l_e - l_s)
        return Mix(a_r * w, a_r * (1.0 - w) * q_weight / a_s,
                   a_r * ((1.0 - w) * beta / a_s + w * l_e))

    def target(self) -> Mix:
        """Coefficients of the stage's prediction target (constant along the stage)."""
        sch, s, e = self.schedule, self.stage.r_start, self.stage.r_end
        from_noise = self.stage.starts_from_noise
        beta = 1.0 if from_noise else sch.b(s)
        q_weight = 0.0 if from_noise else sch.a(s)
        if self.flow:
            return Mix(-sch.a(e), q_weight, beta - sch.b(e))
        a_s, l_s, l_e = sch.a(s), sch.lam(s), sch.lam(e)
        inv = 1.0 / (l_e - l_s)
        return Mix(inv, -inv * q_weight / a_s, (l_e - beta / a_s) * inv)

    def compose(self, m: Mix, d: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        out = d * m.alpha + eps * m.sigma
        if m.gamma != 0.0:
            out = out + self.q(d) * m.gamma
        return out

    def start_point(self, d: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return self.compose(self.state(self.stage.r_start), d, eps)

    def end_point(self, d: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return self.compose(self.state(self.stage.r_end), d, eps)

    def step(self, x: torch.Tensor, r: float, r_next: float, target: torch.Tensor) -> torch.Tensor:
        """One solver step from level r to r_next with the stage target predicted at (x, r):
        Euler along the stage line (flow) or the DDIM update (VP); exact for an exact target."""
        if self.flow:
            return x + target * ((r_next - r) / (self.stage.r_start - self.stage.r_end))
        sch = self.schedule
        return x * (sch.a(r_next) / sch.a(r)) + target * (sch.a(r_next) * (sch.lam(r_next) -
                                                                             sch.lam(r)))

    def preview(self, x: torch.Tensor, r: float, target: torch.Tensor) -> torch.Tensor:
        """Clean stage-rate latent D_k(x0) from x at level r and the stage target there, in
        closed form: y = sigma' x - sigma_r target = (a I + b Q) D, and (a I + b Q)^-1 =
        (I - b / (a + b) Q) / a for the projection Q."""
        st, tg = self.state(r), self.target()
        y = x * tg.sigma - target * st.sigma
        a = tg.sigma * st.alpha - st.sigma * tg.alpha
        b = tg.sigma * st.gamma - st.sigma * tg.gamma
        if self.stage.starts_from_noise or b == 0.0:
            return y / a
        return (y - project(y, self.causal) * (b / (a + b))) / a

    def oracle_target(self, x: torch.Tensor, r: float, d: torch.Tensor) -> torch.Tensor:
        """The exact target for an x known to lie on the stage path of clean latent d."""
        st = self.state(r)
        eps = (x - d * st.alpha - self.q(d) * st.gamma) / st.sigma
        return self.compose(self.target(), d, eps)


# --------------------------------------------------------------------------------------------
# Predictions of a stock or fine-tuned denoiser
# --------------------------------------------------------------------------------------------

PREDICTIONS = {"flow_matching": ("flow_velocity",), "vp": ("epsilon", "v")}


def prediction_to_target(prediction: str, geometry: StageGeometry, x: torch.Tensor, r: float,
                         pred: torch.Tensor) -> torch.Tensor:
    """The stage target from the denoiser's raw output at (x, r).

    flow_velocity: the output is dx/dsigma, so the stage velocity is pred (s - e).
    epsilon: the output is eps. v: eps = a(r) v + b(r) x."""
    sch = geometry.schedule
    if prediction == "flow_velocity":
        return pred * (geometry.stage.r_start - geometry.stage.r_end)
    if prediction == "epsilon":
        return pred
    if prediction == "v":
        return pred * sch.a(r) + x * sch.b(r)
    raise ValueError(f"schedule.prediction: '{prediction}' is not one of flow_velocity, "
                     "epsilon, v")


def target_to_prediction(prediction: str, geometry: StageGeometry, x: torch.Tensor, r: float,
                         target: torch.Tensor) -> torch.Tensor:
    """Inverse of ``prediction_to_target``: what the denoiser must output (the training
    target of a fine-tuned model)."""
    sch = geometry.schedule
    if prediction == "flow_velocity":
        return target / (geometry.stage.r_start - geometry.stage.r_end)
    if prediction == "epsilon":
        return target
    if prediction == "v":
        return (target - x * sch.b(r)) / sch.a(r)
    raise ValueError(f"schedule.prediction: '{prediction}' is not one of flow_velocity, "
                     "epsilon, v")


def cost_fraction(latent_frames: int, causal: bool, steps: Sequence[int]) -> float:
    """Denoiser frame-steps of a staged plan relative to vanilla with the same total steps,
    for a network linear in frame count."""
    K = len(steps)
    work = sum(n * stage_frames(latent_frames, K - i, causal) for i, n in enumerate(steps))
    return work / (sum(steps) * latent_frames)
