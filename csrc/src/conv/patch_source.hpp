// PanelSources that gather convolution patches straight from the image, so the
// GEMM driver packs im2col tiles without the im2col matrix ever existing.
#pragma once

#include <algorithm>
#include <cstdint>

#include "convx/shape.hpp"
#include "gemm/driver.hpp"

namespace convx::detail {

// NHWC patches as GEMM rows. Row r is output pixel (b, oh, ow) of the whole
// batch (r = (b*h_out + oh)*w_out + ow); K index p = (u*k_w + v)*C_g + c, the
// HWC patch order, which is how OHWI weights are stored.
template <typename T>
class NhwcPatchRows final : public PanelSource<T> {
 public:
  NhwcPatchRows(const ConvShape& s, const T* x, std::int64_t group) : s_(s), x_(x + group * s.c_in_per_group()) {}

  void pack(T* dst, std::int64_t r0, std::int64_t rows, std::int64_t k0, std::int64_t kc,
            int mr) const override {
    const std::int64_t cg = s_.c_in_per_group();
    for (std::int64_t q = 0; q * mr < rows; ++q) {
      T* out = dst + q * kc * mr;
      const std::int64_t live = std::min<std::int64_t>(mr, rows - q * mr);
      for (std::int64_t i = 0; i < mr; ++i) {
        if (i >= live) {
          for (std::int64_t p = 0; p < kc; ++p) out[p * mr + i] = T(0);
          continue;
        }
        const std::int64_t r = r0 + q * mr + i;
        const std::int64_t ow = r % s_.w_out;
        const std::int64_t oh = (r / s_.w_out) % s_.h_out;
        const std::int64_t b = r / (s_.w_out * s_.h_out);
        const std::int64_t ih0 = oh * s_.p.stride_h - s_.p.pad.top;
        const std::int64_t iw0 = ow * s_.p.stride_w - s_.p.pad.left;
        const T* img = x_ + b * s_.h * s_.w * s_.c_in;
        std::int64_t p = 0;
        std::int64_t tap = k0 / cg, c = k0 % cg;
        while (p < kc) {
          const std::int64_t u = tap / s_.k_w, v = tap % s_.k_w;
          const std::int64_t ih = ih0 + u * s_.p.dilation_h;
          const std::int64_t iw = iw0 + v * s_.p.dilation_w;
          const std::int64_t run = std::min(cg - c, kc - p);
          if (ih >= 0 && ih < s_.h && iw >= 0 && iw < s_.w) {
            const T* src = img + (ih * s_.w + iw) * s_.c_in + c;
            for (std::int64_t t = 0; t < run; ++t) out[(p + t) * mr + i] = src[t];
          } else {
            for (std::int64_t t = 0; t < run; ++t) out[(p + t) * mr + i] = T(0);
          }
          p += run;
          c = 0;
          ++tap;
        }
      }
    }
  }

 private:
  const ConvShape& s_;
  const T* x_;
};

// NCHW patches of one image and group as GEMM rows of B^T. Row r is output
// pixel (oh, ow) (r = oh*w_out + ow); K index p = (c*k_h + u)*k_w + v, the
// CHW patch order, which is how OIHW weights are stored.
template <typename T>
class NchwPatchRows final : public PanelSource<T> {
 public:
  NchwPatchRows(const ConvShape& s, const T* image_group) : s_(s), x_(image_group) {}

  void pack(T* dst, std::int64_t r0, std::int64_t rows, std::int64_t k0, std::int64_t kc,
            int nr) const override {
    const std::int64_t taps = s_.k_h * s_.k_w;
    for (std::int64_t q = 0; q * nr < rows; ++q) {
      T* out = dst + q * kc * nr;
      const std::int64_t first = r0 + q * nr;
      const std::int64_t live = std::min<std::int64_t>(nr, rows - q * nr);
      for (std::int64_t p = 0; p < kc; ++p) {
        const std::int64_t kk = k0 + p;
        const std::int64_t c = kk / taps, u = (kk % taps) / s_.k_w, v = kk % s_.k_w;
        const T* plane = x_ + c * s_.h * s_.w;
        T* o = out + p * nr;
        std::int64_t oh = first / s_.w_out, ow = first % s_.w_out;
        for (std::int64_t i = 0; i < live; ++i) {
          const std::int64_t ih = oh * s_.p.stride_h - s_.p.pad.top + u * s_.p.dilation_h;
          const std::int64_t iw = ow * s_.p.stride_w - s_.p.pad.left + v * s_.p.dilation_w;
          o[i] = (ih >= 0 && ih < s_.h && iw >= 0 && iw < s_.w) ? plane[ih * s_.w + iw] : T(0);
          if (++ow == s_.w_out) {
            ow = 0;
            ++oh;
          }
        }
        for (std::int64_t i = live; i < nr; ++i) o[i] = T(0);
      }
    }
  }

 private:
  const ConvShape& s_;
  const T* x_;
};

}  // namespace convx::detail
