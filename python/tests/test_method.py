"""Identities of the method (tpdiff_kit.method): windows, operators, jump statistics, stage
algebra, previews and prediction conversions."""

import math
import unittest

import torch

from tpdiff_kit import method as m

SCHEDULES = {
    "flow": m.FlowMatching(shift=1.0),
    "flow_shift3": m.FlowMatching(shift=3.0, timestep_scale=1000.0),
    "vp_scaled_linear": m.DiscreteVP("scaled_linear", 0.00085, 0.012, 1000),
    "vp_linear": m.DiscreteVP("linear", 0.0001, 0.02, 1000),
    "vp_continuous": m.ContinuousVP(),
}


def smooth_video(gen, shape):
    """Random latents whose neighbouring frames are correlated but not equal."""
    base = torch.randn(shape[:2] + [1] + shape[3:], generator=gen, dtype=torch.float64)
    return base + 0.5 * torch.randn(shape, generator=gen, dtype=torch.float64)


class ScheduleTest(unittest.TestCase):
    def test_flow_windows_match_the_method_note(self):
        sch = SCHEDULES["flow"]
        stages = m.plan_stages(sch, 5, True, [2, 2, 2])
        self.assertEqual([s.k for s in stages], [3, 2, 1])
        self.assertEqual([s.frames for s in stages], [2, 3, 5])
        self.assertAlmostEqual(stages[1].start, 0.7388, places=4)
        self.assertAlmostEqual(stages[2].start, 0.4142, places=4)
        j2 = m.jump_coefficients(sch, stages[0], stages[1])
        j1 = m.jump_coefficients(sch, stages[1], stages[2])
        self.assertAlmostEqual(j2.c, 0.7836, places=4)
        self.assertAlmostEqual(j2.alpha, 0.5224, places=4)
        self.assertAlmostEqual(j1.c, 0.8787, places=4)
        self.assertAlmostEqual(j1.alpha, 0.2929, places=4)

    def test_shift_maps_nominal_boundaries_and_rolled_back_starts(self):
        sch = SCHEDULES["flow_shift3"]
        self.assertAlmostEqual(sch.level(2.0 / 3.0), 6.0 / 7.0, places=14)
        for t in [0.0, 0.1, 0.5, 0.9, 1.0]:
            self.assertAlmostEqual(sch.time(sch.level(t)), t, places=14)
        stages = m.plan_stages(sch, 5, True, [1, 1, 1])
        for prev, cur in zip(stages, stages[1:]):
            self.assertAlmostEqual(sch.lam(cur.r_start), math.sqrt(2) * sch.lam(prev.r_end),
                                   places=12)
            self.assertAlmostEqual(sch.level(cur.start), cur.r_start, places=14)
        for stage, nominal in zip(stages, [2.0 / 3.0, 1.0 / 3.0, 0.0]):
            self.assertAlmostEqual(stage.end, nominal, places=15)
            self.assertAlmostEqual(stage.r_end, sch.level(nominal), places=15)

    def test_vp_jump_start_solves_the_ratio_equation(self):
        for name in ["vp_scaled_linear", "vp_linear", "vp_continuous"]:
            sch = SCHEDULES[name]
            for e in [0.1, 1.0 / 3.0, 0.5]:
                s = sch.jump_start(e)
                self.assertGreater(s, e)
                self.assertAlmostEqual(sch.lam(s) / sch.lam(e), math.sqrt(2), places=9, msg=name)

    def test_discrete_vp_hits_the_cumulative_products_and_interpolates_log_alphabar(self):
        sch = SCHEDULES["vp_scaled_linear"]
        betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
        ab = torch.cumprod(1 - betas, 0)
        for i in [0, 1, 500, 998, 999]:
            r = i / 999
            self.assertAlmostEqual(sch.a(r) ** 2, ab[i].item(), places=12)
            self.assertAlmostEqual(sch.a(r) ** 2 + sch.b(r) ** 2, 1.0, places=12)
            self.assertAlmostEqual(sch.timestep(r), i, places=9)
        mid = 500.25 / 999
        want = 0.75 * math.log(ab[500].item()) + 0.25 * math.log(ab[501].item())
        self.assertAlmostEqual(2 * math.log(sch.a(mid)), want, places=12)

    def test_step_levels_are_uniform_in_unshifted_time(self):
        sch = SCHEDULES["flow_shift3"]
        (stage,) = m.plan_stages(sch, 5, True, [4])
        self.assertEqual(stage.step_levels(sch), [sch.level(1 - i / 4) for i in range(5)])

    def test_rejects_bad_plans_naming_the_field(self):
        with self.assertRaisesRegex(ValueError, "frames"):
            m.plan_stages(SCHEDULES["flow"], 4, True, [1, 1, 1])  # N = 3 not divisible by 4
        with self.assertRaisesRegex(ValueError, "boundaries"):
            m.plan_stages(SCHEDULES["flow"], 5, True, [1, 1, 1], [0.3, 0.6])
        with self.assertRaisesRegex(ValueError, "stage_steps"):
            m.plan_stages(SCHEDULES["flow"], 5, True, [1, 0])

    def test_cost_fraction_with_the_causal_frame(self):
        self.assertAlmostEqual(m.cost_fraction(21, True, [10, 10, 10]), 38 / 63, places=12)
        self.assertAlmostEqual(m.cost_fraction(16, False, [10, 10, 10]), 0.583333, places=5)


class TemporalOpsTest(unittest.TestCase):
    def test_causal_down_keeps_frame_zero_and_pools_pairs(self):
        x = torch.arange(5, dtype=torch.float64).reshape(1, 1, 5, 1, 1)
        self.assertEqual(m.down(x, True).flatten().tolist(), [0.0, 1.5, 3.5])
        self.assertEqual(m.up(m.down(x, True), True).flatten().tolist(),
                         [0.0, 1.5, 1.5, 3.5, 3.5])
        self.assertEqual(m.down(x[:, :, 1:], False).flatten().tolist(), [1.5, 3.5])

    def test_projection_is_orthogonal_with_and_without_the_causal_frame(self):
        gen = torch.Generator().manual_seed(1)
        for causal, t in [(True, 9), (False, 8)]:
            x = torch.randn(2, 3, t, 2, 2, generator=gen, dtype=torch.float64)
            y = torch.randn(2, 3, t, 2, 2, generator=gen, dtype=torch.float64)
            px = m.project(x, causal)
            torch.testing.assert_close(m.project(px, causal), px)  # idempotent
            self.assertAlmostEqual((px * y).sum().item(), (x * m.project(y, causal)).sum().item(),
                                   places=10)  # self-adjoint
            if causal:
                torch.testing.assert_close(px[:, :, 0], x[:, :, 0])

    def test_stage_consistent_positions(self):
        def positions(frames, k, causal):
            return m.temporal_positions(frames, torch.tensor([k]), causal)[0].tolist()
        self.assertEqual(positions(5, 1, True), [0, 1, 2, 3, 4])
        self.assertEqual(positions(3, 2, True), [0, 1, 3])
        self.assertEqual(positions(2, 3, True), [0, 1])
        self.assertEqual(positions(4, 2, False), [0, 2, 4, 6])
        both = m.temporal_positions(3, torch.tensor([2, 1]), True)
        self.assertEqual(both.tolist(), [[0, 1, 3], [0, 1, 2]])
        scripted = torch.jit.script(m.temporal_positions)
        torch.testing.assert_close(scripted(3, torch.tensor([2, 1]), True), both)

    def test_frame_counts(self):
        self.assertEqual(m.latent_frame_count(81, 4, True), 21)
        self.assertEqual(m.pixel_frame_count(21, 4, True), 81)
        self.assertEqual(m.latent_frame_count(16, 1, False), 16)
        self.assertEqual([m.stage_frames(21, k, True) for k in (1, 2, 3)], [21, 11, 6])
        with self.assertRaisesRegex(ValueError, "frames"):
            m.latent_frame_count(18, 4, True)


class JumpTest(unittest.TestCase):
    def jump_noise(self, sch, causal, n_samples=20000):
        """Noise part of x_s after the jump from the exact end point of stage 3 (K = 3), and the
        jump itself, for many draws at one clean video."""
        gen = torch.Generator().manual_seed(7)
        latent_frames = 5 if causal else 4
        stages = m.plan_stages(sch, latent_frames, causal, [1, 1, 1])
        frm, to = stages[0], stages[1]
        x0 = smooth_video(gen, [1, 1, latent_frames, 1, 1])
        d_from = m.down_times(x0, frm.k - 1, causal).expand(n_samples, 1, frm.frames, 1, 1)
        eps = torch.randn(n_samples, 1, frm.frames, 1, 1, generator=gen, dtype=torch.float64)
        x_end = sch.a(frm.r_end) * d_from + sch.b(frm.r_end) * eps
        coeffs = m.jump_coefficients(sch, frm, to)
        shapes = m.jump_noise_shapes(x_end.shape, causal)
        draws = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
        x_s = m.jump(x_end, coeffs, *draws, causal=causal)
        mean = sch.a(to.r_start) * m.up(d_from, causal)
        return (x_s - mean).reshape(n_samples, -1), sch.b(to.r_start), coeffs

    def test_noise_after_the_jump_is_white_with_the_start_variance(self):
        for name in ["flow_shift3", "vp_scaled_linear"]:
            for causal in [True, False]:
                noise, b_s, _ = self.jump_noise(SCHEDULES[name], causal)
                cov = noise.T @ noise / noise.shape[0]
                want = torch.eye(cov.shape[0], dtype=torch.float64) * b_s ** 2
                # 20000 draws: sampling error of a covariance entry ~ b_s^2 * 0.7 %.
                torch.testing.assert_close(cov, want, atol=0.03 * b_s ** 2, rtol=0,
                                           msg=f"{name} causal={causal}")
                self.assertLess(noise.mean(0).abs().max().item(), 0.03 * b_s)

    def test_duplicates_without_corrective_noise_would_be_correlated(self):
        # The check above can fail: the scaled upsample alone leaves the copies identical.
        noise, b_s, coeffs = self.jump_noise(SCHEDULES["flow"], True)
        self.assertGreater(coeffs.alpha, 0)
        sch = SCHEDULES["flow"]
        stages = m.plan_stages(sch, 5, True, [1, 1, 1])
        no_fix = m.up(torch.randn(1000, 1, 2, 1, 1, dtype=torch.float64), True).reshape(1000, -1)
        corr = torch.corrcoef(no_fix.T)
        self.assertGreater(corr[1, 2].item(), 0.99)
        self.assertAlmostEqual(coeffs.c ** 2 * sch.b(stages[0].r_end) ** 2 + coeffs.alpha ** 2,
                               b_s ** 2, places=12)

    def test_jump_noise_shapes_follow_the_draw_order(self):
        self.assertEqual(m.jump_noise_shapes([1, 8, 3, 4, 4], True),
                         [[1, 8, 2, 4, 4], [1, 8, 1, 4, 4]])
        self.assertEqual(m.jump_noise_shapes([1, 8, 2, 4, 4], False), [[1, 8, 2, 4, 4]])

    def test_causal_frame_takes_z0_and_pairs_are_antithetic(self):
        x_end = torch.zeros(1, 1, 3, 1, 1)
        z = torch.tensor([1.0, 2.0]).reshape(1, 1, 2, 1, 1)
        z0 = torch.tensor([5.0]).reshape(1, 1, 1, 1, 1)
        out = m.jump(x_end, m.JumpCoefficients(1.0, 2.0), z, z0, causal=True)
        self.assertEqual(out.flatten().tolist(), [10.0, 2.0, -2.0, 4.0, -4.0])


class StageGeometryTest(unittest.TestCase):
    def setUp(self):
        self.gen = torch.Generator().manual_seed(3)

    def for_each_stage(self):
        for name, sch in SCHEDULES.items():
            for causal, frames in [(True, 5), (False, 4)]:
                for stage in m.plan_stages(sch, frames, causal, [3, 3, 3]):
                    yield name, sch, causal, stage

    def test_preview_recovers_the_clean_stage_latent_with_an_oracle(self):
        for name, sch, causal, stage in self.for_each_stage():
            geo = m.StageGeometry(sch, stage, causal)
            d = smooth_video(self.gen, [2, 3, stage.frames, 2, 2])
            eps = torch.randn(d.shape, generator=self.gen, dtype=torch.float64)
            for u in [0.0, 0.3, 1.0]:
                r = stage.r_end + u * (stage.r_start - stage.r_end)
                if geo.state(r).sigma == 0.0:
                    continue  # the clean end of flow matching: no noise for the oracle to solve
                x = geo.compose(geo.state(r), d, eps)
                target = geo.oracle_target(x, r, d)
                torch.testing.assert_close(geo.preview(x, r, target), d, atol=1e-9, rtol=1e-9,
                                           msg=f"{name} causal={causal} k={stage.k} u={u}")

    def test_steps_with_the_oracle_land_on_the_end_point(self):
        for name, sch, causal, stage in self.for_each_stage():
            geo = m.StageGeometry(sch, stage, causal)
            d = smooth_video(self.gen, [1, 2, stage.frames, 2, 2])
            eps = torch.randn(d.shape, generator=self.gen, dtype=torch.float64)
            x = geo.start_point(d, eps)
            levels = stage.step_levels(sch)
            for r, r_next in zip(levels, levels[1:]):
                x = geo.step(x, r, r_next, geo.oracle_target(x, r, d))
            torch.testing.assert_close(x, geo.end_point(d, eps), atol=1e-9, rtol=1e-9,
                                       msg=f"{name} causal={causal} k={stage.k}")

    def test_jump_mean_matches_the_next_start_point(self):
        # c * Up(end point of stage k+1) has the signal of the start point of stage k.
        for name in ["flow_shift3", "vp_scaled_linear"]:
            sch = SCHEDULES[name]
            stages = m.plan_stages(sch, 5, True, [1, 1, 1])
            x0 = smooth_video(self.gen, [1, 1, 5, 2, 2])
            for frm, to in zip(stages, stages[1:]):
                c = m.jump_coefficients(sch, frm, to).c
                d_to = m.down_times(x0, to.k - 1, True)
                signal_end = sch.a(frm.r_end) * m.down(d_to, True)
                geo = m.StageGeometry(sch, to, True)
                start_signal = geo.start_point(d_to, torch.zeros_like(d_to))
                torch.testing.assert_close(c * m.up(signal_end, True), start_signal)


class PredictionTest(unittest.TestCase):
    def test_v_converts_to_eps(self):
        sch = SCHEDULES["vp_scaled_linear"]
        (stage,) = m.plan_stages(sch, 5, True, [10])
        geo = m.StageGeometry(sch, stage, True)
        gen = torch.Generator().manual_seed(5)
        x0 = torch.randn(1, 2, 5, 2, 2, generator=gen, dtype=torch.float64)
        eps = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
        for r in [0.05, 0.5, 0.95]:
            a, b = sch.a(r), sch.b(r)
            x = a * x0 + b * eps
            v = a * eps - b * x0
            torch.testing.assert_close(m.prediction_to_target("v", geo, x, r, v), eps)
            torch.testing.assert_close(m.target_to_prediction("v", geo, x, r, eps), v)

    def test_flow_velocity_is_scaled_by_the_window(self):
        sch = SCHEDULES["flow_shift3"]
        stages = m.plan_stages(sch, 5, True, [1, 1, 1])
        geo = m.StageGeometry(sch, stages[1], True)
        pred = torch.ones(1, 1, 3, 1, 1, dtype=torch.float64)
        width = stages[1].r_start - stages[1].r_end
        target = m.prediction_to_target("flow_velocity", geo, pred, 0.5, pred)
        torch.testing.assert_close(target, pred * width)
        torch.testing.assert_close(m.target_to_prediction("flow_velocity", geo, pred, 0.5,
                                                          target), pred)
        # An Euler step with the stage target moves x by pred * (sigma_next - sigma).
        x = torch.zeros_like(pred)
        torch.testing.assert_close(geo.step(x, 0.6, 0.5, target), pred * -0.1)
        with self.assertRaisesRegex(ValueError, "prediction"):
            m.prediction_to_target("sample", geo, x, 0.5, pred)


if __name__ == "__main__":
    unittest.main()
