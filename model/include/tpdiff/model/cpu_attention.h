#ifndef TPDIFF_MODEL_CPU_ATTENTION_H_
#define TPDIFF_MODEL_CPU_ATTENTION_H_
// Multi-head attention for inference on the CPU, for the short sequences of the built-in
// network (4-256 queries, 4-256 keys, head width 32).
//
// Why: Debian's LibTorch 1.13 has no fused attention, and its CPU bmm without MKL runs one
// small GEMM per batch entry with several tensor ops around each. The temporal attention of
// one 4-frame call is 128 such entries of 4x4 scores: 4 blocks x 3 attentions cost about
// 2.5 ms of an 11 ms call, and every call pays the same ~10 ops of reshapes, copies and
// softmax besides. This kernel does the whole attention in one pass per (clip, head).
#include <torch/types.h>

namespace tpdiff::model {

// softmax(q_h k_h^T / sqrt(dh) + key_bias) v_h per head h (dh = D / heads), heads
// concatenated: the same value as the reference tensor-op attention to float rounding.
//   q [B, Lq, D], k and v [B, Lk, D]: float, CPU, innermost dimension contiguous (other
//   strides free, so chunks of a fused qkv projection need no copy); key_bias [B, Lk] float
//   (additive, finite) or undefined. Returns a new contiguous [B, Lq, D] tensor.
// Not differentiable: callers use it only where autograd is off (CanUseCpuAttention).
torch::Tensor CpuAttention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                           int heads, const torch::Tensor& key_bias);

// Self-attention from a fused projection: qkv [B, L, 3D] holds q, k and v side by side in the
// last dimension (as one Linear(D, 3D) writes them), innermost dimension contiguous. The same
// value as CpuAttention on its three chunks without a key bias, without making the chunk
// views (each costs LibTorch ops at the network's sizes). Not differentiable.
torch::Tensor CpuSelfAttention(const torch::Tensor& qkv, int heads);

// Whether CpuSelfAttention accepts qkv now (as CanUseCpuAttention; last dimension a
// multiple of 3).
bool CanUseCpuSelfAttention(const torch::Tensor& qkv);

// Whether CpuAttention accepts these inputs now: CPU float tensors of the shapes above with
// a contiguous innermost dimension, and no autograd recording.
bool CanUseCpuAttention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& key_bias);

}  // namespace tpdiff::model

#endif  // TPDIFF_MODEL_CPU_ATTENTION_H_
