"""A miniature latent text-to-video model with the structure of the real ones (Wan, CogVideoX):
a T5-style text encoder, a DiT denoiser with cross-attention, a causal 3D-convolution VAE
decoder. Weights are random (seeded); the modules exist to exercise packaging, export and
samplers end to end at the shapes and signatures of the latent package contract. All three
modules are TorchScript-compatible.
"""

import math
from typing import List

import torch
import torch.nn.functional as F
from torch import nn

from tpdiff_kit.method import temporal_positions

# The additive mask is finite so that an all-masked row (an empty "words" mask) stays finite.


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int,
              bias: torch.Tensor) -> torch.Tensor:
    """Multi-head attention on [B, L, D] inputs with an additive bias broadcast to
    [B, heads, Lq, Lk]."""
    b, lq, d = q.shape
    lk = k.shape[1]
    hd = d // heads
    q = q.reshape(b, lq, heads, hd).transpose(1, 2)
    k = k.reshape(b, lk, heads, hd).transpose(1, 2)
    v = v.reshape(b, lk, heads, hd).transpose(1, 2)
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hd) + bias
    out = torch.matmul(torch.softmax(scores, -1), v)
    return out.transpose(1, 2).reshape(b, lq, d)


def key_mask_bias(mask: torch.Tensor) -> torch.Tensor:
    """[B, L] int mask (1 = real token) -> additive [B, 1, 1, L] bias."""
    return ((1 - mask.to(torch.float32)) * -1e9)[:, None, None, :]


# --------------------------------------------------------------------------------------------
# T5-style text encoder
# --------------------------------------------------------------------------------------------


class RelativePositionBias(nn.Module):
    """T5's bidirectional bucketed relative position bias, shared by all layers."""

    def __init__(self, heads: int, num_buckets: int = 32, max_distance: int = 64):
        super().__init__()
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.embedding = nn.Embedding(num_buckets, heads)

    def forward(self, length: int, device: torch.device) -> torch.Tensor:
        pos = torch.arange(length, device=device)
        rel = pos[None, :] - pos[:, None]
        half = self.num_buckets // 2
        bucket = (rel > 0).to(torch.long) * half
        rel = rel.abs()
        max_exact = half // 2
        large = max_exact + (torch.log(rel.clamp(min=1).to(torch.float32) / max_exact) /
                             math.log(self.max_distance / max_exact) *
                             (half - max_exact)).to(torch.long)
        large = large.clamp(max=half - 1)
        bucket = bucket + torch.where(rel < max_exact, rel, large)
        return self.embedding(bucket).permute(2, 0, 1)[None]  # [1, H, L, L]


class T5Layer(nn.Module):
    def __init__(self, dim: int, heads: int, ffn_dim: int):
        super().__init__()
        self.heads = heads
        self.norm1 = RMSNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)
        self.norm2 = RMSNorm(dim)
        self.wi_gate = nn.Linear(dim, ffn_dim, bias=False)
        self.wi = nn.Linear(dim, ffn_dim, bias=False)
        self.wo = nn.Linear(ffn_dim, dim, bias=False)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(self.norm1(x)).chunk(3, -1)
        x = x + self.out(attention(q, k, v, self.heads, bias))
        h = self.norm2(x)
        return x + self.wo(F.gelu(self.wi_gate(h), approximate="tanh") * self.wi(h))


class TextEncoder(nn.Module):
    """forward(tokens [B, L] int64, mask [B, L] int64) -> [B, L, dim]."""

    def __init__(self, vocab_size: int, dim: int = 64, layers: int = 2, heads: int = 4,
                 ffn_dim: int = 128):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.position_bias = RelativePositionBias(heads)
        self.layers = nn.ModuleList([T5Layer(dim, heads, ffn_dim) for _ in range(layers)])
        self.norm = RMSNorm(dim)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        bias = self.position_bias(tokens.shape[1], tokens.device) + key_mask_bias(mask)
        for layer in self.layers:
            x = layer(x, bias)
        return self.norm(x)


# --------------------------------------------------------------------------------------------
# DiT denoiser
# --------------------------------------------------------------------------------------------


def sincos(pos: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of float positions [...] -> [..., dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) *
                      torch.arange(half, dtype=torch.float32, device=pos.device) / half)
    args = pos.to(torch.float32)[..., None] * freqs
    return torch.cat([torch.cos(args), torch.sin(args)], -1)


class DiTBlock(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.modulation = nn.Linear(dim, 6 * dim)
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm_cross = nn.LayerNorm(dim, eps=1e-6)
        self.cross_q = nn.Linear(dim, dim)
        self.cross_kv = nn.Linear(dim, 2 * dim)
        self.cross_proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp_in = nn.Linear(dim, 4 * dim)
        self.mlp_out = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, context: torch.Tensor,
                context_bias: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = (
            self.modulation(F.silu(cond))[:, None].chunk(6, -1))
        h = self.norm1(x) * (1 + scale1) + shift1
        q, k, v = self.qkv(h).chunk(3, -1)
        no_bias = torch.zeros(1, 1, 1, 1, dtype=x.dtype, device=x.device)
        x = x + gate1 * self.proj(attention(q, k, v, self.heads, no_bias))
        ck, cv = self.cross_kv(context).chunk(2, -1)
        x = x + self.cross_proj(attention(self.cross_q(self.norm_cross(x)), ck, cv, self.heads,
                                          context_bias))
        h = self.norm2(x) * (1 + scale2) + shift2
        return x + gate2 * self.mlp_out(F.gelu(self.mlp_in(h), approximate="tanh"))


class DiT(nn.Module):
    """forward(latents [B, C, T', h, w], timestep [B] float, stage [B] int64,
    context [B, L, text_dim], mask [B, L] int64) -> [B, C, T', h, w].

    Tokens are 1x2x2 patches of all frames; positions are 3D sinusoids whose temporal part
    uses the stage-consistent position of each latent frame. ``input_skip`` adds
    ``input_skip * latents`` to the output: epsilon-predicting models learn eps ~ x_t at high
    noise, and a random network without it would drive a DDIM sampler's latents far out of
    range."""

    def __init__(self, latent_channels: int = 8, dim: int = 64, depth: int = 2, heads: int = 4,
                 text_dim: int = 64, patch: int = 2, max_stages: int = 5, causal: bool = True,
                 input_skip: float = 0.0, output_gain: float = 1.0):
        super().__init__()
        self.channels = latent_channels
        self.dim = dim
        self.patch = patch
        self.causal = causal
        self.input_skip = input_skip
        self.output_gain = output_gain
        self.patch_embed = nn.Linear(latent_channels * patch * patch, dim)
        self.time_in = nn.Linear(dim, dim)
        self.time_out = nn.Linear(dim, dim)
        self.stage_embed = nn.Embedding(max_stages + 1, dim)
        self.text_proj = nn.Linear(text_dim, dim)
        self.blocks = nn.ModuleList([DiTBlock(dim, heads) for _ in range(depth)])
        self.final_modulation = nn.Linear(dim, 2 * dim)
        self.final_norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.head = nn.Linear(dim, latent_channels * patch * patch)

    def positions(self, frames: int, hp: int, wp: int, stage: torch.Tensor) -> torch.Tensor:
        """[B, frames * hp * wp, dim] additive embedding: half the channels for time, a quarter
        each for rows and columns."""
        dt, ds = self.dim // 2, self.dim // 4
        t = sincos(temporal_positions(frames, stage, self.causal), dt)  # [B, T, dt]
        ys = sincos(torch.arange(hp, dtype=torch.float32, device=stage.device), ds)
        xs = sincos(torch.arange(wp, dtype=torch.float32, device=stage.device), ds)
        b = stage.shape[0]
        t = t[:, :, None, None, :].expand(b, frames, hp, wp, dt)
        ys = ys[None, None, :, None, :].expand(b, frames, hp, wp, ds)
        xs = xs[None, None, None, :, :].expand(b, frames, hp, wp, ds)
        return torch.cat([t, ys, xs], -1).reshape(b, frames * hp * wp, self.dim)

    def forward(self, latents: torch.Tensor, timestep: torch.Tensor, stage: torch.Tensor,
                context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = latents.shape
        p = self.patch
        hp, wp = h // p, w // p
        x = latents.reshape(b, c, t, hp, p, wp, p).permute(0, 2, 3, 5, 1, 4, 6)
        x = self.patch_embed(x.reshape(b, t * hp * wp, c * p * p))
        x = x + self.positions(t, hp, wp, stage)
        cond = self.time_out(F.silu(self.time_in(sincos(timestep, self.dim))))
        cond = cond + self.stage_embed(stage)
        ctx = self.text_proj(context)
        ctx_bias = key_mask_bias(mask)
        for block in self.blocks:
            x = block(x, cond, ctx, ctx_bias)
        shift, scale = self.final_modulation(F.silu(cond))[:, None].chunk(2, -1)
        x = self.head(self.final_norm(x) * (1 + scale) + shift) * self.output_gain
        x = x.reshape(b, t, hp, wp, c, p, p).permute(0, 4, 1, 2, 5, 3, 6)
        return x.reshape(b, c, t, h, w) + self.input_skip * latents


# --------------------------------------------------------------------------------------------
# Causal 3D-convolution VAE decoder
# --------------------------------------------------------------------------------------------


class CausalConv3d(nn.Module):
    """3D convolution that only looks back in time: zero padding before the first frame."""

    def __init__(self, cin: int, cout: int, kernel_t: int = 3, kernel_s: int = 3):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, (kernel_t, kernel_s, kernel_s))
        self.pad_t = kernel_t - 1
        self.pad_s = kernel_s // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.pad_s
        return self.conv(F.pad(x, [s, s, s, s, self.pad_t, 0]))


class ChannelRMSNorm(nn.Module):
    """RMS normalisation over channels at each voxel (as Wan's decoder): per frame, so the
    decoder stays causal in time."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.rsqrt(x.pow(2).mean(1, keepdim=True) + self.eps)
        return x * scale * self.weight[None, :, None, None, None]


class ResBlock3d(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.norm1 = ChannelRMSNorm(channels)
        self.conv1 = CausalConv3d(channels, channels)
        self.norm2 = ChannelRMSNorm(channels)
        self.conv2 = CausalConv3d(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        return x + self.conv2(F.silu(self.norm2(h)))


class TimeUpsample(nn.Module):
    """x2 in time with the first frame kept alone: 1 + M frames -> 1 + 2M."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = CausalConv3d(channels, 2 * channels, kernel_t=3, kernel_s=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] == 1:
            return x
        rest = self.conv(x[:, :, 1:])
        b, c2, m, h, w = rest.shape
        rest = rest.reshape(b, 2, c2 // 2, m, h, w).permute(0, 2, 3, 1, 4, 5)
        return torch.cat([x[:, :, :1], rest.reshape(b, c2 // 2, 2 * m, h, w)], 2)


class SpaceUpsample(nn.Module):
    """x2 in height and width (nearest), then a causal convolution."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = CausalConv3d(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        x = x[:, :, :, :, None, :, None].expand(b, c, t, h, 2, w, 2)
        return self.conv(x.reshape(b, c, t, 2 * h, 2 * w))


class VaeDecoder(nn.Module):
    """forward(latents [B, C, T', h, w]) -> [B, 3, 1 + 4 (T' - 1), 8h, 8w] in [-1, 1]."""

    def __init__(self, latent_channels: int = 8, widths: List[int] = (32, 16, 8, 8),
                 output_gain: float = 1.0):
        super().__init__()
        w0, w1, w2, w3 = widths
        self.output_gain = output_gain
        self.conv_in = CausalConv3d(latent_channels, w0)
        self.mid = ResBlock3d(w0)
        self.time_up = nn.ModuleList([TimeUpsample(w0), TimeUpsample(w0)])
        self.space_up = nn.ModuleList([SpaceUpsample(w0, w1), SpaceUpsample(w1, w2),
                                       SpaceUpsample(w2, w3)])
        self.norm_out = ChannelRMSNorm(w3)
        self.conv_out = CausalConv3d(w3, 3)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        x = self.mid(self.conv_in(latents))
        for up in self.time_up:
            x = up(x)
        for up in self.space_up:
            x = F.silu(up(x))
        return torch.tanh(self.conv_out(self.norm_out(x)) * self.output_gain)
