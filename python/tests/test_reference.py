"""The reference staged sampler: noise order, guidance batching, vanilla equivalence,
determinism, decoding and the command line."""

import contextlib
import io
import math
import os
import tempfile
import unittest

import torch

import support
from tpdiff_kit import method, reference, safetensors
from tpdiff_kit.package import LatentPackage

PROMPT = "a red circle moves left"


class Recorder:
    """Wraps a denoiser and records each call's inputs."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = []

    def __call__(self, latents, timestep, stage, context, mask):
        self.calls.append((latents.clone(), timestep.clone(), stage.clone(), context.clone(),
                           mask.clone()))
        return self.inner(latents, timestep, stage, context, mask)


class ReferenceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(1)
        root = support.mini_packages()
        cls.packages = {name: LatentPackage(os.path.join(root, name))
                        for name in ("mini-flow", "mini-vp-eps", "mini-vp-v")}

    def test_noise_is_drawn_in_the_contract_order(self):
        pkg = LatentPackage(self.packages["mini-flow"].directory)
        pkg.denoiser = lambda x, *rest: torch.zeros_like(x)  # x only moves at the jumps
        res = reference.sample(pkg, PROMPT, seed=11, guidance=1.0, steps=[2, 2, 2], decode=False)
        g = torch.Generator().manual_seed(11)
        x = torch.randn([1, 8, 2, 8, 8], generator=g)
        stages = method.plan_stages(pkg.schedule, 5, True, [2, 2, 2])
        for frm, to in zip(stages, stages[1:]):
            n_from = frm.frames - 1
            z = torch.randn([1, 8, n_from, 8, 8], generator=g)
            z0 = torch.randn([1, 8, 1, 8, 8], generator=g)
            c = pkg.schedule.a(to.r_start) / pkg.schedule.a(frm.r_end)
            alpha = pkg.schedule.b(to.r_start) / math.sqrt(2)
            up = [x[:, :, :1]]
            pairs = [z0]
            for i in range(n_from):
                up += [x[:, :, 1 + i:2 + i]] * 2
                pairs += [z[:, :, i:i + 1], -z[:, :, i:i + 1]]
            x = torch.cat(up, 2) * c + torch.cat(pairs, 2) * alpha
        torch.testing.assert_close(res.latents, x, atol=1e-6, rtol=1e-6)

    def test_guidance_is_one_batched_call_cond_first(self):
        pkg = LatentPackage(self.packages["mini-flow"].directory)
        rec = Recorder(pkg.denoiser)
        pkg.denoiser = rec
        reference.sample(pkg, PROMPT, "blurry", seed=1, guidance=4.0, steps=[1, 2, 3],
                         decode=False)
        self.assertEqual(len(rec.calls), 6)
        tokens, mask = pkg.tokenizer.encode([PROMPT, "blurry"])
        context = pkg.text_encoder(tokens, mask)
        stages = method.plan_stages(pkg.schedule, 5, True, [1, 2, 3])
        want = [(s.k, s.frames, r) for s in stages for r in s.step_levels(pkg.schedule)[:-1]]
        for (latents, timestep, stage, ctx, m), (k, frames, r) in zip(rec.calls, want):
            self.assertEqual(list(latents.shape), [2, 8, frames, 8, 8])
            self.assertTrue(torch.equal(latents[0], latents[1]))
            self.assertEqual(timestep.dtype, torch.float32)
            self.assertEqual(timestep.tolist(), [torch.tensor(r * 1000.0).item()] * 2)
            self.assertEqual(stage.tolist(), [k, k])
            self.assertEqual(stage.dtype, torch.int64)
            torch.testing.assert_close(ctx, context)
            self.assertTrue(torch.equal(m, mask))

    def test_guidance_mix_and_guidance_one_uses_batch_one(self):
        pkg = LatentPackage(self.packages["mini-flow"].directory)
        # Row 0 (cond) predicts 1, row 1 (uncond) predicts 3: the mix is 3 + w (1 - 3).
        pkg.denoiser = lambda x, t, k, c, m: torch.cat(
            [torch.full_like(x[:1], 1.0), torch.full_like(x[1:], 3.0)], 0)
        start = reference.sample(pkg, PROMPT, seed=2, guidance=4.0, steps=[1], stages=1,
                                 decode=False)
        g = torch.Generator().manual_seed(2)
        noise = torch.randn([1, 8, 5, 8, 8], generator=g)
        # One Euler step from sigma 1 to 0 with pred -5: x = noise + 5.
        torch.testing.assert_close(start.latents, noise + 5.0)
        rec = Recorder(self.packages["mini-flow"].denoiser)
        pkg.denoiser = rec
        reference.sample(pkg, PROMPT, seed=2, guidance=1.0, steps=[1], stages=1, decode=False)
        self.assertEqual(rec.calls[0][0].shape[0], 1)
        self.assertEqual(rec.calls[0][3].shape[0], 1)

    def vanilla(self, pkg, n, seed, w):
        """Stock samplers written out directly: shifted Euler for flow matching, DDIM on
        alphabar with eps or v for VP."""
        tokens, mask = pkg.tokenizer.encode([PROMPT, ""])
        ctx = pkg.text_encoder(tokens, mask)
        g = torch.Generator().manual_seed(seed)
        x = torch.randn([1, 8, 5, 8, 8], generator=g)
        schedule = pkg.manifest["schedule"]

        def pred(x, timestep):
            out = pkg.denoiser(torch.cat([x, x]), torch.full((2,), timestep),
                               torch.ones(2, dtype=torch.int64), ctx, mask)
            return out[1:] + (out[:1] - out[1:]) * w

        if schedule["type"] == "flow_matching":
            shift = schedule["shift"]
            sigmas = [shift * t / (1 + (shift - 1) * t) for t in [1 - i / n for i in range(n + 1)]]
            for s, s_next in zip(sigmas, sigmas[1:]):
                x = x + pred(x, s * 1000.0) * (s_next - s)
            return x
        betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
        log_ab = torch.cumsum(torch.log(1 - betas), 0)

        def alphabar(i):
            lo = min(int(i), 998)
            return math.exp(log_ab[lo].item() * (lo + 1 - i) + log_ab[lo + 1].item() * (i - lo))

        idx = [999.0 * (1 - j / n) for j in range(n + 1)]
        for i, i_next in zip(idx, idx[1:]):
            ab, ab_next = alphabar(i), alphabar(i_next)
            out = pred(x, i)
            eps = out if schedule["prediction"] == "epsilon" else (
                out * math.sqrt(ab) + x * math.sqrt(1 - ab))
            x0 = (x - eps * math.sqrt(1 - ab)) / math.sqrt(ab)
            x = x0 * math.sqrt(ab_next) + eps * math.sqrt(1 - ab_next)
        return x

    def test_one_stage_is_the_stock_sampler(self):
        for name, pkg in self.packages.items():
            res = reference.sample(pkg, PROMPT, seed=5, guidance=3.0, steps=[6], stages=1,
                                   decode=False)
            torch.testing.assert_close(res.latents, self.vanilla(pkg, 6, 5, 3.0), atol=1e-4,
                                       rtol=1e-4, msg=name)
            self.assertEqual(res.denoiser_calls, 6)

    def test_an_oracle_denoiser_gives_the_clean_latents_and_exact_previews(self):
        # The oracle knows x0 and returns, for any x on a stage's path, the exact raw prediction;
        # the sampler must then land on D_k(x0) at every stage end.
        g = torch.Generator().manual_seed(4)
        x0 = torch.randn(1, 8, 5, 8, 8, generator=g)
        for name, base in self.packages.items():
            pkg = LatentPackage(base.directory)
            stages = {s.k: s for s in method.plan_stages(pkg.schedule, 5, True, [3, 3, 3])}

            def oracle(latents, timestep, stage, context, mask):
                k = int(stage[0])
                geo = method.StageGeometry(pkg.schedule, stages[k], True)
                r = float(timestep[0]) / pkg.schedule.timestep(1.0)
                d = method.down_times(x0, k - 1, True).double()
                x = latents[:1].double()
                target = geo.oracle_target(x, r, d)
                raw = method.target_to_prediction(pkg.prediction, geo, x, r, target)
                return raw.float().expand_as(latents)

            pkg.denoiser = oracle
            res = reference.sample(pkg, PROMPT, seed=6, steps=[3, 3, 3], decode=False)
            for st in res.stages[:-1]:
                torch.testing.assert_close(st.preview, method.down_times(x0, st.k - 1, True),
                                           atol=2e-4, rtol=2e-4, msg=f"{name} stage {st.k}")
            if pkg.prediction == "flow_velocity":
                torch.testing.assert_close(res.latents, x0, atol=2e-4, rtol=2e-4)

    def test_same_seed_same_result_other_seed_other_result(self):
        pkg = self.packages["mini-vp-v"]
        a = reference.sample(pkg, PROMPT, seed=3)
        b = reference.sample(pkg, PROMPT, seed=3)
        c = reference.sample(pkg, PROMPT, seed=4)
        self.assertTrue(torch.equal(a.latents, b.latents))
        self.assertTrue(torch.equal(a.video, b.video))
        for sa, sb in zip(a.stages, b.stages):
            self.assertTrue(torch.equal(sa.preview, sb.preview))
        self.assertGreater((a.latents - c.latents).abs().mean().item(), 0.1)
        d = reference.sample(pkg, "a blue square moves up", seed=3)
        self.assertGreater((a.latents - d.latents).abs().max().item(), 1e-3)

    def test_stage_results_and_decoded_video(self):
        for name, pkg in self.packages.items():
            res = reference.sample(pkg, PROMPT, seed=9)
            self.assertEqual([(s.k, s.frames) for s in res.stages], [(3, 2), (2, 3), (1, 5)])
            self.assertEqual(res.denoiser_calls, 12)
            self.assertTrue(torch.equal(res.stages[-1].latents, res.latents))
            self.assertEqual(list(res.video.shape), [1, 3, 17, 64, 64])
            frames = reference.to_uint8_frames(res.video)
            self.assertEqual(list(frames.shape), [17, 64, 64, 3])
            # Not degenerate: most pixels unsaturated, and frames vary in space and time.
            saturated = ((frames == 0) | (frames == 255)).float().mean().item()
            self.assertLess(saturated, 0.05, name)
            self.assertGreater(frames.float().std().item(), 10.0, name)
            self.assertGreater((frames[1:].float() - frames[:-1].float()).abs().mean().item(),
                               1.0, name)
            preview = pkg.decode(res.stages[0].preview)
            self.assertEqual(list(preview.shape), [1, 3, 5, 64, 64])

    def test_uint8_rule_matches_the_worker(self):
        video = torch.tensor([-1.0, 1.0, 0.0, 3.0, -7.0, 2 / 255 - 1, 1 / 255 - 1]).reshape(
            1, 1, 7, 1, 1).expand(1, 3, 7, 1, 1)
        frames = reference.to_uint8_frames(video)
        self.assertEqual(frames[:, 0, 0, 0].tolist(), [0, 255, 128, 255, 0, 1, 0])

    def test_command_line_writes_latents_stages_and_frames(self):
        pkg = self.packages["mini-vp-eps"]
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "ref.safetensors")
            with contextlib.redirect_stdout(io.StringIO()) as log:
                rc = reference.main(["--package", pkg.directory, "--prompt", PROMPT,
                                     "--negative-prompt", "blurry", "--seed", "8",
                                     "--guidance", "4", "--steps", "2,3,2", "--out", out])
            self.assertEqual(rc, 0)
            self.assertIn("7 denoiser calls", log.getvalue())
            tensors, meta = safetensors.load(out)
        want = reference.sample(pkg, PROMPT, "blurry", seed=8, guidance=4.0, steps=[2, 3, 2])
        self.assertTrue(torch.equal(tensors["latents"], want.latents))
        for st in want.stages:
            self.assertTrue(torch.equal(tensors[f"stage{st.k}.latents"], st.latents))
            self.assertTrue(torch.equal(tensors[f"stage{st.k}.preview"], st.preview))
        self.assertTrue(torch.equal(tensors["frames"], reference.to_uint8_frames(want.video)))
        self.assertEqual(tensors["frames"].dtype, torch.uint8)
        self.assertEqual(list(tensors["stage3.preview_frames"].shape), [5, 64, 64, 3])
        self.assertEqual((meta["seed"], meta["steps"], meta["guidance"]), ("8", "2,3,2", "4.0"))

    def test_bad_steps_are_rejected(self):
        pkg = self.packages["mini-flow"]
        with self.assertRaisesRegex(ValueError, "steps: 2 values given"):
            reference.sample(pkg, PROMPT, steps=[2, 2], stages=3)
        with self.assertRaisesRegex(ValueError, "frames"):
            reference.sample(pkg, PROMPT, steps=[1, 1, 1, 1])  # N = 4 latent frames, 4 stages


if __name__ == "__main__":
    unittest.main()
