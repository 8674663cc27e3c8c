// GEMM operand sources that gather convolution patches straight from the
// image, so the driver packs im2col tiles without the im2col matrix existing.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "convx/shape.hpp"
#include "gemm/driver.hpp"

namespace convx::detail {

// NHWC patches as rows of A. Row r is output pixel (b, oh, ow) of the whole
// batch (r = (b*h_out + oh)*w_out + ow); K index p = (u*k_w + v)*C_g + c, the
// HWC patch order in which OHWI weights are stored. Within one tap the C_g
// channels are contiguous in the image, so a row is packed as a few memcpys.
template <typename T>
class NhwcPatchRows final : public ASource<T> {
 public:
  NhwcPatchRows(const ConvShape& s, const T* x, std::int64_t group)
      : s_(s), x_(x + group * s.c_in_per_group()) {}

  void pack_rows(T* dst, std::int64_t ld, std::int64_t r0, std::int64_t rows, std::int64_t k0,
                 std::int64_t kc) const override {
    const std::int64_t cg = s_.c_in_per_group();
    std::int64_t ow = r0 % s_.w_out;
    std::int64_t oh = (r0 / s_.w_out) % s_.h_out;
    std::int64_t b = r0 / (s_.w_out * s_.h_out);
    for (std::int64_t i = 0; i < rows; ++i) {
      const std::int64_t ih0 = oh * s_.p.stride_h - s_.p.pad.top;
      const std::int64_t iw0 = ow * s_.p.stride_w - s_.p.pad.left;
      const T* img = x_ + b * s_.h * s_.w * s_.c_in;
      T* out = dst + i * ld;
      std::int64_t p = 0, tap = k0 / cg, c = k0 % cg;
      while (p < kc) {
        const std::int64_t u = tap / s_.k_w, v = tap % s_.k_w;
        const std::int64_t ih = ih0 + u * s_.p.dilation_h;
        const std::int64_t iw = iw0 + v * s_.p.dilation_w;
        const std::int64_t run = std::min(cg - c, kc - p);
        if (ih >= 0 && ih < s_.h && iw >= 0 && iw < s_.w) {
          std::memcpy(out + p, img + (ih * s_.w + iw) * s_.c_in + c,
                      static_cast<std::size_t>(run) * sizeof(T));
        } else {
          std::fill(out + p, out + p + run, T(0));
        }
        p += run;
        c = 0;
        ++tap;
      }
      if (++ow == s_.w_out) {
        ow = 0;
        if (++oh == s_.h_out) {
          oh = 0;
          ++b;
        }
      }
    }
  }

 private:
  const ConvShape& s_;
  const T* x_;
};

// NCHW patches of one image and group as columns of B. Column j is output
// pixel (oh, ow) (j = oh*w_out + ow); K index p = (c*k_h + u)*k_w + v, the CHW
// patch order in which OIHW weights are stored. For a fixed p, neighbouring
// pixels of one output row read neighbouring (stride-spaced) input pixels.
template <typename T>
class NchwPatchColumns final : public BSource<T> {
 public:
  NchwPatchColumns(const ConvShape& s, const T* image_group) : s_(s), x_(image_group) {}

  void pack_panels(T* dst, std::int64_t j0, std::int64_t cols, std::int64_t k0, std::int64_t kc,
                   int nr) const override {
    const std::int64_t taps = s_.k_h * s_.k_w;
    const std::int64_t sw = s_.p.stride_w;
    for (std::int64_t q = 0; q * nr < cols; ++q) {
      T* out = dst + q * kc * nr;
      const std::int64_t first = j0 + q * nr;
      const std::int64_t live = std::min<std::int64_t>(nr, cols - q * nr);
      for (std::int64_t p = 0; p < kc; ++p) {
        const std::int64_t kk = k0 + p;
        const std::int64_t c = kk / taps, u = (kk % taps) / s_.k_w, v = kk % s_.k_w;
        const T* plane = x_ + c * s_.h * s_.w;
        T* o = out + p * nr;
        std::int64_t oh = first / s_.w_out, ow = first % s_.w_out;
        std::int64_t i = 0;
        while (i < live) {
          // One output row segment: pixels ow .. ow+len-1 of row oh.
          const std::int64_t len = std::min(live - i, s_.w_out - ow);
          const std::int64_t ih = oh * s_.p.stride_h - s_.p.pad.top + u * s_.p.dilation_h;
          if (ih < 0 || ih >= s_.h) {
            std::fill(o + i, o + i + len, T(0));
          } else {
            const T* row = plane + ih * s_.w;
            const std::int64_t iw0 = ow * sw - s_.p.pad.left + v * s_.p.dilation_w;
            for (std::int64_t t = 0; t < len; ++t) {
              const std::int64_t iw = iw0 + t * sw;
              o[i + t] = (iw >= 0 && iw < s_.w) ? row[iw] : T(0);
            }
          }
          i += len;
          ow = 0;
          ++oh;
        }
        std::fill(o + live, o + nr, T(0));
      }
    }
  }

 private:
  const ConvShape& s_;
  const T* x_;
};

}  // namespace convx::detail
