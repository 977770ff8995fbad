"""The miniature model's structure: stage-consistent positions, the causal VAE decoder, cost."""

import time
import unittest

import torch

import support  # noqa: F401  (sys.path)
import build_packages


class MiniatureTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(1)
        _, cls.dit, cls.vae = build_packages.build_modules(200, "flow_velocity", seed=0)

    def test_positions_are_shared_across_stages(self):
        full = self.dit.positions(5, 4, 4, torch.tensor([1])).reshape(1, 5, 16, -1)
        half = self.dit.positions(3, 4, 4, torch.tensor([2])).reshape(1, 3, 16, -1)
        quarter = self.dit.positions(2, 4, 4, torch.tensor([3])).reshape(1, 2, 16, -1)
        torch.testing.assert_close(half, full[:, [0, 1, 3]])
        torch.testing.assert_close(quarter, full[:, [0, 1]])

    def test_decoder_is_causal_and_keeps_the_first_frame_alone(self):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(1, 8, 5, 8, 8, generator=g)
        with torch.no_grad():
            y = self.vae(x)
            x2 = x.clone()
            x2[:, :, 2:] += 1.0
            y2 = self.vae(x2)
        self.assertEqual(list(y.shape), [1, 3, 17, 64, 64])
        # Latent frames 0 and 1 stand for pixel frames 0 and 1..4; later latents cannot reach them.
        torch.testing.assert_close(y2[:, :, :5], y[:, :, :5])
        self.assertGreater((y2[:, :, 5:] - y[:, :, 5:]).abs().max().item(), 1e-3)
        self.assertEqual(list(self.vae(x[:, :, :1]).shape), [1, 3, 1, 64, 64])

    def test_one_denoiser_call_takes_milliseconds_on_cpu(self):
        x = torch.randn(2, 8, 5, 8, 8)
        ctx = torch.randn(2, 32, 64)
        mask = torch.ones(2, 32, dtype=torch.int64)
        args = (x, torch.tensor([500.0, 500.0]), torch.tensor([1, 1]), ctx, mask)
        with torch.no_grad():
            self.dit(*args)
            begin = time.process_time()
            for _ in range(5):
                self.dit(*args)
            per_call = (time.process_time() - begin) / 5
        self.assertLess(per_call, 0.1)  # CPU time, so a busy machine does not fail it


if __name__ == "__main__":
    unittest.main()
