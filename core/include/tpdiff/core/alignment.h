#ifndef TPDIFF_CORE_ALIGNMENT_H_
#define TPDIFF_CORE_ALIGNMENT_H_

#include <vector>

#include <torch/types.h>

namespace tpdiff::core {

// Exact minimum-cost perfect matching of a square cost matrix (row-major, n x n) by the
// Jonker-Volgenant shortest augmenting path method, O(n^3). Returns assignment[row] = column.
std::vector<int> MinCostAssignment(const std::vector<double>& cost, int n);

// Data-noise alignment: returns noise permuted so that noise[i] is the draw assigned to
// videos[i] by minimum total L2 distance. Both [B, ...] with equal shapes.
torch::Tensor AlignNoise(const torch::Tensor& videos, const torch::Tensor& noise);

}  // namespace tpdiff::core

#endif  // TPDIFF_CORE_ALIGNMENT_H_
