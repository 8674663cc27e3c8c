// Explicit padding and im2col, for users who want the matrices themselves.
// The convolution does not call these: it packs patches tile by tile.
#include <algorithm>
#include <cstring>

#include "common/checked.hpp"
#include "conv/pad_map.hpp"
#include "conv/rows.hpp"
#include "convx/conv2d.hpp"

namespace convx {

namespace {

void check_dims(const Dims4& d) {
  detail::require(d.n >= 0 && d.h >= 0 && d.w >= 0 && d.c >= 0, "x: sizes must be >= 0");
  detail::checked_product("x", d.n, d.h, d.w, d.c);
}

}  // namespace

template <typename T>
void pad(const T* x, const Dims4& d, const Padding2D& p, Layout layout, T* y,
         PaddingMode mode) {
  check_dims(d);
  detail::require(p.top >= 0 && p.bottom >= 0 && p.left >= 0 && p.right >= 0,
                  "padding must be >= 0");
  const std::int64_t hp = detail::checked_add(d.h, p.top + p.bottom, "padding");
  const std::int64_t wp = detail::checked_add(d.w, p.left + p.right, "padding");
  detail::checked_product("padded x", d.n, hp, wp, d.c);
  validate_padding_mode(mode, p, d.h, d.w);
  if (mode != PaddingMode::Zeros && d.n * d.c > 0 && hp * wp > 0) {
    // Row by row: each padded row is the input row the mode maps it to, with
    // its columns mapped likewise.
    const bool nhwc = layout == Layout::NHWC;
    const std::int64_t images = nhwc ? d.n : d.n * d.c, c = nhwc ? d.c : 1;
    const detail::StagedPadding spec{mode, p.right};
    for (std::int64_t b = 0; b < images; ++b) {
      for (std::int64_t i = 0; i < hp; ++i) {
        const T* src = x + (b * d.h + detail::pad_source(i - p.top, d.h, mode)) * d.w * c;
        detail::stage_row_mapped(y + (b * hp + i) * wp * c, src, d.w, c, p.left, wp, spec);
      }
    }
    return;
  }
  if (layout == Layout::NHWC) {
    const std::int64_t row_in = d.w * d.c, row_out = wp * d.c;
    for (std::int64_t b = 0; b < d.n; ++b) {
      T* img = y + b * hp * row_out;
      std::fill(img, img + hp * row_out, T(0));
      for (std::int64_t i = 0; i < d.h; ++i) {
        const T* src = x + (b * d.h + i) * row_in;
        std::copy(src, src + row_in, img + (i + p.top) * row_out + p.left * d.c);
      }
    }
  } else {
    for (std::int64_t plane = 0; plane < d.n * d.c; ++plane) {
      T* out = y + plane * hp * wp;
      std::fill(out, out + hp * wp, T(0));
      for (std::int64_t i = 0; i < d.h; ++i) {
        const T* src = x + (plane * d.h + i) * d.w;
        std::copy(src, src + d.w, out + (i + p.top) * wp + p.left);
      }
    }
  }
}

template <typename T>
void im2col(const T* x, const Dims4& d, std::int64_t k_h, std::int64_t k_w,
            const ConvParams& params, PatchOrder order, T* cols) {
  check_dims(d);
  const ConvShape s = make_patch_shape(d.n, d.h, d.w, d.c, k_h, k_w, params);
  const std::int64_t G = s.groups(), cg = s.c_in_per_group(), taps = k_h * k_w;
  const std::int64_t K = s.patch_size();
  const bool nhwc = params.layout == Layout::NHWC;
  // Offset of patch element (u, v, c) within one patch, per order.
  auto index = [&](std::int64_t u, std::int64_t v, std::int64_t c) -> std::int64_t {
    switch (order) {
      case PatchOrder::HWC: return (u * k_w + v) * cg + c;
      case PatchOrder::CHW: return c * taps + u * k_w + v;
      case PatchOrder::Seed: return c * taps + v * k_h + u;
    }
    return 0;
  };
  const std::int64_t c_step = index(0, 0, cg > 1 ? 1 : 0) - index(0, 0, 0);
  T* out = cols;
  for (std::int64_t b = 0; b < d.n; ++b) {
    for (std::int64_t oh = 0; oh < s.h_out; ++oh) {
      for (std::int64_t ow = 0; ow < s.w_out; ++ow) {
        for (std::int64_t g = 0; g < G; ++g, out += K) {
          for (std::int64_t u = 0; u < k_h; ++u) {
            const std::int64_t ih = oh * params.stride_h - params.pad.top + u * params.dilation_h;
            for (std::int64_t v = 0; v < k_w; ++v) {
              const std::int64_t iw =
                  ow * params.stride_w - params.pad.left + v * params.dilation_w;
              T* o = out + index(u, v, 0);
              const std::int64_t sh = detail::pad_source(ih, d.h, params.padding_mode);
              const std::int64_t sw = detail::pad_source(iw, d.w, params.padding_mode);
              if (sh < 0 || sw < 0) {
                for (std::int64_t c = 0; c < cg; ++c) o[c * c_step] = T(0);
              } else if (nhwc) {
                const T* src = x + ((b * d.h + sh) * d.w + sw) * d.c + g * cg;
                for (std::int64_t c = 0; c < cg; ++c) o[c * c_step] = src[c];
              } else {
                const T* src = x + ((b * d.c + g * cg) * d.h + sh) * d.w + sw;
                for (std::int64_t c = 0; c < cg; ++c) o[c * c_step] = src[c * d.h * d.w];
              }
            }
          }
        }
      }
    }
  }
}

template void pad<float>(const float*, const Dims4&, const Padding2D&, Layout, float*,
                         PaddingMode);
template void pad<double>(const double*, const Dims4&, const Padding2D&, Layout, double*,
                          PaddingMode);
template void im2col<float>(const float*, const Dims4&, std::int64_t, std::int64_t,
                            const ConvParams&, PatchOrder, float*);
template void im2col<double>(const double*, const Dims4&, std::int64_t, std::int64_t,
                             const ConvParams&, PatchOrder, double*);

}  // namespace convx
