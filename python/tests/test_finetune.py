"""The fine-tuning kit's own behaviour: stage end and start points, targets in every
prediction's units (flow_velocity with shift, VP epsilon and v) with and without a causal
first latent frame, one stage = ordinary training, per-sample stage draws, losses, alignment
and the solver's optimality. Parity with core/ is finetune_parity.py (ctest finetune.parity).

    python3 python/tests/test_finetune.py
"""

import itertools
import math
import os
import sys
import unittest

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tpdiff_kit import alignment  # noqa: E402
from tpdiff_kit import method  # noqa: E402
from tpdiff_kit.finetune import TPDiffTraining  # noqa: E402

# A Wan-style latent package: 17 pixel frames -> 1 + 4 latent frames, causal first frame.
MANIFEST = {
    "name": "mini", "kind": "latent", "frames": 17, "height": 64, "width": 64, "fps": 8,
    "stages": 3, "default_stage_steps": [4, 4, 4],
    "schedule": {"type": "flow_matching", "shift": 3.0, "timestep_scale": 1000,
                 "prediction": "flow_velocity"},
    "vae": {"file": "vae_decoder.pt", "latent_channels": 4, "temporal_factor": 4,
            "spatial_factor": 8, "causal_first_frame": True, "scale": 1.0, "shift": 0.0},
}

VP = {"type": "vp", "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
      "num_train_timesteps": 1000}


def kits():
    """Flow with shift, VP epsilon and VP v, each causal and not."""
    out = []
    for causal in (True, False):
        for sched in (MANIFEST["schedule"], dict(VP, prediction="epsilon"),
                      dict(VP, prediction="v")):
            m = dict(MANIFEST, schedule=sched,
                     vae=dict(MANIFEST["vae"], causal_first_frame=causal))
            out.append(TPDiffTraining.from_manifest(m))
    return out


def latents(causal, batch=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    frames = 5 if causal else 8
    return torch.rand(batch, 4, frames, 3, 3, generator=g, dtype=torch.float64) * 2 - 1


def max_diff(a, b):
    return (a.double() - b.double()).abs().max().item()


class TargetTest(unittest.TestCase):
    def test_window_ends_are_the_stage_end_and_start_points(self):
        for kit in kits():
            causal = kit.causal_first_frame
            x0 = latents(causal)
            s = kit.schedule
            for k in (1, 2, 3):
                w = kit.window(k, x0.shape[2])
                d = kit.stage_clean(x0, k)
                eps = torch.randn(d.shape, dtype=torch.float64)
                x_e = d * s.a(w.r_end) + eps * s.b(w.r_end)
                x_s = eps if k == 3 else (method.up(kit.stage_clean(x0, k + 1), causal)
                                          * s.a(w.r_start) + eps * s.b(w.r_start))
                at_e = kit.build(x0, k, torch.full((3,), w.end, dtype=torch.float64), eps)
                at_s = kit.build(x0, k, torch.full((3,), w.start, dtype=torch.float64), eps)
                what = (type(s).__name__, kit.prediction, causal, k)
                self.assertLess(max_diff(at_e.x_t, x_e), 1e-12, what)
                self.assertLess(max_diff(at_s.x_t, x_s), 1e-12, what)
                if kit.flow:
                    self.assertLess(max_diff(at_e.target, (x_s - x_e) / (w.r_start - w.r_end)),
                                    1e-12, what)
                    self.assertAlmostEqual(at_e.velocity_scale, w.r_start - w.r_end, places=14)
                else:
                    eps_k = at_e.target if kit.prediction == "epsilon" else (
                        s.a(w.r_end) * at_e.target + s.b(w.r_end) * at_e.x_t)
                    rebuilt = (x_s / s.a(w.r_start) + eps_k * (s.lam(w.r_end) - s.lam(w.r_start))
                               ) * s.a(w.r_end)
                    self.assertLess(max_diff(rebuilt, x_e), 1e-9, what)

    def test_flow_target_is_the_derivative_in_sigma(self):
        kit = kits()[0]
        s = kit.schedule
        x0 = latents(True)
        for k in (1, 2, 3):
            w = kit.window(k, x0.shape[2])
            eps = torch.randn(kit.stage_clean(x0, k).shape, dtype=torch.float64)
            t0, t1 = w.end + 0.3 * (w.start - w.end), w.end + 0.7 * (w.start - w.end)
            b0 = kit.build(x0, k, torch.full((3,), t0, dtype=torch.float64), eps)
            b1 = kit.build(x0, k, torch.full((3,), t1, dtype=torch.float64), eps)
            slope = (b1.x_t - b0.x_t) / (s.level(t1) - s.level(t0))
            self.assertLess(max_diff(slope, b0.target), 1e-9, k)
            self.assertLess(max_diff(b0.target, b1.target), 1e-12, k)  # constant along the stage
            self.assertAlmostEqual(b0.timestep[0].item(), s.level(t0) * 1000, places=3)
            self.assertAlmostEqual(b0.noise_level[0].item(), 3 * t0 / (1 + 2 * t0), places=12)

    def test_v_target_gives_eps_through_the_contract_identity(self):
        kit = kits()[2]
        self.assertEqual(kit.prediction, "v")
        eps_kit = TPDiffTraining.from_manifest(dict(MANIFEST, schedule=dict(VP, prediction="epsilon")))
        x0 = latents(True)
        g = torch.Generator().manual_seed(3)
        for k in (1, 2, 3):
            w = kit.window(k)
            t = w.end + (w.start - w.end) * torch.rand(3, generator=g, dtype=torch.float64)
            eps = torch.randn(kit.stage_clean(x0, k).shape, generator=g, dtype=torch.float64)
            bv, be = kit.build(x0, k, t, eps), eps_kit.build(x0, k, t, eps)
            a = torch.tensor([kit.schedule.a(x) for x in t.tolist()], dtype=torch.float64)
            b = torch.tensor([kit.schedule.b(x) for x in t.tolist()], dtype=torch.float64)
            col = lambda v: v.reshape(-1, 1, 1, 1, 1)  # noqa: E731
            self.assertLess(max_diff(col(a) * bv.target + col(b) * bv.x_t, be.target), 1e-9, k)
            self.assertLess(max_diff(bv.timestep, t * 999), 1e-3, k)

    def test_stage_start_is_the_jump_from_the_previous_stage_end(self):
        """The start point's signal is c Up(x_e) of the previous stage's end point, and
        c^2 b(e)^2 + alpha^2 = b(s)^2 (a causal frame 0 takes a fresh z0 with the same alpha)."""
        for kit in kits():
            causal = kit.causal_first_frame
            s = kit.schedule
            x0 = latents(causal)
            for k in (1, 2):
                ws, we = kit.window(k, x0.shape[2]), kit.window(k + 1, x0.shape[2])
                jump = method.jump_coefficients(s, we, ws)
                zero = torch.zeros_like(kit.stage_clean(x0, k))
                start = kit.build(x0, k, torch.full((3,), ws.start, dtype=torch.float64), zero).x_t
                end = kit.build(x0, k + 1, torch.full((3,), we.end, dtype=torch.float64),
                                torch.zeros_like(kit.stage_clean(x0, k + 1))).x_t
                self.assertLess(max_diff(start, jump.c * method.up(end, causal)), 1e-12)
                self.assertAlmostEqual(jump.c ** 2 * s.b(we.r_end) ** 2 + jump.alpha ** 2,
                                       s.b(ws.r_start) ** 2, places=9)

    def test_one_stage_is_ordinary_training(self):
        m = dict(MANIFEST, stages=1)
        kit = TPDiffTraining.from_manifest(m)
        x0 = latents(True)
        eps = torch.randn(x0.shape, dtype=torch.float64)
        t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
        b = kit.build(x0, 1, t, eps)
        sig = torch.tensor([kit.schedule.level(x) for x in t.tolist()], dtype=torch.float64)
        sig5 = sig.reshape(-1, 1, 1, 1, 1)
        self.assertLess(max_diff(b.x_t, (1 - sig5) * x0 + sig5 * eps), 1e-12)
        self.assertLess(max_diff(b.target, eps - x0), 1e-12)
        self.assertLess(max_diff(b.timestep, sig * 1000), 1e-3)


class DrawTest(unittest.TestCase):
    def test_per_sample_stages_follow_the_weights_and_partition_the_batch(self):
        kit = TPDiffTraining.from_manifest(MANIFEST, stage_weights=[1, 0, 3])
        g = torch.Generator().manual_seed(0)
        x0 = latents(True, batch=8).float()
        counts = {1: 0, 2: 0, 3: 0}
        for _ in range(250):
            groups = kit.draw_batches(x0, g)
            self.assertEqual(sorted(torch.cat([b.indices for b in groups]).tolist()), list(range(8)))
            for b in groups:
                counts[b.stage] += len(b.indices)
                self.assertEqual(b.x_t.shape[2], kit.stage_frames(5, b.stage))
                self.assertTrue(torch.equal(b.clean, kit.stage_clean(x0[b.indices], b.stage)))
                self.assertGreaterEqual(b.t.min().item(), b.window.end)
                self.assertLessEqual(b.t.max().item(), b.window.start)
        self.assertEqual(counts[2], 0)
        # Binomial(2000, 0.75): sd ~19; +-80 is over 4 sd.
        self.assertAlmostEqual(counts[3], 1500, delta=80)

    def test_loss_weighs_every_sample_alike(self):
        kit = TPDiffTraining.from_manifest(MANIFEST)
        x0 = latents(True, batch=6).float()
        groups = kit.draw_batches(x0, torch.Generator().manual_seed(5))
        preds = [torch.zeros_like(b.target) for b in groups]
        per_sample = torch.cat([b.target.pow(2).flatten(1).mean(1) for b in groups])
        self.assertAlmostEqual(kit.loss(preds, groups).item(), per_sample.mean().item(), places=6)

    def test_alignment_brings_noise_closer_and_is_a_permutation(self):
        kit = TPDiffTraining.from_manifest(MANIFEST)
        off = TPDiffTraining.from_manifest(MANIFEST, align_noise=False)
        x0 = latents(True, batch=16).float()
        for seed in range(3):
            a = kit.draw_batch(x0, torch.Generator().manual_seed(seed), stage=1)
            b = off.draw_batch(x0, torch.Generator().manual_seed(seed), stage=1)
            flat_a, flat_b = a.eps.reshape(16, -1), b.eps.reshape(16, -1)
            match = (flat_a.unsqueeze(1) == flat_b.unsqueeze(0)).all(2)
            self.assertTrue(torch.equal(match.sum(0), torch.ones(16, dtype=torch.long)))
            dist = lambda e: (a.clean - e).reshape(16, -1).norm(dim=1).sum().item()  # noqa
            self.assertLessEqual(dist(a.eps), dist(b.eps) + 1e-5)

    def test_bad_settings_name_the_field(self):
        with self.assertRaisesRegex(ValueError, "stage_weights: 2 weights for 3 stages"):
            TPDiffTraining.from_manifest(MANIFEST, stage_weights=[1, 1])
        with self.assertRaisesRegex(ValueError, "stage_weights: -1.0 is not a finite weight"):
            TPDiffTraining.from_manifest(MANIFEST, stage_weights=[1, -1, 1])
        with self.assertRaisesRegex(ValueError, "prediction: 'epsilon' is not one of"):
            TPDiffTraining.from_manifest(MANIFEST, prediction="epsilon")
        kit = TPDiffTraining.from_manifest(MANIFEST)
        with self.assertRaisesRegex(ValueError, "frames: latent frames - 1 = 5 must be"):
            kit.draw_batch(torch.zeros(2, 4, 6, 3, 3), torch.Generator())


class SolverTest(unittest.TestCase):
    def test_optimal_against_brute_force(self):
        g = torch.Generator().manual_seed(1)
        for n in range(1, 8):
            for _ in range(8):
                cost = (torch.rand(n, n, generator=g, dtype=torch.float64) * 15 - 5).numpy()
                got = alignment.min_cost_assignment(cost)
                self.assertEqual(sorted(got), list(range(n)))
                best = min(sum(cost[r, p[r]] for r in range(n))
                           for p in itertools.permutations(range(n)))
                self.assertAlmostEqual(sum(cost[r, got[r]] for r in range(n)), best, places=9)

    def test_rejects_non_square_or_non_finite_costs(self):
        with self.assertRaisesRegex(ValueError, "cost: shape"):
            alignment.min_cost_assignment([[1.0, 2.0]])
        with self.assertRaisesRegex(ValueError, "finite"):
            alignment.min_cost_assignment([[1.0, math.inf], [0.0, 1.0]])


if __name__ == "__main__":
    unittest.main()
