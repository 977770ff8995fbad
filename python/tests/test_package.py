"""model.json of the miniature packages, and the manifest rules."""

import copy
import json
import os
import unittest

import support
from tpdiff_kit.package import LatentPackage, ManifestError, validate_manifest


class PackageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = support.mini_packages()
        with open(os.path.join(cls.root, "mini-flow", "model.json"), encoding="utf-8") as f:
            cls.flow = json.load(f)

    def test_manifests_follow_the_contract(self):
        want_schedule = {
            "mini-flow": {"type": "flow_matching", "shift": 3.0, "timestep_scale": 1000.0,
                          "prediction": "flow_velocity"},
            "mini-vp-eps": {"type": "vp", "beta_schedule": "scaled_linear",
                            "beta_start": 0.00085, "beta_end": 0.012,
                            "num_train_timesteps": 1000, "prediction": "epsilon"},
        }
        want_schedule["mini-vp-v"] = dict(want_schedule["mini-vp-eps"], prediction="v")
        for name, schedule in want_schedule.items():
            folder = os.path.join(self.root, name)
            with open(os.path.join(folder, "model.json"), encoding="utf-8") as f:
                m = json.load(f)
            self.assertEqual(m["name"], name)
            self.assertEqual(m["kind"], "latent")
            self.assertEqual(m["schedule"], schedule)
            self.assertEqual((m["frames"], m["height"], m["width"], m["fps"]), (17, 64, 64, 8))
            self.assertEqual((m["stages"], m["default_stage_steps"]), (3, [4, 4, 4]))
            self.assertEqual(m["default_guidance_scale"], 4.0)
            self.assertEqual(m["tokenizer"], {"kind": "sentencepiece", "max_tokens": 32,
                                              "file": "tokenizer.model"})
            self.assertEqual(m["text_encoder"], {"dim": 64, "dtype": "float32",
                                                 "file": "text_encoder.pt"})
            self.assertEqual(m["denoiser"], {"dtype": "float32", "file": "denoiser.pt"})
            vae = m["vae"]
            self.assertEqual((vae["file"], vae["latent_channels"], vae["temporal_factor"],
                              vae["spatial_factor"], vae["causal_first_frame"]),
                             ("vae_decoder.pt", 8, 4, 8, True))
            self.assertEqual((len(vae["scale"]), len(vae["shift"])), (8, 8))
            for part in ("tokenizer", "text_encoder", "denoiser", "vae"):
                self.assertTrue(os.path.isfile(os.path.join(folder, m[part]["file"])), part)
            pkg = LatentPackage(folder)
            self.assertEqual((pkg.latent_frames, pkg.latent_height, pkg.latent_width), (5, 8, 8))

    def rejects(self, change, message):
        m = copy.deepcopy(self.flow)
        change(m)
        with self.assertRaises(ManifestError) as ctx:
            validate_manifest(m)
        self.assertIn(message, str(ctx.exception))

    def test_rules_name_the_field_and_the_limit(self):
        validate_manifest(self.flow)
        self.rejects(lambda m: m.update(colour="red"), "colour: unknown field")
        self.rejects(lambda m: m["vae"].update(gain=2), "vae.gain: unknown field")
        self.rejects(lambda m: m.update(frames=18), "frames: 18 must be 1 + 4 * N with N a "
                                                    "positive multiple of 2^(stages-1) = 4")
        self.rejects(lambda m: m.update(frames=13), "frames: 13 must be 1 + 4 * N")
        self.rejects(lambda m: m.update(height=60), "height: 60 is not divisible by "
                                                    "vae.spatial_factor 8")
        self.rejects(lambda m: m.update(stages=6), "stages: 6 is outside 1..5")
        self.rejects(lambda m: m.update(default_stage_steps=[4, 4]),
                     "default_stage_steps: one value per stage (3) required")
        self.rejects(lambda m: m["schedule"].update(prediction="v"),
                     "schedule.prediction: 'v' is not one of flow_velocity for flow_matching")
        self.rejects(lambda m: m["schedule"].update(shift=0.5), "schedule.shift: 0.5 must be >= 1")
        self.rejects(lambda m: m["schedule"].update(beta_end=0.02),
                     "schedule.beta_end: unknown field")
        self.rejects(lambda m: m["vae"].update(scale=[1.0, 2.0]),
                     "vae.scale: 2 values, one or vae.latent_channels (8) required")
        self.rejects(lambda m: m["vae"].update(dtype="int8"), "vae.dtype: 'int8' is not one of")
        self.rejects(lambda m: m.update(boundaries=[0.3, 0.6]),
                     "boundaries: must be strictly decreasing")
        self.rejects(lambda m: m["denoiser"].update(file="../x.pt"), "denoiser.file")
        self.rejects(lambda m: m.pop("schedule"), "schedule: required")

    def test_a_single_scale_and_non_causal_frames_are_valid(self):
        m = copy.deepcopy(self.flow)
        m["vae"].update(scale=0.5, shift=0.0, causal_first_frame=False)
        m["frames"] = 16
        validate_manifest(m)


if __name__ == "__main__":
    unittest.main()
