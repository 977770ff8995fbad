"""Data-noise alignment (method note, section 4): within a batch of B clips and B noise draws,
give each clip the draw that minimises the total L2 distance, solved exactly.

The solver is the shortest-augmenting-path method with row and column potentials
(Jonker-Volgenant without its initialisation heuristics), the same algorithm and the same
order of floating-point operations as core/src/alignment.cc, so both return the same
assignment for the same cost matrix, ties included. Cost: B rows, each added by a
Dijkstra-like search of at most B rounds over B columns: O(B^3) scalar work. The column loop
is vectorised with NumPy, so B = 256 takes tens of milliseconds (docs/finetune.md has the
measured figures).
"""

from typing import List

import numpy as np
import torch


def min_cost_assignment(cost) -> List[int]:
    """Exact minimum-cost perfect matching of a square cost matrix (any array-like, n x n).
    Returns assignment[row] = column."""
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"cost: shape {c.shape} is not a square matrix")
    if not np.all(np.isfinite(c)):
        raise ValueError("cost: every entry must be finite")
    n = c.shape[0]
    # 1-based internally; column 0 is the virtual start column of every search.
    full = np.zeros((n + 1, n + 1))
    full[1:, 1:] = c
    u = np.zeros(n + 1)
    v = np.zeros(n + 1)
    row_of_col = np.zeros(n + 1, dtype=np.int64)
    prev_col = np.zeros(n + 1, dtype=np.int64)
    for row in range(1, n + 1):
        row_of_col[0] = row
        col0 = 0
        min_to = np.full(n + 1, np.inf)
        used = np.zeros(n + 1, dtype=bool)
        while True:
            used[col0] = True
            r = row_of_col[col0]
            free = np.flatnonzero(~used)  # column 0 is always used
            reduced = full[r, free] - u[r] - v[free]
            better = reduced < min_to[free]
            min_to[free[better]] = reduced[better]
            prev_col[free[better]] = col0
            pick = int(np.argmin(min_to[free]))  # first minimum, as the C++ loop's strict <
            delta = min_to[free[pick]]
            nxt = int(free[pick])
            taken = np.flatnonzero(used)
            u[row_of_col[taken]] += delta
            v[taken] -= delta
            min_to[free] -= delta
            col0 = nxt
            if row_of_col[col0] == 0:
                break
        while col0 != 0:  # augment along the path back to the virtual column
            c_prev = prev_col[col0]
            row_of_col[col0] = row_of_col[c_prev]
            col0 = c_prev
    assignment = [0] * n
    for col in range(1, n + 1):
        assignment[row_of_col[col] - 1] = col - 1
    return assignment


def alignment_cost(videos: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """[B, B] float64 L2 distances between flattened clips (rows) and noise draws (columns)."""
    if videos.shape != noise.shape:
        raise ValueError(f"noise: shape {tuple(noise.shape)} differs from the clips' "
                         f"{tuple(videos.shape)}")
    n = videos.shape[0]
    return torch.cdist(videos.reshape(n, -1).double(), noise.reshape(n, -1).double()).cpu()


def align_noise_permutation(videos: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """perm [B] int64 such that noise[perm[i]] is the draw assigned to videos[i]."""
    assignment = min_cost_assignment(alignment_cost(videos, noise).numpy())
    return torch.tensor(assignment, dtype=torch.long, device=noise.device)


def align_noise(videos: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Noise permuted so that noise[i] is the draw assigned to videos[i]."""
    return noise.index_select(0, align_noise_permutation(videos, noise))
