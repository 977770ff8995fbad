"""Prompt -> (tokens, mask) by the latent package contract's token rule.

SentencePiece: ids = EncodeAsIds(prompt) + [eos_id()], padded with pad_id() (0 if the model has
no pad piece) to max_tokens; mask = 1 on the real ids including EOS. The prompt is passed as is
(SentencePiece normalises it); an empty prompt is just EOS, the unconditional input.
"""

from typing import List, Sequence, Tuple

import sentencepiece
import torch


class PromptTooLong(ValueError):
    pass


class SentencePieceTokenizer:
    def __init__(self, model_file: str, max_tokens: int):
        if max_tokens < 1:
            raise ValueError(f"tokenizer.max_tokens: {max_tokens} must be >= 1")
        self.processor = sentencepiece.SentencePieceProcessor(model_file=model_file)
        self.max_tokens = int(max_tokens)
        if self.processor.eos_id() < 0:
            raise ValueError(f"tokenizer.file: {model_file} has no EOS piece")
        self.eos_id = self.processor.eos_id()
        self.pad_id = max(self.processor.pad_id(), 0)

    @property
    def vocab_size(self) -> int:
        return self.processor.get_piece_size()

    def ids(self, prompt: str) -> List[int]:
        """The prompt's ids with EOS, unpadded; raises PromptTooLong past max_tokens."""
        ids = list(self.processor.EncodeAsIds(prompt)) + [self.eos_id]
        if len(ids) > self.max_tokens:
            raise PromptTooLong(f"prompt: {len(ids)} tokens exceeds the model's maximum of "
                                f"{self.max_tokens}")
        return ids

    def encode(self, prompts: Sequence[str]) -> Tuple[torch.Tensor, torch.Tensor]:
        """tokens and mask, both int64 [len(prompts), max_tokens]."""
        tokens = torch.full((len(prompts), self.max_tokens), self.pad_id, dtype=torch.int64)
        mask = torch.zeros((len(prompts), self.max_tokens), dtype=torch.int64)
        for row, prompt in enumerate(prompts):
            ids = self.ids(prompt)
            tokens[row, :len(ids)] = torch.tensor(ids, dtype=torch.int64)
            mask[row, :len(ids)] = 1
        return tokens, mask
