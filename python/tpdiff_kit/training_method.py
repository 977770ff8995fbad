"""The method pieces stage-wise training needs: noise schedules, stage windows, temporal
pooling with an optional causal first latent frame, and the closed-form stage mixes.

Written from docs/method.md ("One algebra for every stage") and the latent package contract:

- Every schedule works in the sampler's UNSHIFTED time t in [0, 1] (t = 1 is pure noise) and
  gives x_t = a(t) x0 + b(t) eps. Flow matching with shift: sigma(t) = shift t / (1 + (shift-1) t),
  a = 1 - sigma, b = sigma. VP discrete (diffusers-style betas): tau = t, index i = tau (N-1),
  log(alphabar) interpolated linearly between integer indices. VP continuous: the linear-beta
  schedule (beta 0.1 -> 20) of the built-in (v1) packages, as spec/src/schedule.cc.
- Stage windows: nominal boundaries uniform in t (or given), the start of every stage after
  the first rolled back so that lambda(s_k) = sqrt(2) lambda(e_{k+1}), lambda = b / a.
- Inside stage k every quantity is alpha D + gamma Q D + sigma eps with D = D_k(x0) and Q the
  pair projection Up(Down(.)) (0 for the noisiest stage, which starts from pure noise).

All scalar arithmetic is float64 on Python floats, in the same order as core/ and spec/, so the
coefficients agree with the C++ ones to the last bit where the schedules coincide.
"""

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch

SQRT2 = math.sqrt(2.0)


# ---------------------------------------------------------------------------------------------
# Schedules


class FlowSchedule:
    """Flow matching with timestep shift. `timestep_scale`: the denoiser's timestep input is
    sigma * timestep_scale (1000 for diffusers/Wan-style models; 1 gives the built-in v1
    network's input, t itself, when shift is 1)."""

    kind = "flow_matching"
    predictions = ("flow_velocity",)

    def __init__(self, shift: float = 1.0, timestep_scale: float = 1000.0):
        if not (math.isfinite(shift) and shift >= 1.0):
            raise ValueError(f"shift: {shift} must be a finite number >= 1 (1 = none)")
        if not (math.isfinite(timestep_scale) and timestep_scale > 0):
            raise ValueError(f"timestep_scale: {timestep_scale} must be > 0")
        self.shift = float(shift)
        self.timestep_scale = float(timestep_scale)

    def sigma(self, t: float) -> float:
        return self.shift * t / (1.0 + (self.shift - 1.0) * t)

    def t_of_sigma(self, sigma: float) -> float:
        return sigma / (self.shift - (self.shift - 1.0) * sigma)

    def a(self, t: float) -> float:
        return 1.0 - self.sigma(t)

    def b(self, t: float) -> float:
        return self.sigma(t)

    def lam(self, t: float) -> float:
        a = self.a(t)
        return math.inf if a <= 0 else self.b(t) / a

    def jump_start(self, end: float) -> float:
        # sigma_s / (1 - sigma_s) = sqrt(2) sigma_e / (1 - sigma_e), mapped back to t.
        se = self.sigma(end)
        r = SQRT2 * se
        return self.t_of_sigma(r / ((1.0 - se) + r))

    def timestep(self, t: float) -> float:
        return self.sigma(t) * self.timestep_scale


class _VPBase:
    kind = "vp"
    predictions = ("epsilon", "v")

    def a(self, t: float) -> float:
        return math.exp(0.5 * self.log_alphabar(t))

    def b(self, t: float) -> float:
        return math.sqrt(-math.expm1(self.log_alphabar(t)))

    def lam(self, t: float) -> float:
        a = self.a(t)
        return math.inf if a <= 0 else self.b(t) / a

    def sigma(self, t: float) -> float:
        return self.b(t)

    def jump_start(self, end: float) -> float:
        # lambda is strictly increasing: bisect lambda(s) = sqrt(2) lambda(e), as spec/ does.
        want = SQRT2 * self.lam(end)
        if want >= self.lam(1.0):
            return 1.0
        lo, hi = end, 1.0
        i = 0
        while i < 200 and hi - lo > 1e-15:
            mid = 0.5 * (lo + hi)
            if self.lam(mid) < want:
                lo = mid
            else:
                hi = mid
            i += 1
        return 0.5 * (lo + hi)


class VPContinuousSchedule(_VPBase):
    """The built-in (v1) packages' VP schedule: alphabar(t) = exp(-(0.1 t + 9.95 t^2)). The
    v1 network's timestep input is t."""

    BETA_MIN = 0.1
    BETA_MAX = 20.0

    def log_alphabar(self, t: float) -> float:
        return -(self.BETA_MIN * t + 0.5 * (self.BETA_MAX - self.BETA_MIN) * t * t)

    def timestep(self, t: float) -> float:
        return t


class VPDiscreteSchedule(_VPBase):
    """A discrete VP schedule of num_train_timesteps betas ("scaled_linear": linspace of
    sqrt(beta) squared; "linear": linspace of beta), alphabar_i = prod(1 - beta_0..i) in
    float64. The denoiser's timestep input is the float index tau * (N - 1)."""

    def __init__(self, beta_schedule: str = "scaled_linear", beta_start: float = 0.00085,
                 beta_end: float = 0.012, num_train_timesteps: int = 1000):
        if beta_schedule not in ("scaled_linear", "linear"):
            raise ValueError(f"beta_schedule: '{beta_schedule}' is not one of scaled_linear, linear")
        if not (0 < beta_start < 1 and 0 < beta_end < 1):
            raise ValueError(f"beta_start, beta_end: {beta_start}, {beta_end} must lie in (0, 1)")
        if num_train_timesteps < 2:
            raise ValueError(f"num_train_timesteps: {num_train_timesteps} must be >= 2")
        n = int(num_train_timesteps)
        if beta_schedule == "scaled_linear":
            betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, n, dtype=torch.float64) ** 2
        else:
            betas = torch.linspace(beta_start, beta_end, n, dtype=torch.float64)
        self.num_train_timesteps = n
        self._log_ab = torch.cumsum(torch.log1p(-betas), 0).tolist()

    def log_alphabar(self, t: float) -> float:
        x = t * (self.num_train_timesteps - 1)
        i = min(int(math.floor(x)), self.num_train_timesteps - 2)
        f = x - i
        return (1.0 - f) * self._log_ab[i] + f * self._log_ab[i + 1]

    def timestep(self, t: float) -> float:
        return t * (self.num_train_timesteps - 1)


def schedule_from_manifest(schedule: dict):
    """The schedule of a latent package manifest's "schedule" object (contract format 2)."""
    kind = schedule.get("type")
    if kind == "flow_matching":
        return FlowSchedule(schedule.get("shift", 1.0), schedule.get("timestep_scale", 1000.0))
    if kind == "vp":
        return VPDiscreteSchedule(schedule.get("beta_schedule", "scaled_linear"),
                                  schedule.get("beta_start", 0.00085),
                                  schedule.get("beta_end", 0.012),
                                  schedule.get("num_train_timesteps", 1000))
    raise ValueError(f"schedule.type: '{kind}' is not one of flow_matching, vp")


# ---------------------------------------------------------------------------------------------
# Stage windows


@dataclass(frozen=True)
class StageWindow:
    k: int          # stage number: K is the noisiest, 1 the full frame rate
    start: float    # s_k in unshifted time (rolled back for k < K)
    end: float      # e_k
    from_noise: bool  # the noisiest stage: starts from pure noise (x_s = eps), no jump


def stage_windows(schedule, num_stages: int,
                  boundaries: Optional[Sequence[float]] = None) -> List[StageWindow]:
    """Windows of stages K..1 (noisiest first), as spec::StagePlan::Create computes them."""
    if not 1 <= num_stages <= 5:
        raise ValueError(f"stages: {num_stages} is outside the supported range 1..5")
    nominal = [1.0]
    if not boundaries:
        nominal += [1.0 - i / num_stages for i in range(1, num_stages)]
    else:
        if len(boundaries) != num_stages - 1:
            raise ValueError(f"boundaries: {len(boundaries)} values given, {num_stages - 1} "
                             f"required for {num_stages} stages")
        for b in boundaries:
            if not 0.0 < b < 1.0:
                raise ValueError(f"boundaries: {b} is outside the open interval (0, 1)")
            if not b < nominal[-1]:
                raise ValueError(f"boundaries: must be strictly decreasing (noisiest first), "
                                 f"got {list(boundaries)}")
            nominal.append(float(b))
    nominal.append(0.0)
    windows: List[StageWindow] = []
    for i in range(num_stages):
        k = num_stages - i
        end = nominal[i + 1]
        start = 1.0 if i == 0 else schedule.jump_start(windows[-1].end)
        if not start > end:
            raise ValueError(f"boundaries: stage {k} window is empty after the jump correction "
                             f"(start {start}, end {end})")
        windows.append(StageWindow(k, start, end, i == 0))
    return windows


# ---------------------------------------------------------------------------------------------
# Temporal pooling on [B, C, T, H, W]; with causal=True frame 0 is kept as is at every stage.


def _pair_mean(x: torch.Tensor) -> torch.Tensor:
    s = x.shape
    if s[2] % 2:
        raise ValueError(f"temporal pooling needs an even number of paired frames, got {s[2]}")
    return x.reshape(s[0], s[1], s[2] // 2, 2, s[3], s[4]).mean(3)


def temporal_down(x: torch.Tensor, causal: bool = False) -> torch.Tensor:
    if x.dim() != 5:
        raise ValueError(f"expected [B, C, T, H, W], got {tuple(x.shape)}")
    if causal:
        return torch.cat([x[:, :, :1], _pair_mean(x[:, :, 1:])], 2)
    return _pair_mean(x)


def temporal_up(x: torch.Tensor, causal: bool = False) -> torch.Tensor:
    if causal:
        return torch.cat([x[:, :, :1], x[:, :, 1:].repeat_interleave(2, 2)], 2)
    return x.repeat_interleave(2, 2)


def temporal_project(x: torch.Tensor, causal: bool = False) -> torch.Tensor:
    return temporal_up(temporal_down(x, causal), causal)


def temporal_down_times(x: torch.Tensor, times: int, causal: bool = False) -> torch.Tensor:
    for _ in range(times):
        x = temporal_down(x, causal)
    return x


def stage_frames(frames: int, k: int, causal: bool = False) -> int:
    """Frame count of stage k for a `frames`-frame (latent) clip; ValueError if not divisible."""
    div = 1 << (k - 1)
    paired = frames - 1 if causal else frames
    if paired < div or paired % div:
        what = "frames - 1" if causal else "frames"
        raise ValueError(f"frames: {frames} needs {what} to be a positive multiple of "
                         f"2^(k-1) = {div} for stage {k}")
    return (1 if causal else 0) + paired // div


# ---------------------------------------------------------------------------------------------
# Stage mixes: x = alpha D + gamma Q D + sigma eps


@dataclass(frozen=True)
class Mix:
    alpha: float
    gamma: float
    sigma: float


def state_mix(schedule, window: StageWindow, t: float) -> Mix:
    """x_t inside the window: the start point x_s = a(s) Q D + beta eps (beta = b(s) after a
    jump, 1 from pure noise), the end point x_e = a(e) D + b(e) eps."""
    s, e, noisiest = window.start, window.end, window.from_noise
    if schedule.kind == "flow_matching":
        # A straight path in the noise level sigma from x_s to x_e.
        ss, se, st = schedule.sigma(s), schedule.sigma(e), schedule.sigma(t)
        u = (st - se) / (ss - se)
        q_weight = 0.0 if noisiest else (1.0 - ss)
        beta = 1.0 if noisiest else ss
        return Mix((1.0 - u) * (1.0 - se), u * q_weight, (1.0 - u) * se + u * beta)
    # VP: x_t / a_t moves linearly in lambda from x_s / a_s to x_e / a_e (DPM-Solver form).
    a_s, a_t = schedule.a(s), schedule.a(t)
    ls, le, lt = schedule.lam(s), schedule.lam(e), schedule.lam(t)
    beta = 1.0 if noisiest else schedule.b(s)
    w = (lt - ls) / (le - ls)
    q_weight = 0.0 if noisiest else 1.0
    return Mix(a_t * w, a_t * (1.0 - w) * q_weight, a_t * ((1.0 - w) * beta / a_s + w * le))


def stage_velocity_mix(schedule, window: StageWindow) -> Mix:
    """Flow matching: the stage velocity x_s - x_e in the stage's u units (u = 0 at the end,
    1 at the start), the built-in (v1) network's target."""
    ss, se = schedule.sigma(window.start), schedule.sigma(window.end)
    q_weight = 0.0 if window.from_noise else (1.0 - ss)
    beta = 1.0 if window.from_noise else ss
    return Mix(-(1.0 - se), q_weight, beta - se)


def stage_eps_mix(schedule, window: StageWindow) -> Mix:
    """VP: eps_k = (x_e / a_e - x_s / a_s) / (lambda_e - lambda_s), constant along the stage."""
    s, e = window.start, window.end
    a_s = schedule.a(s)
    ls, le = schedule.lam(s), schedule.lam(e)
    beta = 1.0 if window.from_noise else schedule.b(s)
    inv = 1.0 / (le - ls)
    q_weight = 0.0 if window.from_noise else 1.0
    return Mix(inv, -inv * q_weight, (le - beta / a_s) * inv)
