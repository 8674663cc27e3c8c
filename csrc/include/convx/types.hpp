// Basic vocabulary shared by the whole public API: layouts, padding, activations.
#pragma once

#include <cstdint>

namespace convx {

// Memory layout of a 4-D activation tensor. Weights follow the layout:
// NHWC pairs with OHWI weights (C_out, k_h, k_w, C_in/groups) and NCHW with
// OIHW weights (C_out, C_in/groups, k_h, k_w).
enum class Layout { NHWC, NCHW };

// Order of the k_h*k_w*C values of one patch when it is flattened by im2col.
//   HWC : (u, v, c) row-major; matches OHWI weights. The fast order for NHWC.
//   CHW : (c, u, v) row-major; matches OIHW weights. The fast order for NCHW.
//   Seed: column-major per channel, element (u, v, c) at c*k_h*k_w + v*k_h + u,
//         exactly the vectorised form of the maths note.
enum class PatchOrder { HWC, CHW, Seed };

// Element-wise function applied to the output after the bias, while the
// result is still in registers (no extra pass over memory).
enum class Activation { None, ReLU };

// What the padding reads, as in torch's padding_mode. With input extent n
// along an axis and padded coordinate i (i < 0 before the input, i >= n after):
//   Zeros:     0
//   Reflect:   x[-i] before, x[2(n-1) - i] after (the edge is not repeated);
//              every pad along the axis must be < n
//   Replicate: x[0] before, x[n-1] after; needs n >= 1
//   Circular:  x[i + n] before, x[i - n] after; every pad must be <= n
// The padded input is never formed: the mode is applied where patches are
// gathered or rows staged.
enum class PaddingMode { Zeros, Reflect, Replicate, Circular };

// Padding, possibly asymmetric.
struct Padding2D {
  std::int64_t top = 0, bottom = 0, left = 0, right = 0;
};

// How a forward convolution is computed (conv2d.hpp describes each).
// ConvParams::algorithm requests one; Auto, the default, leaves the choice to
// choose_algorithm(). An operator's algorithm() is never Auto.
enum class Algorithm { Gemm, Pointwise, Direct, Depthwise, Winograd, Auto, Fast };

}  // namespace convx
