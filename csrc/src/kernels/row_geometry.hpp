// Where one output row of a convolution reads its input: shared by the row
// kernels (depthwise, direct), whose argument structs extend it.
#pragma once

#include <cstdint>

namespace convx::detail {

struct RowGeometry {
  std::int64_t h = 0, w_in = 0;    // input image extent
  std::int64_t k_h = 0, k_w = 0;   // filter extent
  std::int64_t oh = 0, w_out = 0;  // this output row, and its width
  std::int64_t s_h = 1, s_w = 1, d_h = 1, d_w = 1, pad_top = 0, pad_left = 0;
};

}  // namespace convx::detail
