"""Parity of the Python fine-tuning kit with core/ (the functions behind tpdiff-train).

    python3 python/tests/test_finetune_parity.py FIXTURES.safetensors

FIXTURES is written by tests/unit/train's tpdiff_finetune_fixtures (ctest runs it first). The
kit must reproduce core's stage windows and jump coefficients, x_t and the targets for given
clips, times and noise, whole draws from the same seed (stage, times, noise, alignment), and
the assignments of the alignment solver, to 1e-6 (assignments exactly).

Units: core's flow-matching target is the stage velocity x_s - x_e in the stage's u units
(the built-in v1 network's output); the kit's "flow_velocity" target is that divided by
sigma(s_k) - sigma(e_k) (the contract's units). They are compared through
StageBatch.velocity_scale. core's schedules are flow matching without shift and the
continuous VP schedule of v1 packages: the kit's FlowSchedule(shift=1, timestep_scale=1) and
VPContinuousSchedule.
"""

import os
import sys
import unittest

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tpdiff_kit import alignment  # noqa: E402
from tpdiff_kit import training_method as tm  # noqa: E402
from tpdiff_kit.finetune import TPDiffTraining  # noqa: E402
from tpdiff_kit.safetensors_io import read_safetensors  # noqa: E402

TOL = 1e-6
FIXTURES = {}


def kit_for(name, weights=None):
    schedule = (tm.FlowSchedule(shift=1.0, timestep_scale=1.0) if name == "fm"
                else tm.VPContinuousSchedule())
    return TPDiffTraining(schedule, num_stages=3, stage_weights=weights or None)


def max_diff(a, b):
    return (a.double() - b.double()).abs().max().item()


class ParityTest(unittest.TestCase):
    def test_windows_and_jumps(self):
        for name in ("fm", "vp"):
            kit = kit_for(name)
            windows = FIXTURES[f"{name}/windows"]
            for k in (1, 2, 3):
                w = kit.window(k)
                self.assertLessEqual(abs(w.start - windows[k - 1, 0].item()), 1e-12, (name, k))
                self.assertLessEqual(abs(w.end - windows[k - 1, 1].item()), 1e-12, (name, k))
            jumps = FIXTURES[f"{name}/jumps"]
            sched = kit.schedule
            for k in (1, 2):
                c = sched.a(kit.window(k).start) / sched.a(kit.window(k + 1).end)
                alpha = sched.b(kit.window(k).start) / tm.SQRT2
                self.assertLessEqual(abs(c - jumps[k - 1, 0].item()), 1e-12, (name, k))
                self.assertLessEqual(abs(alpha - jumps[k - 1, 1].item()), 1e-12, (name, k))

    def test_built_batches(self):
        clips = FIXTURES["clips"]
        for name in ("fm", "vp"):
            kit = kit_for(name)
            for k in (1, 2, 3):
                p = f"{name}/build{k}/"
                b = kit.build(clips, k, FIXTURES[p + "t"], FIXTURES[p + "eps"])
                self.assertLessEqual(max_diff(b.x_t, FIXTURES[p + "x_t"]), TOL, p)
                self.assertLessEqual(
                    max_diff(b.target * b.velocity_scale, FIXTURES[p + "target"]), TOL, p)
                if name == "fm":  # the contract's units: (x_s - x_e) / (sigma_s - sigma_e)
                    self.assertLessEqual(
                        max_diff(b.target, FIXTURES[p + "target"] / b.velocity_scale), TOL, p)
                    self.assertLessEqual(max_diff(b.noise_level, FIXTURES[p + "t"]), 1e-12, p)
                self.assertLessEqual(max_diff(b.timestep, FIXTURES[p + "t"]), TOL, p)

    def test_draws_from_the_same_seed(self):
        clips = FIXTURES["clips"]
        stages_seen = set()
        for name in ("fm", "vp"):
            i = 0
            while f"{name}/draw{i}/seed" in FIXTURES:
                p = f"{name}/draw{i}/"
                weights = FIXTURES[p + "weights"].tolist()
                kit = kit_for(name, weights)
                gen = torch.Generator().manual_seed(int(FIXTURES[p + "seed"].item()))
                b = kit.draw_batch(clips, gen)
                self.assertEqual(b.stage, int(FIXTURES[p + "stage"].item()), p)
                stages_seen.add(b.stage)
                self.assertLessEqual(max_diff(b.t, FIXTURES[p + "t"]), TOL, p)
                self.assertLessEqual(max_diff(b.x_t, FIXTURES[p + "x_t"]), TOL, p)
                self.assertLessEqual(
                    max_diff(b.target * b.velocity_scale, FIXTURES[p + "target"]), TOL, p)
                i += 1
            self.assertGreaterEqual(i, 6)
        self.assertEqual(stages_seen, {1, 2, 3})  # the fixtures cover every stage

    def test_alignment_assignments(self):
        for n in (8, 48):
            p = f"align{n}/"
            cost = alignment.alignment_cost(FIXTURES[p + "videos"], FIXTURES[p + "noise"])
            self.assertLessEqual(max_diff(cost, FIXTURES[p + "cost"]), 1e-9, p)
            self.assertEqual(alignment.min_cost_assignment(FIXTURES[p + "cost"].numpy()),
                             FIXTURES[p + "assignment"].tolist(), p)
            aligned = alignment.align_noise(FIXTURES[p + "videos"], FIXTURES[p + "noise"])
            self.assertTrue(torch.equal(aligned, FIXTURES[p + "aligned"]), p)
            # Not the identity: the fixture exercises a real permutation.
            self.assertNotEqual(FIXTURES[p + "assignment"].tolist(), list(range(n)), p)
        for n in (7, 60):
            p = f"random{n}/"
            self.assertEqual(alignment.min_cost_assignment(FIXTURES[p + "cost"].numpy()),
                             FIXTURES[p + "assignment"].tolist(), p)


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: test_finetune_parity.py FIXTURES.safetensors [unittest args]")
    tensors, _ = read_safetensors(sys.argv[1])
    FIXTURES.update(tensors)
    unittest.main(argv=[sys.argv[0]] + sys.argv[2:])


if __name__ == "__main__":
    main()
