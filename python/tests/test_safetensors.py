"""The small safetensors reader and writer."""

import json
import os
import pathlib
import struct
import tempfile
import unittest

import torch

import support  # noqa: F401  (sys.path)
from tpdiff_kit import safetensors


class SafetensorsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "t.safetensors")

    def tearDown(self):
        self.dir.cleanup()

    def test_round_trip_of_every_dtype_the_kit_writes(self):
        tensors = {"latents": torch.randn(1, 2, 3, 4, 4), "ids": torch.arange(6).reshape(2, 3),
                   "frames": torch.tensor([[0, 128, 255]], dtype=torch.uint8),
                   "half": torch.randn(3).half(), "empty": torch.zeros(0, 2)}
        safetensors.save(self.path, tensors, {"seed": 7})
        loaded, meta = safetensors.load(self.path)
        self.assertEqual(meta, {"seed": "7"})
        self.assertEqual(sorted(loaded), sorted(tensors))
        for name, t in tensors.items():
            self.assertEqual(loaded[name].dtype, t.dtype, name)
            self.assertTrue(torch.equal(loaded[name], t), name)

    def test_layout_is_length_json_then_little_endian_data(self):
        safetensors.save(self.path, {"x": torch.tensor([1.5, -2.0])})
        raw = pathlib.Path(self.path).read_bytes()
        (n,) = struct.unpack("<Q", raw[:8])
        self.assertEqual(n % 8, 0)
        header = json.loads(raw[8:8 + n])
        self.assertEqual(header["x"], {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]})
        self.assertEqual(struct.unpack("<2f", raw[8 + n:]), (1.5, -2.0))

    def test_rejects_truncated_files(self):
        safetensors.save(self.path, {"x": torch.zeros(4)})
        raw = pathlib.Path(self.path).read_bytes()
        with open(self.path, "wb") as f:
            f.write(raw[:-4])
        with self.assertRaisesRegex(ValueError, "x data_offsets"):
            safetensors.load(self.path)


if __name__ == "__main__":
    unittest.main()
