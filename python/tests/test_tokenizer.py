"""The package format's token rule on the miniature SentencePiece vocabulary."""

import filecmp
import os
import pathlib
import tempfile
import unittest

import sentencepiece
import torch

import support  # noqa: F401  (sys.path)
import build_packages
from tpdiff_kit.tokenizer import PromptTooLong, SentencePieceTokenizer


class TokenizerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.TemporaryDirectory()
        cls.model = build_packages.train_tokenizer(cls.work.name)
        cls.spm = sentencepiece.SentencePieceProcessor(model_file=cls.model)

    @classmethod
    def tearDownClass(cls):
        cls.work.cleanup()

    def test_vocabulary_has_pad_zero_and_eos(self):
        self.assertEqual(self.spm.get_piece_size(), 200)
        self.assertEqual(self.spm.pad_id(), 0)
        self.assertEqual(self.spm.eos_id(), 1)

    def test_ids_then_eos_then_padding(self):
        tok = SentencePieceTokenizer(self.model, 16)
        prompt = "A red circle moves left quickly"
        ids = self.spm.EncodeAsIds(prompt)
        tokens, mask = tok.encode([prompt, ""])
        n = len(ids) + 1
        self.assertEqual(tokens[0, :n].tolist(), ids + [1])
        self.assertEqual(tokens[0, n:].tolist(), [0] * (16 - n))
        self.assertEqual(mask[0].tolist(), [1] * n + [0] * (16 - n))
        # The empty prompt (the unconditional input) is EOS alone.
        self.assertEqual(tokens[1].tolist(), [1] + [0] * 15)
        self.assertEqual(mask[1].tolist(), [1] + [0] * 15)
        self.assertEqual(tokens.dtype, torch.int64)
        self.assertEqual(mask.dtype, torch.int64)

    def test_text_is_passed_as_is(self):
        tok = SentencePieceTokenizer(self.model, 32)
        self.assertNotEqual(tok.ids("Red ball"), tok.ids("red ball"))

    def test_prompt_longer_than_the_limit_is_rejected_with_the_counts(self):
        tok = SentencePieceTokenizer(self.model, 8)
        prompt = "a small green star moves left quickly on a black background"
        n = len(self.spm.EncodeAsIds(prompt)) + 1
        with self.assertRaises(PromptTooLong) as ctx:
            tok.encode([prompt])
        self.assertEqual(str(ctx.exception),
                         f"prompt: {n} tokens exceeds the model's maximum of 8")
        exact = SentencePieceTokenizer(self.model, n)
        self.assertEqual(int(exact.encode([prompt])[1].sum()), n)  # exactly at the limit: fine

    def test_training_is_reproducible(self):
        with tempfile.TemporaryDirectory() as other:
            again = build_packages.train_tokenizer(other)
            self.assertTrue(filecmp.cmp(self.model, again, shallow=False))
            self.assertNotIn(os.path.dirname(self.model).encode(), pathlib.Path(again).read_bytes())


if __name__ == "__main__":
    unittest.main()
