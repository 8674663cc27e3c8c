"""Spectral norm (2-norm Lipschitz constant) of a conv layer, from its explicit matrix.

A conv layer without its bias is the linear map x -> W x, with W from
``convx.conv_matrix(..., acts_on="input")``. Its largest singular value sigma_max(W)
bounds how much the layer can stretch any input: ||conv(x) - conv(x')|| <=
sigma_max * ||x - x'||. Because W is exact and sparse, ARPACK (scipy.sparse.linalg.svds)
finds sigma_max in a few dozen sparse products, with no dense matrix.

1. On a small layer the value is checked against numpy.linalg.svd of the dense W; the
   script exits with status 1 when they differ by more than 1e-8 relative.
2. On a realistic layer (32x32x16 -> 16 channels, 3x3, padding 1) it prints the value
   and how long the build and the SVD took.

Run: python examples/spectral_norm.py   (needs scipy)
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.sparse.linalg import svds  # type: ignore[import-untyped, unused-ignore]

import convx

RTOL = 1e-8


def he_weights(rng: np.random.Generator, c_out: int, k: int, c_in: int) -> npt.NDArray[Any]:
    """OHWI filters with the usual He scaling, std = sqrt(2 / fan_in)."""
    return rng.normal(0.0, np.sqrt(2.0 / (k * k * c_in)), (c_out, k, k, c_in))


def sigma_max(mat: Any) -> float:
    """Largest singular value of a sparse matrix with ARPACK, from a fixed start vector."""
    start = np.ones(min(mat.shape)) / np.sqrt(min(mat.shape))
    values = svds(mat, k=1, v0=start, return_singular_vectors=False)
    return float(values[0])


def main() -> int:
    rng = np.random.default_rng(2024)

    # Small layer: 8x8x3 -> 4 channels, 3x3, stride 2, padding 1.
    weight = he_weights(rng, 4, 3, 3)
    small = convx.conv_matrix(8, weight, stride=2, padding=1, acts_on="input")
    sparse_value = sigma_max(small)
    dense_value = float(np.linalg.svd(small.toarray(), compute_uv=False)[0])
    rel = abs(sparse_value - dense_value) / dense_value
    print(f"small layer  W {small.shape[0]}x{small.shape[1]}, nnz {small.nnz}")
    print(f"  svds sigma_max      = {sparse_value:.15g}")
    print(f"  dense svd sigma_max = {dense_value:.15g}")
    print(f"  relative difference = {rel:.2e} (must be <= {RTOL:g})")
    if not rel <= RTOL:
        print("MISMATCH between svds and the dense SVD", file=sys.stderr)
        return 1

    # Realistic layer: 32x32x16 -> 16 channels, 3x3, padding 1.
    weight = he_weights(rng, 16, 3, 16)
    t0 = time.perf_counter()
    mat = convx.conv_matrix(32, weight, padding=1, acts_on="input")
    t1 = time.perf_counter()
    value = sigma_max(mat)
    t2 = time.perf_counter()
    print(f"32x32x16 -> 16, 3x3, pad 1  W {mat.shape[0]}x{mat.shape[1]}, nnz {mat.nnz}")
    print(f"  sigma_max (Lipschitz constant, 2-norm) = {value:.10g}")
    print(f"  build {t1 - t0:.3f} s, svds {t2 - t1:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
