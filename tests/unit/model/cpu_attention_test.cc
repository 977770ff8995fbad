#include "tpdiff/model/cpu_attention.h"

#include <gtest/gtest.h>

#include <cmath>

namespace tpdiff::model {
namespace {

// The textbook definition with tensor ops, per head.
torch::Tensor Reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        int heads, const torch::Tensor& bias) {
  const int64_t b = q.size(0), lq = q.size(1), lk = k.size(1), d = q.size(2), dh = d / heads;
  auto split = [&](const torch::Tensor& x, int64_t l) {
    return x.reshape({b, l, heads, dh}).transpose(1, 2);
  };
  torch::Tensor scores =
      torch::matmul(split(q, lq), split(k, lk).transpose(-2, -1)) / std::sqrt(double(dh));
  if (bias.defined()) scores = scores + bias.view({b, 1, 1, lk});
  return torch::matmul(torch::softmax(scores, -1), split(v, lk)).transpose(1, 2).reshape({b, lq, d});
}

struct Case {
  int64_t batch, lq, lk, width, heads;
};

TEST(CpuAttentionTest, MatchesTheTensorOpDefinition) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(3);
  // The network's shapes (4 heads of 32, 4..256 queries, 4..16 keys, 13 caption keys) and
  // odd ones: one key, head widths that are not a multiple of the 8-wide partial sums.
  for (const Case& c : {Case{32, 4, 4, 128, 4}, Case{8, 16, 16, 128, 4}, Case{2, 256, 13, 128, 4},
                        Case{3, 5, 1, 12, 3}, Case{2, 7, 37, 20, 2}, Case{1, 1, 1, 8, 1}}) {
    // q, k, v as chunks of one fused projection: strided rows, contiguous features.
    const torch::Tensor qkv = torch::randn({c.batch, c.lq, 3 * c.width}) * 3;
    const torch::Tensor q = qkv.slice(2, 0, c.width);
    const torch::Tensor kv = torch::randn({c.batch, c.lk, 2 * c.width}) * 3;
    const torch::Tensor k = kv.slice(2, 0, c.width), v = kv.slice(2, c.width);
    torch::Tensor bias = torch::zeros({c.batch, c.lk});
    if (c.lk > 1) bias.select(0, c.batch - 1).slice(0, 1).fill_(-1e9f);  // padded keys
    for (const torch::Tensor& b : {torch::Tensor(), bias}) {
      ASSERT_TRUE(CanUseCpuAttention(q, k, v, b));
      const torch::Tensor got = CpuAttention(q, k, v, static_cast<int>(c.heads), b);
      const torch::Tensor want = Reference(q, k, v, static_cast<int>(c.heads), b);
      ASSERT_EQ(got.sizes(), want.sizes());
      EXPECT_TRUE(got.is_contiguous());
      EXPECT_TRUE(torch::allclose(got, want, 1e-4, 1e-4))
          << "batch " << c.batch << " lq " << c.lq << " lk " << c.lk << " width " << c.width
          << " bias " << b.defined() << ": max difference "
          << (got - want).abs().max().item<float>();
    }
  }
}

TEST(CpuAttentionTest, SelfAttentionOnAFusedProjectionEqualsItsChunks) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(4);
  for (const Case& c : {Case{32, 4, 4, 128, 4}, Case{8, 16, 16, 128, 4}, Case{3, 5, 5, 12, 3}}) {
    const torch::Tensor qkv = torch::randn({c.batch, c.lq, 3 * c.width}) * 3;
    ASSERT_TRUE(CanUseCpuSelfAttention(qkv));
    const auto parts = qkv.chunk(3, -1);
    const torch::Tensor got = CpuSelfAttention(qkv, static_cast<int>(c.heads));
    EXPECT_TRUE(torch::equal(
        got, CpuAttention(parts[0], parts[1], parts[2], static_cast<int>(c.heads), {})));
    EXPECT_TRUE(torch::allclose(
        got, Reference(parts[0], parts[1], parts[2], static_cast<int>(c.heads), {}), 1e-4, 1e-4));
  }
  EXPECT_FALSE(CanUseCpuSelfAttention(torch::randn({2, 4, 10})));  // not three equal parts
}

TEST(CpuAttentionTest, MaskedKeysGetNoWeightAndLargeScoresStayFinite) {
  torch::NoGradGuard no_grad;
  const torch::Tensor q = torch::full({1, 2, 4}, 40.0f);  // scores ~ 40*40*4/2: exp overflows
  const torch::Tensor k = torch::full({1, 3, 4}, 40.0f);  // without the max subtraction
  torch::Tensor v = torch::zeros({1, 3, 4});
  v[0][2].fill_(100.0f);  // only the masked key carries signal
  const torch::Tensor bias = torch::tensor({{0.0f, 0.0f, -1e9f}});
  const torch::Tensor out = CpuAttention(q, k, v, 1, bias);
  EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
  EXPECT_EQ(out.abs().max().item<float>(), 0.0f);
}

TEST(CpuAttentionTest, DeclinesWhatItCannotDo) {
  const torch::Tensor x = torch::randn({2, 4, 8});
  EXPECT_TRUE(CanUseCpuAttention(x, x, x, {}));
  EXPECT_FALSE(CanUseCpuAttention(x.to(torch::kDouble), x, x, {}));  // dtype
  EXPECT_FALSE(CanUseCpuAttention(x.transpose(1, 2), x, x, {}));     // innermost stride
  EXPECT_FALSE(CanUseCpuAttention(x, x.slice(1, 0, 3), x, {}));      // k and v differ
  EXPECT_FALSE(CanUseCpuAttention(x, x, x, torch::zeros({2, 3})));   // bias shape
  const torch::Tensor w = torch::randn({2, 4, 8}, torch::requires_grad());
  EXPECT_FALSE(CanUseCpuAttention(w, x, x, {}));  // training needs autograd's graph
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(CanUseCpuAttention(w, x, x, {}));
}

}  // namespace
}  // namespace tpdiff::model
