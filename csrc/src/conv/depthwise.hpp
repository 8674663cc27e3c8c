// Depthwise convolution (groups == C_in == C_out): a direct kernel instead of
// one tiny GEMM per channel. NHWC vectorises across channels (an ISA kernel);
// NCHW filters each channel's plane row by row (portable code).
#pragma once

#include "convx/shape.hpp"
#include "convx/types.hpp"

namespace convx::detail {

// True when conv2d should take the depthwise path for this shape.
bool is_depthwise(const ConvShape& s);

// Same contract as convx::conv2d, for shapes where is_depthwise() holds.
template <typename T>
void conv2d_depthwise(const ConvShape& s, const T* x, const T* w, const T* bias, T* y,
                      Activation activation);

}  // namespace convx::detail
