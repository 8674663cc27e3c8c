// The padding's part of the input gradient in the padding modes other than
// Zeros (backward_border.hpp). The interior part, dx = W^T dy restricted to the
// input, is what Conv2dBackwardData computes in every mode; the values of
// d(x_pad) on the padding, which Zeros mode drops, are computed here position
// by position (the padding is a band of O(perimeter) pixels, never an image)
// and added onto the input pixels they were read from.
#include "conv/backward_border.hpp"

#include <algorithm>

#include "conv/pad_map.hpp"

namespace convx::detail {

template <typename T>
std::vector<T> border_filters(const ConvShape& s, const T* w) {
  const std::int64_t G = s.groups(), cig = s.c_in_per_group(), cog = s.c_out_per_group();
  const std::int64_t taps = s.k_h * s.k_w;
  const bool nhwc = s.p.layout == Layout::NHWC;
  std::vector<T> out(static_cast<std::size_t>(s.weight_size()));
  for (std::int64_t g = 0; g < G; ++g) {
    for (std::int64_t t = 0; t < taps; ++t) {
      for (std::int64_t m = 0; m < cog; ++m) {
        const T* src = w + (g * cog + m) * taps * cig;  // OHWI or OIHW filter m
        T* dst = out.data() + ((g * taps + t) * cog + m) * cig;
        for (std::int64_t c = 0; c < cig; ++c) dst[c] = nhwc ? src[t * cig + c] : src[c * taps + t];
      }
    }
  }
  return out;
}

namespace {

// d(x_pad) at padded position (i, j) of image b into acc (c_in values);
// false when no patch reads the position (acc is then all zero).
template <typename T>
bool padded_gradient(const ConvShape& s, const T* filters, const T* dy, std::int64_t b,
                     std::int64_t i, std::int64_t j, T* dyp, T* acc) {
  const std::int64_t G = s.groups(), cig = s.c_in_per_group(), cog = s.c_out_per_group();
  const std::int64_t pixels = s.h_out * s.w_out;
  const bool nhwc = s.p.layout == Layout::NHWC;
  std::fill(acc, acc + s.c_in, T(0));
  bool read = false;
  for (std::int64_t u = 0; u < s.k_h; ++u) {
    const std::int64_t t = i - u * s.p.dilation_h;
    if (t < 0 || t % s.p.stride_h != 0 || t / s.p.stride_h >= s.h_out) continue;
    const std::int64_t oh = t / s.p.stride_h;
    for (std::int64_t v = 0; v < s.k_w; ++v) {
      const std::int64_t r = j - v * s.p.dilation_w;
      if (r < 0 || r % s.p.stride_w != 0 || r / s.p.stride_w >= s.w_out) continue;
      const std::int64_t pix = oh * s.w_out + r / s.p.stride_w;
      const T* g_dy = dy + (b * pixels + pix) * s.c_out;
      if (!nhwc) {  // the pixel's c_out values, a plane apart
        for (std::int64_t m = 0; m < s.c_out; ++m) dyp[m] = dy[(b * s.c_out + m) * pixels + pix];
        g_dy = dyp;
      }
      read = true;
      for (std::int64_t g = 0; g < G; ++g) {
        const T* wt = filters + (g * s.k_h * s.k_w + u * s.k_w + v) * cog * cig;
        T* a = acc + g * cig;
        for (std::int64_t m = 0; m < cog; ++m) {
          const T d = g_dy[g * cog + m];
          const T* wm = wt + m * cig;
          for (std::int64_t c = 0; c < cig; ++c) a[c] += d * wm[c];
        }
      }
    }
  }
  return read;
}

}  // namespace

template <typename T>
void add_border_adjoint(const ConvShape& s, const T* filters, const T* dy, T* dx) {
  const std::int64_t top = s.p.pad.top, left = s.p.pad.left;
  const std::int64_t hp = s.h + top + s.p.pad.bottom, wp = s.w + left + s.p.pad.right;
  const PaddingMode mode = s.p.padding_mode;
  const bool nhwc = s.p.layout == Layout::NHWC;
  std::vector<T> scratch(static_cast<std::size_t>(s.c_in + s.c_out));
  T* acc = scratch.data();
  T* dyp = acc + s.c_in;
  for (std::int64_t b = 0; b < s.n; ++b) {
    for (std::int64_t i = 0; i < hp; ++i) {
      const std::int64_t ih = pad_source(i - top, s.h, mode);
      const bool row_inside = i >= top && i < top + s.h;
      for (std::int64_t j = 0; j < wp; ++j) {
        if (row_inside && j == left) j = left + s.w;  // the input's own columns
        if (j >= wp) break;
        if (!padded_gradient(s, filters, dy, b, i, j, dyp, acc)) continue;
        const std::int64_t iw = pad_source(j - left, s.w, mode);
        if (nhwc) {
          T* dst = dx + ((b * s.h + ih) * s.w + iw) * s.c_in;
          for (std::int64_t c = 0; c < s.c_in; ++c) dst[c] += acc[c];
        } else {
          T* dst = dx + (b * s.c_in * s.h + ih) * s.w + iw;
          for (std::int64_t c = 0; c < s.c_in; ++c) dst[c * s.h * s.w] += acc[c];
        }
      }
    }
  }
}

#define CONVX_INSTANTIATE(T)                                                              \
  template std::vector<T> border_filters<T>(const ConvShape&, const T*);                  \
  template void add_border_adjoint<T>(const ConvShape&, const T*, const T*, T*);
CONVX_INSTANTIATE(float)
CONVX_INSTANTIATE(double)
#undef CONVX_INSTANTIATE

}  // namespace convx::detail
