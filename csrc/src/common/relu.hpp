// The ReLU of the fused epilogue, for scalar code. It keeps NaN, as NumPy's
// maximum and torch.relu do: only values below zero become zero, so a NaN
// (for which every comparison is false) passes through unchanged. The SIMD
// paths get the same semantics from max(0, v) (see the simd_*.hpp traits).
#pragma once

namespace convx::detail {

template <typename T>
constexpr T relu(T v) {
  return v < T(0) ? T(0) : v;
}

}  // namespace convx::detail
