#include "tpdiff/model/cpu_modulation.h"

#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cpu_features.h"

namespace tpdiff::model {
namespace {

struct NormModulateArgs {
  const float* x;    // [rows, d] contiguous
  const float* mod;  // [B, K * d] contiguous
  float* out;        // [rows, d] contiguous
  int64_t rows_per_clip, d, mod_row, shift, scale;
  float eps;
};

struct GatedResidualArgs {
  const float* h;       // [B, T, N, d] contiguous
  const float* mod;     // [B, K * d] contiguous
  const float* branch;  // [B, T, N, d] with strides below, innermost 1
  float* out;           // [B, T, N, d] contiguous
  int64_t t, n, d, mod_row, gate;
  int64_t branch_b, branch_t, branch_n;
};

// sum of (x[i] - center)^2 (squared) or of x[i] - center over n values, in eight partial sums:
// a reduction the compiler vectorises without -ffast-math. A single running sum would be a
// chain of dependent adds, 4 cycles each.
template <bool kSquared>
__attribute__((always_inline)) inline float RowSum(const float* x, float center, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int u = 0; u < 8; ++u) {
      const float v = x[i + u] - center;
      acc[u] += kSquared ? v * v : v;
    }
  }
  float sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < n; ++i) {
    const float v = x[i] - center;
    sum += kSquared ? v * v : v;
  }
  return sum;
}

// Rows [begin, end), two passes per row for the variance (as LibTorch's CPU LayerNorm).
__attribute__((always_inline)) inline void NormModulateBody(const NormModulateArgs& a,
                                                            int64_t begin, int64_t end) {
  const int64_t d = a.d;
  for (int64_t r = begin; r < end; ++r) {
    const float* __restrict x = a.x + r * d;
    float* __restrict out = a.out + r * d;
    const float* m = a.mod + (r / a.rows_per_clip) * a.mod_row;
    const float* __restrict shift = m + a.shift * d;
    const float* __restrict scale = m + a.scale * d;
    const float mean = RowSum<false>(x, 0.0f, d) / static_cast<float>(d);
    const float squares = RowSum<true>(x, mean, d);
    const float inv = 1.0f / std::sqrt(squares / static_cast<float>(d) + a.eps);
    for (int64_t i = 0; i < d; ++i) out[i] = (x[i] - mean) * inv * (1.0f + scale[i]) + shift[i];
  }
}

__attribute__((always_inline)) inline void GatedResidualBody(const GatedResidualArgs& a,
                                                             int64_t begin, int64_t end) {
  const int64_t d = a.d;
  for (int64_t r = begin; r < end; ++r) {
    const int64_t b = r / (a.t * a.n), t = (r / a.n) % a.t, n = r % a.n;
    const float* __restrict h = a.h + r * d;
    const float* __restrict branch = a.branch + b * a.branch_b + t * a.branch_t + n * a.branch_n;
    const float* __restrict gate = a.mod + b * a.mod_row + a.gate * d;
    float* __restrict out = a.out + r * d;
    for (int64_t i = 0; i < d; ++i) out[i] = h[i] + gate[i] * branch[i];
  }
}

void NormModulateBaseline(const NormModulateArgs& a, int64_t begin, int64_t end) {
  NormModulateBody(a, begin, end);
}
void GatedResidualBaseline(const GatedResidualArgs& a, int64_t begin, int64_t end) {
  GatedResidualBody(a, begin, end);
}

// An AVX2+FMA build of the same loops, picked at run time (cpu_features.h).
#if defined(__GNUC__) && defined(__x86_64__)
__attribute__((target("avx2,fma"))) void NormModulateAvx2(const NormModulateArgs& a,
                                                          int64_t begin, int64_t end) {
  NormModulateBody(a, begin, end);
}
__attribute__((target("avx2,fma"))) void GatedResidualAvx2(const GatedResidualArgs& a,
                                                           int64_t begin, int64_t end) {
  GatedResidualBody(a, begin, end);
}
void NormModulateRows(const NormModulateArgs& a, int64_t begin, int64_t end) {
  CpuHasAvx2Fma() ? NormModulateAvx2(a, begin, end) : NormModulateBaseline(a, begin, end);
}
void GatedResidualRows(const GatedResidualArgs& a, int64_t begin, int64_t end) {
  CpuHasAvx2Fma() ? GatedResidualAvx2(a, begin, end) : GatedResidualBaseline(a, begin, end);
}
#else
void NormModulateRows(const NormModulateArgs& a, int64_t begin, int64_t end) {
  NormModulateBaseline(a, begin, end);
}
void GatedResidualRows(const GatedResidualArgs& a, int64_t begin, int64_t end) {
  GatedResidualBaseline(a, begin, end);
}
#endif

// Rows per thread share: splitting is worth a wake-up only past ~16k elements.
int64_t Grain(int64_t d) { return std::max<int64_t>(1, (int64_t{1} << 14) / std::max<int64_t>(1, d)); }

void CheckChunk(const torch::Tensor& mod, int64_t d, int64_t chunk, const char* what) {
  TORCH_CHECK(chunk >= 0 && (chunk + 1) * d <= mod.size(1), what, " chunk ", chunk,
              " outside a modulation of ", mod.size(1) / d, " chunks");
}

}  // namespace

bool CanUseCpuModulation(const torch::Tensor& x, const torch::Tensor& mod) {
  if (!x.defined() || !mod.defined()) return false;
  if (c10::GradMode::is_enabled() && (x.requires_grad() || mod.requires_grad())) return false;
  for (const torch::Tensor* t : {&x, &mod}) {
    if (!t->device().is_cpu() || t->scalar_type() != torch::kFloat) return false;
  }
  if (x.dim() < 2 || mod.dim() != 2 || !mod.is_contiguous()) return false;
  const int64_t d = x.size(-1);
  return d > 0 && mod.size(0) == x.size(0) && mod.size(1) % d == 0;
}

bool CanUseCpuGatedResidual(const torch::Tensor& h, const torch::Tensor& mod,
                            const torch::Tensor& branch) {
  return CanUseCpuModulation(h, mod) && CanUseCpuModulation(branch, mod) && h.dim() == 4 &&
         h.is_contiguous() && branch.sizes() == h.sizes() && branch.stride(3) == 1;
}

torch::Tensor CpuNormModulate(const torch::Tensor& x_in, const torch::Tensor& mod, int64_t shift,
                              int64_t scale, double eps) {
  TORCH_CHECK(CanUseCpuModulation(x_in, mod), "CpuNormModulate: unsupported inputs ",
              x_in.sizes(), " ", mod.sizes());
  const torch::Tensor x = x_in.contiguous();
  const int64_t d = x.size(-1);
  CheckChunk(mod, d, shift, "shift");
  CheckChunk(mod, d, scale, "scale");
  torch::Tensor out = torch::empty(x.sizes(), x.options());
  const int64_t rows = x.numel() / d;
  if (rows == 0) return out;
  NormModulateArgs a;
  a.x = x.data_ptr<float>();
  a.mod = mod.data_ptr<float>();
  a.out = out.data_ptr<float>();
  a.rows_per_clip = rows / x.size(0);
  a.d = d;
  a.mod_row = mod.size(1);
  a.shift = shift;
  a.scale = scale;
  a.eps = static_cast<float>(eps);
  at::parallel_for(0, rows, Grain(d), [&](int64_t begin, int64_t end) {
    NormModulateRows(a, begin, end);
  });
  return out;
}

torch::Tensor CpuGatedResidual(const torch::Tensor& h, const torch::Tensor& mod, int64_t gate,
                               const torch::Tensor& branch) {
  TORCH_CHECK(CanUseCpuGatedResidual(h, mod, branch), "CpuGatedResidual: unsupported inputs ",
              h.sizes(), " ", branch.sizes(), " ", mod.sizes());
  const int64_t d = h.size(3);
  CheckChunk(mod, d, gate, "gate");
  torch::Tensor out = torch::empty(h.sizes(), h.options());
  const int64_t rows = h.numel() / d;
  if (rows == 0) return out;
  GatedResidualArgs a;
  a.h = h.data_ptr<float>();
  a.mod = mod.data_ptr<float>();
  a.branch = branch.data_ptr<float>();
  a.out = out.data_ptr<float>();
  a.t = h.size(1);
  a.n = h.size(2);
  a.d = d;
  a.mod_row = mod.size(1);
  a.gate = gate;
  a.branch_b = branch.stride(0);
  a.branch_t = branch.stride(1);
  a.branch_n = branch.stride(2);
  at::parallel_for(0, rows, Grain(d), [&](int64_t begin, int64_t end) {
    GatedResidualRows(a, begin, end);
  });
  return out;
}

}  // namespace tpdiff::model
