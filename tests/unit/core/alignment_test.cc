#include "tpdiff/core/alignment.h"

#include <algorithm>
#include <numeric>
#include <random>

#include <gtest/gtest.h>

namespace tpdiff::core {
namespace {

double Total(const std::vector<double>& cost, int n, const std::vector<int>& assignment) {
  double sum = 0;
  for (int r = 0; r < n; ++r) sum += cost[r * n + assignment[r]];
  return sum;
}

TEST(AlignmentTest, OptimalAgainstBruteForceOnRandomCosts) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<double> dist(-5, 10);
  for (int n = 1; n <= 8; ++n) {
    for (int trial = 0; trial < 10; ++trial) {
      std::vector<double> cost(n * n);
      for (double& c : cost) c = dist(rng);
      const std::vector<int> got = MinCostAssignment(cost, n);
      std::vector<int> sorted = got;
      std::sort(sorted.begin(), sorted.end());
      std::vector<int> perm(n);
      std::iota(perm.begin(), perm.end(), 0);
      ASSERT_EQ(sorted, perm) << "not a permutation";
      double best = Total(cost, n, perm);
      do best = std::min(best, Total(cost, n, perm));
      while (std::next_permutation(perm.begin(), perm.end()));
      EXPECT_NEAR(Total(cost, n, got), best, 1e-9) << "n=" << n;
    }
  }
}

TEST(AlignmentTest, AlignedNoiseIsAPermutationAndNeverCostsMoreThanIdentity) {
  torch::manual_seed(0);
  for (int trial = 0; trial < 5; ++trial) {
    const torch::Tensor videos = torch::rand({32, 3, 4, 8, 8}) * 2 - 1;
    const torch::Tensor noise = torch::randn({32, 3, 4, 8, 8});
    const torch::Tensor aligned = AlignNoise(videos, noise);
    // Every aligned row is one of the noise rows, each used once.
    const torch::Tensor flat_n = noise.reshape({32, -1}), flat_a = aligned.reshape({32, -1});
    const torch::Tensor match = (flat_a.unsqueeze(1) == flat_n.unsqueeze(0)).all(2);
    EXPECT_TRUE(torch::equal(match.sum(0), torch::ones({32}, torch::kLong)));
    EXPECT_TRUE(torch::equal(match.sum(1), torch::ones({32}, torch::kLong)));
    const double before = (videos - noise).reshape({32, -1}).norm(2, 1).sum().item<double>();
    const double after = (videos - aligned).reshape({32, -1}).norm(2, 1).sum().item<double>();
    EXPECT_LE(after, before + 1e-6);
  }
}

}  // namespace
}  // namespace tpdiff::core
