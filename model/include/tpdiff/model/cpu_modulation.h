#ifndef TPDIFF_MODEL_CPU_MODULATION_H_
#define TPDIFF_MODEL_CPU_MODULATION_H_
// The adaLN-Zero steps of the built-in network's blocks as single CPU passes, for inference.
//
// Why: at the shapes model's size a forward pass costs per LibTorch op more than per element.
// Each block cut its modulation into nine chunks (about 28 dispatched ops) and ran
// LayerNorm, 1 + scale and addcmul for each of three branches: about a quarter of the ~1,050
// ops of a 4-frame call, where the fixed cost per call (~2 ms on one core) is what keeps the
// low-frame-rate stages from being proportionally cheaper. These kernels read the chunks in
// place from the block's modulation row and make one pass over the activations.
//
// `mod` is a block's modulation: [B, K * D] float, contiguous; chunk c of clip b is
// mod[b, c * D : (c + 1) * D]. Activations are [B, ..., D] with the last dimension D.
#include <torch/types.h>

namespace tpdiff::model {

// LayerNorm over the last dimension (no affine parameters, epsilon `eps`) of x, then
// * (1 + chunk `scale`) + chunk `shift` of x's clip: the tensor-op value
// torch::layer_norm(x, {D}, {}, {}, eps) * (1 + scale) + shift to float rounding.
// x: float CPU [B, ..., D] (any layout; a non-contiguous x is copied first). Returns a new
// contiguous tensor of x's shape. Not differentiable (see CanUseCpuModulation).
torch::Tensor CpuNormModulate(const torch::Tensor& x, const torch::Tensor& mod, int64_t shift,
                              int64_t scale, double eps);

// h + chunk `gate` * branch, the gated residual. h and branch: float CPU [B, T, N, D] of
// equal shape; h contiguous, branch with any strides but a contiguous last dimension (the
// temporal branch arrives permuted). Returns a new contiguous tensor.
torch::Tensor CpuGatedResidual(const torch::Tensor& h, const torch::Tensor& mod, int64_t gate,
                               const torch::Tensor& branch);

// Whether the kernels above accept `x` (an activation [B, ..., D] with B = mod.size(0)) and
// `mod` now: CPU float tensors, mod contiguous with a whole number of chunks of width D, and
// no autograd recording for either.
bool CanUseCpuModulation(const torch::Tensor& x, const torch::Tensor& mod);

// Whether CpuGatedResidual accepts h, mod and branch now: CanUseCpuModulation for h and for
// branch, h contiguous [B, T, N, D], branch of h's shape with a contiguous last dimension.
bool CanUseCpuGatedResidual(const torch::Tensor& h, const torch::Tensor& mod,
                            const torch::Tensor& branch);

}  // namespace tpdiff::model

#endif  // TPDIFF_MODEL_CPU_MODULATION_H_
