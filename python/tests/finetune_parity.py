"""Parity of the Python fine-tuning kit with core/ (the functions behind tpdiff-train).

    python3 python/tests/finetune_parity.py FIXTURES.safetensors

FIXTURES is written by tests/unit/train's tpdiff_finetune_fixtures (ctest runs it first). The
kit must reproduce core's stage windows and jump coefficients, x_t and the targets for given
clips, times and noise, whole draws from the same seed (stage, times, noise, alignment), and
the assignments of the alignment solver, to 1e-6 (assignments exactly).

Units: core's flow-matching target is the stage velocity x_s - x_e in the stage's u units
(the built-in v1 network's output); the kit's "flow_velocity" target is that divided by
sigma(s_k) - sigma(e_k) (the package format's units). They are compared through
StageBatch.velocity_scale; core's model-native target (StageGeometry::ModelFromTarget) is
compared with the kit's target directly. Schedules: v1 flow matching (the kit's
FlowMatching(shift=1, timestep_scale=1), whose timestep input is t) and v1 continuous VP
(ContinuousVP, epsilon = eps_k); latent flow with shift 3 and a causal first frame, discrete
VP with epsilon, discrete VP with v and a causal first frame.
"""

import os
import sys
import unittest

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tpdiff_kit import alignment  # noqa: E402
from tpdiff_kit import method  # noqa: E402
from tpdiff_kit import safetensors  # noqa: E402
from tpdiff_kit.finetune import TPDiffTraining  # noqa: E402

TOL = 1e-6
FIXTURES = {}


# name: (schedule, prediction, causal first frame)
SCHEDULES = {
    "fm": (lambda: method.FlowMatching(shift=1.0, timestep_scale=1.0), "flow_velocity", False),
    "vp": (method.ContinuousVP, "epsilon", False),
    "flow3c": (lambda: method.FlowMatching(shift=3.0, timestep_scale=1000.0), "flow_velocity",
               True),
    "vpeps": (method.DiscreteVP, "epsilon", False),
    "vpvc": (method.DiscreteVP, "v", True),
}

# v1 packages' networks predict the stage target itself (core's Prediction::kStageTarget).
V1 = ("fm", "vp")


def kit_for(name, weights=None):
    make, prediction, causal = SCHEDULES[name]
    return TPDiffTraining(make(), num_stages=3, causal_first_frame=causal,
                          prediction=prediction, stage_weights=weights or None)


def clips_for(name):
    clips = FIXTURES["clips"]
    return clips[:, :, :13].contiguous() if SCHEDULES[name][2] else clips


def max_diff(a, b):
    return (a.double() - b.double()).abs().max().item()


class ParityTest(unittest.TestCase):
    def test_windows_and_jumps(self):
        for name in SCHEDULES:
            kit = kit_for(name)
            frames = clips_for(name).shape[2]
            windows = FIXTURES[f"{name}/windows"]
            for k in (1, 2, 3):
                w = kit.window(k, frames)
                self.assertLessEqual(abs(w.start - windows[k - 1, 0].item()), 1e-12, (name, k))
                self.assertLessEqual(abs(w.end - windows[k - 1, 1].item()), 1e-12, (name, k))
            jumps = FIXTURES[f"{name}/jumps"]
            for k in (1, 2):
                j = method.jump_coefficients(kit.schedule, kit.window(k + 1, frames),
                                             kit.window(k, frames))
                self.assertLessEqual(abs(j.c - jumps[k - 1, 0].item()), 1e-12, (name, k))
                self.assertLessEqual(abs(j.alpha - jumps[k - 1, 1].item()), 1e-12, (name, k))

    def test_built_batches(self):
        for name in SCHEDULES:
            kit = kit_for(name)
            clips = clips_for(name)
            for k in (1, 2, 3):
                p = f"{name}/build{k}/"
                b = kit.build(clips, k, FIXTURES[p + "t"], FIXTURES[p + "eps"])
                self.assertLessEqual(max_diff(b.x_t, FIXTURES[p + "x_t"]), TOL, p)
                if name not in V1:  # latent packages: the model-native target
                    self.assertLessEqual(max_diff(b.target, FIXTURES[p + "model_target"]),
                                         TOL, p)
                self.assertLessEqual(max_diff(b.timestep, FIXTURES[p + "timestep"]),
                                     TOL * max(1.0, FIXTURES[p + "timestep"].abs().max().item()),
                                     p)
                if kit.flow:  # core's stage velocity x_s - x_e, in u units
                    self.assertLessEqual(
                        max_diff(b.target * b.velocity_scale, FIXTURES[p + "target"]), TOL, p)
                    # The noise level sigma(t) (shifted for latent packages).
                    self.assertLessEqual(max_diff(b.noise_level, FIXTURES[p + "noise_level"]),
                                         1e-12, p)
                else:  # VP: b(t) of the schedule
                    b_t = torch.tensor([kit.schedule.b(r) for r in b.noise_level.tolist()],
                                       dtype=torch.float64)
                    self.assertLessEqual(max_diff(b_t, FIXTURES[p + "noise_level"]), 1e-12, p)
                    if kit.prediction == "epsilon":  # eps_k is core's stage target itself
                        self.assertLessEqual(max_diff(b.target, FIXTURES[p + "target"]), TOL, p)

    def test_draws_from_the_same_seed(self):
        stages_seen = set()
        for name in SCHEDULES:
            clips = clips_for(name)
            i = 0
            while f"{name}/draw{i}/seed" in FIXTURES:
                p = f"{name}/draw{i}/"
                kit = kit_for(name, FIXTURES[p + "weights"].tolist())
                gen = torch.Generator().manual_seed(int(FIXTURES[p + "seed"].item()))
                b = kit.draw_batch(clips, gen)
                self.assertEqual(b.stage, int(FIXTURES[p + "stage"].item()), p)
                stages_seen.add(b.stage)
                self.assertLessEqual(max_diff(b.t, FIXTURES[p + "t"]), TOL, p)
                self.assertLessEqual(max_diff(b.x_t, FIXTURES[p + "x_t"]), TOL, p)
                if kit.flow:
                    self.assertLessEqual(
                        max_diff(b.target * b.velocity_scale, FIXTURES[p + "target"]), TOL, p)
                elif kit.prediction == "epsilon":
                    self.assertLessEqual(max_diff(b.target, FIXTURES[p + "target"]), TOL, p)
                i += 1
            self.assertGreaterEqual(i, 6, name)
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
        sys.exit("usage: finetune_parity.py FIXTURES.safetensors [unittest args]")
    tensors, _ = safetensors.load(sys.argv[1])
    FIXTURES.update(tensors)
    unittest.main(argv=[sys.argv[0]] + sys.argv[2:])


if __name__ == "__main__":
    main()
