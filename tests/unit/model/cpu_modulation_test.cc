#include "tpdiff/model/cpu_modulation.h"

#include <gtest/gtest.h>

#include <torch/torch.h>

namespace tpdiff::model {
namespace {

// Chunk c of mod [B, K * D] as [B, 1, 1, D].
torch::Tensor Chunk(const torch::Tensor& mod, int64_t c, int64_t d) {
  return mod.narrow(1, c * d, d).unsqueeze(1).unsqueeze(1);
}

float MaxDifference(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<float>();
}

TEST(CpuModulationTest, NormModulateMatchesLayerNormThenModulate) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(5);
  // The network's width (128) and odd widths below and above the 8-wide partial sums.
  for (int64_t d : {128, 8, 5, 37}) {
    for (int64_t frames : {1, 4, 16}) {
      const torch::Tensor x = torch::randn({2, frames, 16, d}) * 3 + 1.5;
      const torch::Tensor mod = torch::randn({2, 9 * d});
      const torch::Tensor got = CpuNormModulate(x, mod, 3, 4, 1e-6);
      const torch::Tensor want =
          torch::layer_norm(x, {d}, {}, {}, 1e-6) * (1 + Chunk(mod, 4, d)) + Chunk(mod, 3, d);
      ASSERT_EQ(got.sizes(), x.sizes());
      EXPECT_TRUE(got.is_contiguous());
      EXPECT_LT(MaxDifference(got, want), 1e-4f) << "width " << d << " frames " << frames;
    }
  }
}

TEST(CpuModulationTest, NormModulateTakesAnyLayoutAndEpsilon) {
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({2, 16, 4, 32}).permute({0, 2, 1, 3});  // not contiguous
  const torch::Tensor mod = torch::randn({2, 2 * 32});
  const torch::Tensor want =
      torch::layer_norm(x, {32}, {}, {}, 0.5) * (1 + Chunk(mod, 1, 32)) + Chunk(mod, 0, 32);
  EXPECT_LT(MaxDifference(CpuNormModulate(x, mod, 0, 1, 0.5), want), 1e-5f);
  // A constant row has zero variance: epsilon keeps it finite (LayerNorm gives 0 * ...).
  const torch::Tensor flat = torch::full({2, 1, 1, 32}, 7.0f);
  const torch::Tensor out = CpuNormModulate(flat, mod, 0, 1, 1e-6);
  EXPECT_TRUE(torch::equal(out, Chunk(mod, 0, 32).expand({2, 1, 1, 32})));
}

TEST(CpuModulationTest, GatedResidualMatchesAddcmulForStridedBranches) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(6);
  const int64_t b = 2, t = 4, n = 16, d = 128;
  const torch::Tensor h = torch::randn({b, t, n, d});
  const torch::Tensor mod = torch::randn({b, 9 * d});
  const torch::Tensor contiguous_branch = torch::randn({b, t, n, d});
  // The temporal branch: computed as [B, N, T, D] and permuted back.
  const torch::Tensor permuted_branch = torch::randn({b, n, t, d}).permute({0, 2, 1, 3});
  for (const torch::Tensor& branch : {contiguous_branch, permuted_branch}) {
    const torch::Tensor got = CpuGatedResidual(h, mod, 5, branch);
    const torch::Tensor want = torch::addcmul(h, Chunk(mod, 5, d), branch);
    EXPECT_TRUE(got.is_contiguous());
    EXPECT_LT(MaxDifference(got, want), 1e-5f);
  }
}

TEST(CpuModulationTest, DeclinesWhatItCannotDo) {
  const torch::Tensor x = torch::randn({2, 4, 16, 8});
  const torch::Tensor mod = torch::randn({2, 9 * 8});
  {
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(CanUseCpuModulation(x, mod));
    EXPECT_FALSE(CanUseCpuModulation(x.to(torch::kDouble), mod.to(torch::kDouble)));
    EXPECT_FALSE(CanUseCpuModulation(x, torch::randn({3, 9 * 8})));  // batch mismatch
    EXPECT_FALSE(CanUseCpuModulation(x, torch::randn({2, 9 * 8 + 1})));  // not whole chunks
    EXPECT_FALSE(CanUseCpuModulation(x, torch::randn({9 * 8, 2}).t()));  // mod not contiguous
    // A permuted branch (the temporal one) is fine; a permuted h or a strided last dim is not.
    EXPECT_TRUE(CanUseCpuGatedResidual(
        x, mod, x.permute({0, 2, 1, 3}).contiguous().permute({0, 2, 1, 3})));
    EXPECT_FALSE(CanUseCpuGatedResidual(x.permute({0, 2, 1, 3}), mod, x.permute({0, 2, 1, 3})));
    EXPECT_FALSE(CanUseCpuGatedResidual(x, mod, torch::randn({2, 4, 16, 16}).slice(3, 0, 16, 2)));
    EXPECT_THROW(CpuNormModulate(x, mod, 8, 9, 1e-6), c10::Error);       // chunk 9 of 9
    EXPECT_THROW(CpuGatedResidual(x, mod, 0, torch::randn({2, 4, 16, 16}).slice(3, 0, 16, 2)),
                 c10::Error);  // strided innermost dimension
  }
  // Autograd: the kernels are not differentiable, so a recorded input is declined.
  const torch::Tensor trained = mod.clone().requires_grad_(true);
  EXPECT_FALSE(CanUseCpuModulation(x, trained));
}

}  // namespace
}  // namespace tpdiff::model
