"""Export of PyTorch modules into a package: round trip and the errors it reports."""

import os
import subprocess
import sys
import tempfile
import unittest
import warnings

import torch
from torch import nn

import support  # noqa: F401  (sys.path)
import build_packages
from tpdiff_kit.export import ExportError, export_package, example_inputs
from tpdiff_kit.package import LatentPackage


class ExportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.TemporaryDirectory()
        cls.spm = build_packages.train_tokenizer(cls.work.name)
        cls.manifest = build_packages.manifest("mini-test", build_packages.PACKAGES["mini-flow"])

    @classmethod
    def tearDownClass(cls):
        cls.work.cleanup()

    def modules(self):
        return build_packages.build_modules(200, "flow_velocity", seed=0)

    def export(self, enc, den, vae, **kw):
        out = os.path.join(self.work.name, "pkg")
        return export_package(out, self.manifest, enc, den, vae, self.spm, log=None, **kw), out

    def test_reloaded_modules_give_the_eager_outputs(self):
        enc, den, vae = self.modules()
        _, out = self.export(enc, den, vae)
        pkg = LatentPackage(out)
        ex = example_inputs(pkg.manifest, pkg.tokenizer, seed=3)
        with torch.no_grad():
            ctx = enc(ex["tokens"], ex["mask"])
            torch.testing.assert_close(pkg.text_encoder(ex["tokens"], ex["mask"]), ctx)
            for k in (1, 2, 3):
                x = ex["latents"][k]
                args = (x, torch.tensor([900.0, 20.0]), torch.tensor([k, k]), ctx, ex["mask"])
                torch.testing.assert_close(pkg.denoiser(*args), den(*args))
                torch.testing.assert_close(pkg.vae_decoder(x[:1]), vae(x[:1]))

    def test_weights_are_fixed_by_the_seed(self):
        a, b = self.modules(), self.modules()
        for ma, mb in zip(a, b):
            for (name, pa), (_, pb) in zip(ma.state_dict().items(), mb.state_dict().items()):
                self.assertTrue(torch.equal(pa, pb), name)
        other = build_packages.build_modules(200, "flow_velocity", seed=1)[1]
        self.assertFalse(torch.equal(other.head.weight, b[1].head.weight))

    def test_wrong_output_shape_names_the_module_and_shapes(self):
        enc, den, vae = self.modules()

        class Halves(nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, latents: torch.Tensor) -> torch.Tensor:
                return self.inner(latents)[:, :, ::2]

        with self.assertRaises(ExportError) as ctx:
            self.export(enc, den, Halves(vae))
        self.assertIn("vae: output shape [1, 3, 9, 64, 64] for latents [1, 8, 5, 8, 8]",
                      str(ctx.exception))
        self.assertIn("expected [1, 3, 17, 64, 64]", str(ctx.exception))

        class NoStage(nn.Module):
            def forward(self, latents: torch.Tensor, timestep: torch.Tensor,
                        context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
                return latents

        with self.assertRaisesRegex(ExportError, r"^denoiser: failed on inputs \(\[2, 8, 5, 8, 8\]"):
            self.export(enc, NoStage(), vae)

        class WideText(nn.Module):
            def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
                return torch.zeros(tokens.shape[0], tokens.shape[1], 32)

        with self.assertRaisesRegex(ExportError, r"text_encoder: output shape \[2, 32, 32\]"):
            self.export(WideText(), den, vae)

    def test_unscriptable_module_is_traced_and_checked_at_every_stage(self):
        enc, den, vae = self.modules()

        class Untyped(nn.Module):  # *args cannot be scripted; tracing works
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, *args):
                return self.inner(*args)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m, out = self.export(enc, Untyped(den), vae)
        self.assertEqual(m["denoiser"]["file"], "denoiser.pt")
        loaded = torch.jit.load(os.path.join(out, "denoiser.pt"))
        pkg = LatentPackage(out)
        ex = example_inputs(pkg.manifest, pkg.tokenizer)
        with torch.no_grad():
            ctx = enc(ex["tokens"], ex["mask"])
            x = ex["latents"][3]
            args = (x, torch.full((2,), 100.0), torch.full((2,), 3), ctx, ex["mask"])
            torch.testing.assert_close(loaded(*args), den(*args))

        class FrameBound(nn.Module):  # a trace bakes in int(frames): caught at other stages
            def forward(self, latents, timestep, stage, context, mask):
                frames = int(latents.shape[2])
                return latents * torch.ones(frames)[None, None, :, None, None]

        with self.assertRaisesRegex(ExportError, r"^denoiser: failed on inputs \(\[2, 8, 3, 8, 8\]"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.export(enc, FrameBound(), vae, compile="trace")

    def test_command_line_with_a_factory(self):
        out = os.path.join(self.work.name, "cli")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        done = subprocess.run([sys.executable, "-m", "tpdiff_kit.export", "--factory",
                               "build_packages:factory", "--out", out], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.assertEqual(done.returncode, 0, done.stdout)
        self.assertIn("denoiser.pt", done.stdout)
        self.assertEqual(LatentPackage(out).name, "mini-flow")


if __name__ == "__main__":
    unittest.main()
