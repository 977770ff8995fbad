#include "tpdiff/core/alignment.h"

#include <ATen/ATen.h>

#include <limits>

namespace tpdiff::core {

// Shortest augmenting paths with row/column potentials (Jonker-Volgenant without the
// initialisation heuristics): each row is added by a Dijkstra-like search over reduced
// costs, keeping all reduced costs non-negative, which makes the final matching optimal.
std::vector<int> MinCostAssignment(const std::vector<double>& cost, int n) {
  TORCH_CHECK(static_cast<int>(cost.size()) == n * n, "cost matrix must be n x n");
  const double inf = std::numeric_limits<double>::infinity();
  // 1-based internally; column 0 is a virtual start column.
  std::vector<double> u(n + 1, 0.0), v(n + 1, 0.0), min_to(n + 1);
  std::vector<int> row_of_col(n + 1, 0), prev_col(n + 1, 0);
  std::vector<char> used(n + 1);
  for (int row = 1; row <= n; ++row) {
    row_of_col[0] = row;
    int col0 = 0;
    std::fill(min_to.begin(), min_to.end(), inf);
    std::fill(used.begin(), used.end(), 0);
    do {
      used[col0] = 1;
      const int r = row_of_col[col0];
      double delta = inf;
      int next = 0;
      for (int c = 1; c <= n; ++c) {
        if (used[c]) continue;
        const double reduced = cost[(r - 1) * n + (c - 1)] - u[r] - v[c];
        if (reduced < min_to[c]) {
          min_to[c] = reduced;
          prev_col[c] = col0;
        }
        if (min_to[c] < delta) {
          delta = min_to[c];
          next = c;
        }
      }
      for (int c = 0; c <= n; ++c) {
        if (used[c]) {
          u[row_of_col[c]] += delta;
          v[c] -= delta;
        } else {
          min_to[c] -= delta;
        }
      }
      col0 = next;
    } while (row_of_col[col0] != 0);
    do {  // augment along the path back to the virtual column
      const int c = prev_col[col0];
      row_of_col[col0] = row_of_col[c];
      col0 = c;
    } while (col0 != 0);
  }
  std::vector<int> assignment(n);
  for (int c = 1; c <= n; ++c) assignment[row_of_col[c] - 1] = c - 1;
  return assignment;
}

torch::Tensor AlignNoise(const torch::Tensor& videos, const torch::Tensor& noise) {
  TORCH_CHECK(videos.sizes() == noise.sizes(), "AlignNoise: shapes differ: ", videos.sizes(),
              " vs ", noise.sizes());
  const int64_t n = videos.size(0);
  const torch::Tensor dist =
      torch::cdist(videos.reshape({n, -1}).to(torch::kDouble), noise.reshape({n, -1}).to(torch::kDouble))
          .to(torch::kCPU)
          .contiguous();
  std::vector<double> cost(dist.data_ptr<double>(), dist.data_ptr<double>() + n * n);
  const std::vector<int> assignment = MinCostAssignment(cost, static_cast<int>(n));
  std::vector<int64_t> index(assignment.begin(), assignment.end());
  const torch::Tensor perm =
      torch::from_blob(index.data(), {n}, torch::kLong).clone().to(noise.device());
  return noise.index_select(0, perm);
}

}  // namespace tpdiff::core
