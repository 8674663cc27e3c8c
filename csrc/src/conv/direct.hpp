// Small-K direct convolution (NHWC, groups == 1, short patches): the image is
// read in place and no GEMM operands are packed.
#pragma once

#include <cstdint>

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

// Same contract as convx::conv2d, for shapes where use_direct<T>() holds.
template <typename T>
void conv2d_direct(const ConvShape& s, const T* x, const T* w, const T* bias, T* y,
                   Activation activation);

}  // namespace convx::detail
