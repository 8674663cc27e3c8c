// Small-K direct convolution (NHWC, groups == 1, short patches): the image is
// read in place and no GEMM operands are packed.
#pragma once

#include <cstdint>
#include <vector>

#include "convx/shape.hpp"
#include "convx/types.hpp"

namespace convx::detail {

// True when conv2d should take the direct path for this shape on the active
// kernel path (which must provide a direct kernel).
template <typename T>
bool use_direct(const ConvShape& s);

// Scratch bytes conv2d_direct uses for this shape (see conv2d_workspace_bytes).
template <typename T>
std::int64_t direct_workspace_bytes(const ConvShape& s);

// OHWI weights (c_out x K, K <= kMaxDirectPatch) in the direct kernel's
// layout: transposed to (K x ld), ld being c_out rounded up to the active
// kernel's vector width, the padding columns zero. Layer weights keep this
// form (ConvWeights), so that a repeated call skips the transposition.
template <typename T>
struct DirectWeights {
  std::vector<T> wt;
  std::int64_t ld = 0;  // 0: not prepared (no direct kernel on the active path)
};

template <typename T>
DirectWeights<T> prepare_direct_weights(const T* w, std::int64_t c_out, std::int64_t K);

// Same contract as convx::conv2d, for shapes where use_direct<T>() holds.
// `ready`, if not null, holds the weights `w` already prepared; it is used
// when it suits the active kernel.
template <typename T>
void conv2d_direct(const ConvShape& s, const T* x, const T* w, const DirectWeights<T>* ready,
                   const T* bias, T* y, Activation activation);

}  // namespace convx::detail
