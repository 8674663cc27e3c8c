// Geometry of one output row for the row kernels (kernels/row_geometry.hpp).
#pragma once

#include <algorithm>
#include <cstdint>

#include "common/copy_run.hpp"
#include "conv/pad_map.hpp"
#include "convx/shape.hpp"
#include "kernels/row_geometry.hpp"

namespace convx::detail {

inline RowGeometry row_geometry(const ConvShape& s, std::int64_t oh) {
  RowGeometry g;
  g.h = s.h;
  g.w_in = s.w;
  g.k_h = s.k_h;
  g.k_w = s.k_w;
  g.oh = oh;
  g.w_out = s.w_out;
  g.s_h = s.p.stride_h;
  g.s_w = s.p.stride_w;
  g.d_h = s.p.dilation_h;
  g.d_w = s.p.dilation_w;
  g.pad_top = s.p.pad.top;
  g.pad_left = s.p.pad.left;
  return g;
}

// The padding a staged window shows: its mode, and the padded width
// pad_left + w + pad_right past which a window column is a zero whatever the
// mode (the room the row kernels may read beyond a row's last patch).
struct StagedPadding {
  PaddingMode mode = PaddingMode::Zeros;
  std::int64_t pad_right = 0;
};

inline StagedPadding staged_padding(const ConvShape& s) {
  return StagedPadding{s.p.padding_mode, s.p.pad.right};
}

// One input row `src` (w pixels of c values) as `width` window pixels, column
// q holding input column pad_source(q - pad_left) (a mode other than Zeros),
// zeros past the padded width.
template <typename T>
void stage_row_mapped(T* dst, const T* src, std::int64_t w, std::int64_t c,
                      std::int64_t pad_left, std::int64_t width, const StagedPadding& pad) {
  const std::int64_t end = std::min(width, pad_left + w + pad.pad_right);
  const std::int64_t lo = std::min(pad_left, end), hi = std::min(pad_left + w, end);
  for (std::int64_t q = 0; q < lo; ++q) {
    copy_run(dst + q * c, src + pad_source(q - pad_left, w, pad.mode) * c, c);
  }
  if (hi > lo) copy_run(dst + lo * c, src, (hi - lo) * c);
  for (std::int64_t q = hi; q < end; ++q) {
    copy_run(dst + q * c, src + pad_source(q - pad_left, w, pad.mode) * c, c);
  }
  std::fill(dst + end * c, dst + width * c, T(0));
}

// Copies input rows ih0 + u*d_h (u < k_h) of an (h, w, c) image into `window`
// as k_h rows of `width` pixels each, window column q holding input column
// q - pad_left; rows and columns outside the image are zeros, or in another
// padding mode the values it maps them to (rows ih0 + u*d_h must then lie in
// the padded extent). The row kernels stage rows that touch the padding this
// way, so that no pixel needs a bounds test and no tap is skipped.
template <typename T>
void stage_rows(T* window, const T* image, std::int64_t h, std::int64_t w, std::int64_t c,
                std::int64_t ih0, std::int64_t d_h, std::int64_t k_h, std::int64_t pad_left,
                std::int64_t width, const StagedPadding& pad = {}) {
  if (pad.mode != PaddingMode::Zeros) {
    for (std::int64_t u = 0; u < k_h; ++u) {
      const T* src = image + pad_source(ih0 + u * d_h, h, pad.mode) * w * c;
      stage_row_mapped(window + u * width * c, src, w, c, pad_left, width, pad);
    }
    return;
  }
  const std::int64_t lo = std::min(pad_left, width);  // window columns left of the image
  const std::int64_t hi = std::clamp<std::int64_t>(w + pad_left, lo, width);
  for (std::int64_t u = 0; u < k_h; ++u) {
    const std::int64_t ih = ih0 + u * d_h;
    T* dst = window + u * width * c;
    if (ih < 0 || ih >= h) {
      std::fill(dst, dst + width * c, T(0));
      continue;
    }
    std::fill(dst, dst + lo * c, T(0));
    if (hi > lo) {  // then lo == pad_left: the copy starts at input column 0
      const T* src = image + ih * w * c;
      std::copy(src, src + (hi - lo) * c, dst + lo * c);
    }
    std::fill(dst + hi * c, dst + width * c, T(0));
  }
}

// Copies a whole (h, w, c) image into `dst` as `rows` rows of `width` pixels,
// dst row r, column q holding input pixel (r - pad_top, q - pad_left), zeros
// elsewhere (or, in another padding mode, what it maps them to; `rows` must
// then lie in the padded extent): one fill and one short copy per image row,
// where stage_rows() would take a fill or two per row besides.
template <typename T>
void stage_image(T* dst, const T* image, std::int64_t h, std::int64_t w, std::int64_t c,
                 std::int64_t pad_top, std::int64_t rows, std::int64_t pad_left,
                 std::int64_t width, const StagedPadding& pad = {}) {
  if (pad.mode != PaddingMode::Zeros) {
    stage_rows(dst, image, h, w, c, -pad_top, std::int64_t(1), rows, pad_left, width, pad);
    return;
  }
  std::fill(dst, dst + rows * width * c, T(0));
  const std::int64_t lo = std::min(pad_left, width);
  const std::int64_t hi = std::clamp<std::int64_t>(w + pad_left, lo, width);
  if (hi <= lo) return;  // then lo == pad_left: the copy starts at input column 0
  for (std::int64_t r = std::max<std::int64_t>(pad_top, 0); r < std::min(rows, h + pad_top); ++r) {
    copy_run(dst + (r * width + lo) * c, image + (r - pad_top) * w * c, (hi - lo) * c);
  }
}

}  // namespace convx::detail
