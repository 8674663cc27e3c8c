// The padding modes as index maps: where a padded coordinate reads from.
#pragma once

#include <cstdint>

#include "convx/types.hpp"

namespace convx::detail {

// The input coordinate that padded coordinate i reads along an axis of extent
// n, or -1 when it reads a zero (Zeros mode outside the input). i is any
// coordinate a patch of a shape made by make_conv_shape() can touch, so i lies
// in [-pad_before, n + pad_after) and the mode's limits (types.hpp) make one
// reflection or wrap enough. Inside the input it is i itself in every mode.
inline std::int64_t pad_source(std::int64_t i, std::int64_t n, PaddingMode mode) {
  if (i >= 0 && i < n) return i;
  switch (mode) {
    case PaddingMode::Zeros: return -1;
    case PaddingMode::Reflect: return i < 0 ? -i : 2 * (n - 1) - i;
    case PaddingMode::Replicate: return i < 0 ? 0 : n - 1;
    case PaddingMode::Circular: return i < 0 ? i + n : i - n;
  }
  return -1;
}

}  // namespace convx::detail
