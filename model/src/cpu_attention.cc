#include "tpdiff/model/cpu_attention.h"

#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu_features.h"

namespace tpdiff::model {
namespace {

// Raw views of one attention call: row r of clip b of q starts at q + b * q_batch + r * q_row.
struct AttentionArgs {
  const float* q;
  const float* k;
  const float* v;
  const float* bias;  // [B, Lk] contiguous, or null
  float* out;         // [B, Lq, D] contiguous
  int64_t q_batch, q_row, k_batch, k_row, v_batch, v_row;
  int64_t heads, lq, lk, dh, width;
  float scale;
};

// exp(x) for x <= 0 (scores minus their row maximum): Cody-Waite range reduction and a
// degree-6 polynomial on [-ln2/2, ln2/2] (relative error ~2e-7), written without library
// calls or branches so the softmax loop vectorises. Inputs below -87 give exactly 0.
inline float ExpNonPositive(float x_in) {
  const float x = std::max(x_in, -87.0f);
  // Round to nearest for x <= 0: truncation of (x * log2(e) - 0.5).
  const int n = static_cast<int>(x * 1.44269504088896341f - 0.5f);
  const float nf = static_cast<float>(n);
  const float r = (x - nf * 0.693359375f) + nf * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (n + 127) << 23;  // 2^n; n >= -126 because x >= -87
  float two_n;
  std::memcpy(&two_n, &bits, sizeof(two_n));
  return x_in < -87.0f ? 0.0f : p * two_n;  // masked keys get exactly no weight
}

inline float Dot(const float* a, const float* b, int64_t n) {
  // Eight partial sums: a reduction the compiler vectorises without -ffast-math.
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int u = 0; u < 8; ++u) acc[u] += a[i + u] * b[i + u];
  }
  float sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// Groups [begin, end) of (clip, head). Inlined into a baseline x86-64 build and an
// AVX2+FMA build of the same loops (below), so the vectoriser gets 8-wide registers where the
// CPU has them.
__attribute__((always_inline)) inline void AttendGroupsBody(const AttentionArgs& a,
                                                            int64_t begin, int64_t end) {
  std::vector<float> scores(static_cast<size_t>(a.lk));
  float* __restrict s = scores.data();
  for (int64_t g = begin; g < end; ++g) {
    const int64_t b = g / a.heads, h = g % a.heads;
    const float* q = a.q + b * a.q_batch + h * a.dh;
    const float* k = a.k + b * a.k_batch + h * a.dh;
    const float* v = a.v + b * a.v_batch + h * a.dh;
    const float* bias = a.bias == nullptr ? nullptr : a.bias + b * a.lk;
    float* out = a.out + b * a.lq * a.width + h * a.dh;
    for (int64_t l = 0; l < a.lq; ++l) {
      const float* ql = q + l * a.q_row;
      for (int64_t j = 0; j < a.lk; ++j) s[j] = Dot(ql, k + j * a.k_row, a.dh) * a.scale;
      if (bias != nullptr) {
        for (int64_t j = 0; j < a.lk; ++j) s[j] += bias[j];
      }
      float top = s[0];
      for (int64_t j = 1; j < a.lk; ++j) top = std::max(top, s[j]);
      // Separate loops: the exponentials vectorise; the float sum (a reduction) would not
      // let them.
      for (int64_t j = 0; j < a.lk; ++j) s[j] = ExpNonPositive(s[j] - top);
      float total = 0;
      for (int64_t j = 0; j < a.lk; ++j) total += s[j];
      const float inv = 1.0f / total;
      float* __restrict o = out + l * a.width;
      for (int64_t i = 0; i < a.dh; ++i) o[i] = 0.0f;
      for (int64_t j = 0; j < a.lk; ++j) {
        const float p = s[j] * inv;
        const float* vj = v + j * a.v_row;
        for (int64_t i = 0; i < a.dh; ++i) o[i] += p * vj[i];
      }
    }
  }
}

void AttendGroupsBaseline(const AttentionArgs& a, int64_t begin, int64_t end) {
  AttendGroupsBody(a, begin, end);
}

// Picked at run time (cpu_features.h).
#if defined(__GNUC__) && defined(__x86_64__)
__attribute__((target("avx2,fma"))) void AttendGroupsAvx2(const AttentionArgs& a, int64_t begin,
                                                          int64_t end) {
  AttendGroupsBody(a, begin, end);
}

void AttendGroups(const AttentionArgs& a, int64_t begin, int64_t end) {
  if (CpuHasAvx2Fma()) {
    AttendGroupsAvx2(a, begin, end);
  } else {
    AttendGroupsBaseline(a, begin, end);
  }
}
#else
void AttendGroups(const AttentionArgs& a, int64_t begin, int64_t end) {
  AttendGroupsBaseline(a, begin, end);
}
#endif

bool RowMajorInner(const torch::Tensor& t) { return t.dim() == 3 && t.stride(2) == 1; }

}  // namespace

bool CanUseCpuAttention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& key_bias) {
  if (c10::GradMode::is_enabled() &&
      (q.requires_grad() || k.requires_grad() || v.requires_grad())) {
    return false;
  }
  for (const torch::Tensor* t : {&q, &k, &v}) {
    if (!t->defined() || !t->device().is_cpu() || t->scalar_type() != torch::kFloat ||
        !RowMajorInner(*t)) {
      return false;
    }
  }
  if (k.sizes() != v.sizes() || q.size(0) != k.size(0) || q.size(2) != k.size(2)) return false;
  if (key_bias.defined() &&
      (!key_bias.device().is_cpu() || key_bias.dim() != 2 || key_bias.size(0) != k.size(0) ||
       key_bias.size(1) != k.size(1))) {
    return false;
  }
  return true;
}

namespace {

// Fills the shape fields of `a` (its pointers and strides are set), allocates the output and
// runs the groups across threads.
torch::Tensor Attend(AttentionArgs& a, int64_t batch, int64_t lq, int64_t lk, int64_t d,
                     int heads, const torch::TensorOptions& options) {
  TORCH_CHECK(heads > 0 && d % heads == 0, "CpuAttention: width ", d, " not divisible by ",
              heads, " heads");
  TORCH_CHECK(lk > 0, "CpuAttention: no keys");
  torch::Tensor out =
      torch::empty({batch, lq, d}, options.memory_format(c10::MemoryFormat::Contiguous));
  a.out = out.data_ptr<float>();
  a.heads = heads;
  a.lq = lq;
  a.lk = lk;
  a.dh = d / heads;
  a.width = d;
  a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(a.dh)));
  // Split across threads only when each share is worth a wake-up (~64k multiply-adds).
  const int64_t work_per_group = std::max<int64_t>(1, lq * lk * a.dh * 2);
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / work_per_group);
  at::parallel_for(0, batch * heads, grain,
                   [&](int64_t begin, int64_t end) { AttendGroups(a, begin, end); });
  return out;
}

}  // namespace

torch::Tensor CpuAttention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                           int heads, const torch::Tensor& key_bias) {
  TORCH_CHECK(CanUseCpuAttention(q, k, v, key_bias), "CpuAttention: unsupported inputs ",
              q.sizes(), " ", k.sizes(), " ", v.sizes());
  torch::Tensor bias;
  if (key_bias.defined()) bias = key_bias.to(torch::kFloat).contiguous();
  AttentionArgs a;
  a.q = q.data_ptr<float>();
  a.k = k.data_ptr<float>();
  a.v = v.data_ptr<float>();
  a.bias = bias.defined() ? bias.data_ptr<float>() : nullptr;
  a.q_batch = q.stride(0);
  a.q_row = q.stride(1);
  a.k_batch = k.stride(0);
  a.k_row = k.stride(1);
  a.v_batch = v.stride(0);
  a.v_row = v.stride(1);
  return Attend(a, q.size(0), q.size(1), k.size(1), q.size(2), heads, q.options());
}

bool CanUseCpuSelfAttention(const torch::Tensor& qkv) {
  if (!qkv.defined() || qkv.dim() != 3 || qkv.size(2) % 3 != 0) return false;
  return CanUseCpuAttention(qkv, qkv, qkv, torch::Tensor());
}

torch::Tensor CpuSelfAttention(const torch::Tensor& qkv, int heads) {
  TORCH_CHECK(CanUseCpuSelfAttention(qkv), "CpuSelfAttention: unsupported input ", qkv.sizes());
  const int64_t d = qkv.size(2) / 3;
  const float* base = qkv.data_ptr<float>();
  AttentionArgs a;
  a.q = base;
  a.k = base + d;
  a.v = base + 2 * d;
  a.bias = nullptr;
  a.q_batch = a.k_batch = a.v_batch = qkv.stride(0);
  a.q_row = a.k_row = a.v_row = qkv.stride(1);
  return Attend(a, qkv.size(0), qkv.size(1), qkv.size(1), d, heads, qkv.options());
}

}  // namespace tpdiff::model
