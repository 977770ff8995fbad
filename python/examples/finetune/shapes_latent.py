"""A small latent text-to-video model of the synthetic shapes clips, with the module
signatures of a latent package (text encoder, denoiser, VAE decoder), for the fine-tuning
example. Any architecture would do: the kit only sees the denoiser's inputs and outputs.

- Autoencoder: linear (PCA) over space-time patches of 2 frames x 4 x 4 pixels x 3 colours
  (96 values) to `channels` latent channels: 16 frames of 32x32 become 8 latent frames of 8x8.
  Fitted in closed form on rendered clips; the decoder is the transposed map.
- Text encoder: token embeddings + a small transformer over SentencePiece ids (the package's
  tokenizer: ids + EOS, padded; mask = 1 on real tokens).
- Denoiser: a DiT over 1x2x2 latent patches with cross-attention to the caption, told the
  timestep and the stage; temporal positions are stage-consistent (stage frame n stands for
  latent frame n 2^(k-1)), so one network serves every frame rate.
"""

import math

import torch
import torch.nn as nn

from tpdiff_kit import method

TF, SF = 2, 4  # temporal and spatial factor of the autoencoder


def _patches(video: torch.Tensor) -> torch.Tensor:
    """[B, 3, T, H, W] -> [B, T/2, H/4, W/4, 96]."""
    b, c, t, h, w = video.shape
    x = video.reshape(b, c, t // TF, TF, h // SF, SF, w // SF, SF)
    return x.permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(b, t // TF, h // SF, w // SF, c * TF * SF * SF)


class PcaAutoencoder:
    """Linear autoencoder: z = ((patch - mean) @ basis^T) * scale, per latent channel."""

    def __init__(self, mean: torch.Tensor, basis: torch.Tensor, scale: torch.Tensor):
        self.mean, self.basis, self.scale = mean, basis, scale

    @staticmethod
    def fit(videos: torch.Tensor, channels: int) -> "PcaAutoencoder":
        p = _patches(videos.double()).reshape(-1, 3 * TF * SF * SF)
        mean = p.mean(0)
        cov = (p - mean).T @ (p - mean) / p.shape[0]
        evals, evecs = torch.linalg.eigh(cov)
        basis = evecs[:, -channels:].flip(1).T.contiguous()  # [channels, 96], largest first
        std = torch.sqrt(evals[-channels:].flip(0))
        return PcaAutoencoder(mean.float(), basis.float(), (1.0 / std).float())

    def state(self):
        return {"mean": self.mean, "basis": self.basis, "scale": self.scale}

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """[B, 3, T, H, W] in [-1, 1] -> normalised latents [B, C, T/2, H/4, W/4]."""
        z = (_patches(video) - self.mean) @ self.basis.T * self.scale
        return z.permute(0, 4, 1, 2, 3).contiguous()

    def decoder(self) -> "PcaDecoder":
        return PcaDecoder(self.mean, self.basis)


class PcaDecoder(nn.Module):
    """The package's VAE decoder: DE-normalised latents (z / scale) -> [B, 3, T, H, W]."""

    def __init__(self, mean: torch.Tensor, basis: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.clone())
        self.register_buffer("basis", basis.clone())

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = latents.shape
        p = latents.permute(0, 2, 3, 4, 1) @ self.basis + self.mean  # [B, t, h, w, 96]
        x = p.reshape(b, t, h, w, 3, TF, SF, SF).permute(0, 4, 1, 5, 2, 6, 3, 7)
        return x.reshape(b, 3, t * TF, h * SF, w * SF).clamp(-1.0, 1.0)


class TextEncoder(nn.Module):
    def __init__(self, vocab_size: int, dim: int = 64, layers: int = 2, max_tokens: int = 32):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.pos = nn.Parameter(torch.randn(max_tokens, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, 4, dim * 2, 0.0, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.pos[: tokens.shape[1]]
        # A caption of padding only attends to nothing: let it see every position so
        # attention stays defined.
        pad = mask == 0
        pad = pad & ~pad.all(1, keepdim=True)
        return self.norm(self.encoder(x, src_key_padding_mask=pad))


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32,
                                                        device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], 1)


class Block(nn.Module):
    def __init__(self, width: int, heads: int, ctx_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(width)
        self.cross = nn.MultiheadAttention(width, heads, kdim=ctx_dim, vdim=ctx_dim,
                                           batch_first=True)
        self.norm3 = nn.LayerNorm(width, elementwise_affine=False)
        self.mlp = nn.Sequential(nn.Linear(width, width * 4), nn.GELU(), nn.Linear(width * 4, width))
        self.mod = nn.Linear(width, 6 * width)
        nn.init.zeros_(self.mod.weight)
        nn.init.zeros_(self.mod.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor, ctx: torch.Tensor,
                ctx_pad: torch.Tensor) -> torch.Tensor:
        m = self.mod(c)[:, None]
        s1, b1, g1, s2, b2, g2 = m.chunk(6, dim=2)
        h = self.norm1(x) * (1 + s1) + b1
        x = x + g1.tanh() * self.attn(h, h, h, need_weights=False)[0]
        h = self.norm2(x)
        x = x + self.cross(h, ctx, ctx, key_padding_mask=ctx_pad, need_weights=False)[0]
        h = self.norm3(x) * (1 + s2) + b2
        return x + g2.tanh() * self.mlp(h)


class Denoiser(nn.Module):
    """forward(latents [B,C,T',h,w], timestep [B], stage [B] int64, context [B,L,dim],
    mask [B,L] int64) -> [B,C,T',h,w]."""

    def __init__(self, channels: int, ctx_dim: int = 64, width: int = 96, depth: int = 4,
                 heads: int = 4, patch: int = 2, max_frames: int = 8, max_hw: int = 8,
                 timestep_scale: float = 1000.0):
        super().__init__()
        self.channels, self.patch, self.width = channels, patch, width
        self.timestep_scale = timestep_scale
        self.proj_in = nn.Linear(channels * patch * patch, width)
        self.pos_hw = nn.Parameter(torch.randn((max_hw // patch) ** 2, width) * 0.02)
        self.max_frames = max_frames
        self.t_mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        # Zero: a model trained on one stage gives every stage its stage-1 conditioning
        # (like a stock model that has no stage input) until fine-tuning moves them apart.
        self.stage_embed = nn.Embedding(6, width)
        nn.init.zeros_(self.stage_embed.weight)
        self.blocks = nn.ModuleList([Block(width, heads, ctx_dim) for _ in range(depth)])
        self.norm_out = nn.LayerNorm(width, elementwise_affine=False)
        self.out_mod = nn.Linear(width, 2 * width)
        self.proj_out = nn.Linear(width, channels * patch * patch)
        nn.init.zeros_(self.out_mod.weight)
        nn.init.zeros_(self.out_mod.bias)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, latents: torch.Tensor, timestep: torch.Tensor, stage: torch.Tensor,
                context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = latents.shape
        p = self.patch
        x = latents.reshape(b, c, t, h // p, p, w // p, p).permute(0, 2, 3, 5, 1, 4, 6)
        x = x.reshape(b, t, (h // p) * (w // p), c * p * p)
        x = self.proj_in(x) + self.pos_hw[None, None, : (h // p) * (w // p)]
        # Stage-consistent temporal positions: frame n of stage k stands for n 2^(k-1).
        n = method.temporal_positions(t, stage, False)
        x = x + timestep_embedding(n.reshape(-1), self.width).reshape(b, t, 1, self.width)
        x = x.reshape(b, t * (h // p) * (w // p), self.width)
        cond = self.t_mlp(timestep_embedding(timestep, self.width)) + self.stage_embed(stage)
        ctx_pad = mask == 0
        ctx_pad = ctx_pad & ~ctx_pad.all(1, keepdim=True)
        for blk in self.blocks:
            x = blk(x, cond, context, ctx_pad)
        s, sh = self.out_mod(cond)[:, None].chunk(2, dim=2)
        x = self.proj_out(self.norm_out(x) * (1 + s) + sh)
        x = x.reshape(b, t, h // p, w // p, c, p, p).permute(0, 4, 1, 2, 5, 3, 6)
        return x.reshape(b, c, t, h, w)
