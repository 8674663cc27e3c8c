// The NHWC patch source: rows of A gathered straight from the image, so the
// driver packs im2col tiles without the im2col matrix existing (the NCHW one
// is in nchw_patches.hpp).
#pragma once

#include <algorithm>
#include <cstdint>

#include "common/copy_run.hpp"
#include "conv/blocking.hpp"
#include "conv/pad_map.hpp"
#include "convx/shape.hpp"
#include "gemm/source.hpp"

namespace convx::detail {

// Zero fills of patch runs (padding).
template <typename T>
inline void fill_zero(T* dst, std::int64_t n) {
  for (std::int64_t t = 0; t < n; ++t) dst[t] = T(0);
}

// NHWC patches as rows of A. Row r is output pixel (b, oh, ow) of the whole
// batch (r = (b*h_out + oh)*w_out + ow); K index p = (u*k_w + v)*C_g + c, the
// HWC patch order in which OHWI weights are stored. Within one tap the C_g
// channels are contiguous in the image, so a row is packed as a few run copies.
// Rows are read in place only where no tap touches the padding; a patch that
// touches it is packed with zeros, or, in the other padding modes, with the
// taps pad_source() maps it to.
template <typename T>
class NhwcPatchRows final : public ASource<T> {
 public:
  NhwcPatchRows(const ConvShape& s, const T* x, std::int64_t group)
      : s_(s), x_(x + group * s.c_in_per_group()) {}

  // K blocks of whole taps or kernel rows, so that rows_in_place() can
  // succeed; the weights are packed for the same blocks (ConvWeights).
  std::int64_t k_block(const GemmKernel<T>& kern) const override {
    return nhwc_k_block(kern, s_.k_h, s_.k_w, s_.c_in_per_group(), s_.groups());
  }

  // Short channel runs get no K blocks of their own (nhwc_k_block). They are
  // read in place only as whole kernel rows (strips of k_w taps), and only
  // where a strip is long enough.
  bool reads_in_place() const override {
    const std::int64_t cg = s_.c_in_per_group();
    return cg >= kMinInPlaceRun ||
           (cg == s_.c_in && s_.p.dilation_w == 1 && s_.k_w * cg >= kMinInPlaceStrip);
  }

  // A K block within one run of the image (a tap's channels, or a kernel
  // row's taps when they are adjacent) is, for neighbouring output pixels of
  // one output row, the same run shifted by stride_w * C_in: rows of A with
  // that stride. They can be read in place unless a pixel's run would leave
  // the image (padding), or the rows span two output rows.
  //
  // Without groups and dilation, a K block of whole kernel rows is, for each
  // pixel, k_h runs of the image (a strip of k_w taps each) d_h rows apart:
  // a patch of a few channels (resnet50 conv1: 7 taps x 3 channels) is read
  // in place run by run rather than packed.
  const T* rows_in_place(std::int64_t r0, std::int64_t rows, std::int64_t k0, std::int64_t kc,
                         std::int64_t* ld, std::int64_t* run_len,
                         std::int64_t* run_step) const override {
    const std::int64_t cg = s_.c_in_per_group(), c_in = s_.c_in, k_w = s_.k_w;
    const std::int64_t d_w = s_.p.dilation_w, s_w = s_.p.stride_w, w = s_.w;
    const std::int64_t row_len = k_w * cg;
    if (cg == c_in && d_w == 1 && kc > row_len && k0 % row_len == 0 &&
        kc % row_len == 0) {
      const std::int64_t ow = r0 % s_.w_out, rest = r0 / s_.w_out;
      const std::int64_t oh = rest % s_.h_out, b = rest / s_.h_out;
      if (ow + rows > s_.w_out) return nullptr;
      const std::int64_t d_h = s_.p.dilation_h;
      const std::int64_t ih_first = oh * s_.p.stride_h - s_.p.pad.top + k0 / row_len * d_h;
      const std::int64_t ih_last = ih_first + (kc / row_len - 1) * d_h;
      const std::int64_t iw_first = ow * s_w - s_.p.pad.left;
      const std::int64_t iw_last = (ow + rows - 1) * s_w - s_.p.pad.left + k_w - 1;
      if (ih_first < 0 || ih_last >= s_.h || iw_first < 0 || iw_last >= w) return nullptr;
      *ld = s_w * c_in;
      *run_len = row_len;
      *run_step = d_h * w * c_in;
      return x_ + ((b * s_.h + ih_first) * w + iw_first) * c_in;
    }
    const std::int64_t run = (d_w == 1 && cg == c_in) ? row_len : cg;
    const std::int64_t u = k0 / row_len, within = k0 - u * row_len;
    if (within / run != (within + kc - 1) / run) return nullptr;
    const std::int64_t ow = r0 % s_.w_out, rest = r0 / s_.w_out;
    const std::int64_t oh = rest % s_.h_out, b = rest / s_.h_out;
    if (ow + rows > s_.w_out) return nullptr;
    const std::int64_t ih = oh * s_.p.stride_h - s_.p.pad.top + u * s_.p.dilation_h;
    if (ih < 0 || ih >= s_.h) return nullptr;
    const std::int64_t v_first = within / cg, v_last = (within + kc - 1) / cg;
    const std::int64_t iw_first = ow * s_w - s_.p.pad.left + v_first * d_w;
    const std::int64_t iw_last = (ow + rows - 1) * s_w - s_.p.pad.left + v_last * d_w;
    if (iw_first < 0 || iw_last >= w) return nullptr;
    *ld = s_w * c_in;
    return x_ + ((b * s_.h + ih) * w + iw_first) * c_in + within % cg;
  }

  void pack_rows(T* dst, std::int64_t ld, std::int64_t r0, std::int64_t rows, std::int64_t k0,
                 std::int64_t kc) const override {
    const Geometry g(s_);
    // One kernel row u covers K indices [u*k_w*cg, (u+1)*k_w*cg). Without
    // groups and dilation it is one contiguous strip of the image, so it is
    // copied whole; otherwise tap by tap.
    const bool whole = g.strips && k0 == 0 && kc == g.k_h * g.row_len;
    std::int64_t ow = r0 % g.w_out;
    std::int64_t oh = (r0 / g.w_out) % g.h_out;
    std::int64_t b = r0 / (g.w_out * g.h_out);
    for (std::int64_t i = 0; i < rows; ++i) {
      const std::int64_t ih0 = oh * g.s_h - g.pad_top;
      const std::int64_t iw0 = ow * g.s_w - g.pad_left;
      const T* img = x_ + b * g.h * g.w * g.c_in;
      T* out = dst + i * ld - k0;  // indexed by absolute K index
      if (g.mode != PaddingMode::Zeros && g.touches_padding(ih0, iw0)) {
        pack_mapped(g, out, img, ih0, iw0, k0, kc);
      } else if (whole) {
        pack_whole_patch(g, out, img, ih0, iw0);
      } else {
        pack_kernel_rows(g, out, img, ih0, iw0, k0, kc);
      }
      if (++ow == g.w_out) {
        ow = 0;
        if (++oh == g.h_out) {
          oh = 0;
          ++b;
        }
      }
    }
  }

 private:

  // The geometry in locals: the copies are calls the compiler cannot see
  // through, and it would otherwise reload every field of the shape after each.
  struct Geometry {
    explicit Geometry(const ConvShape& s)
        : cg(s.c_in_per_group()), c_in(s.c_in), h(s.h), w(s.w), k_h(s.k_h), k_w(s.k_w),
          h_out(s.h_out), w_out(s.w_out), s_h(s.p.stride_h), s_w(s.p.stride_w),
          d_h(s.p.dilation_h), d_w(s.p.dilation_w), pad_top(s.p.pad.top),
          pad_left(s.p.pad.left), row_len(s.k_w * s.c_in_per_group()),
          strips(s.c_in_per_group() == s.c_in && s.p.dilation_w == 1),
          mode(s.p.padding_mode) {}
    bool touches_padding(std::int64_t ih0, std::int64_t iw0) const {
      return ih0 < 0 || ih0 + (k_h - 1) * d_h >= h || iw0 < 0 || iw0 + (k_w - 1) * d_w >= w;
    }
    std::int64_t cg, c_in, h, w, k_h, k_w, h_out, w_out, s_h, s_w, d_h, d_w, pad_top, pad_left;
    std::int64_t row_len;
    bool strips;  // a kernel row is one contiguous strip of the image
    PaddingMode mode;
  };

  // K range [k0, k0+kc) of the patch at (ih0, iw0), tap by tap, each tap read
  // from where the padding mode maps it (a mode other than Zeros).
  static void pack_mapped(const Geometry& g, T* out, const T* img, std::int64_t ih0,
                          std::int64_t iw0, std::int64_t k0, std::int64_t kc) {
    for (std::int64_t u = k0 / g.row_len; u * g.row_len < k0 + kc; ++u) {
      const std::int64_t lo = std::max(k0, u * g.row_len);
      const std::int64_t hi = std::min(k0 + kc, (u + 1) * g.row_len);
      const T* image_row = img + pad_source(ih0 + u * g.d_h, g.h, g.mode) * g.w * g.c_in;
      for (std::int64_t p = lo; p < hi;) {
        const std::int64_t v = (p / g.cg) % g.k_w, c = p % g.cg;
        const std::int64_t run = std::min(g.cg - c, hi - p);
        const std::int64_t iw = pad_source(iw0 + v * g.d_w, g.w, g.mode);
        copy_run(out + p, image_row + iw * g.c_in + c, run);
        p += run;
      }
    }
  }

  // The usual case: the whole patch of the pixel whose window starts at
  // (ih0, iw0) in one K block, copied strip by strip. Only the taps v in
  // [v_lo, v_hi) fall inside the image horizontally.
  static void pack_whole_patch(const Geometry& g, T* out, const T* img, std::int64_t ih0,
                               std::int64_t iw0) {
    const std::int64_t v_lo = std::clamp<std::int64_t>(-iw0, 0, g.k_w);
    const std::int64_t v_hi = std::clamp<std::int64_t>(g.w - iw0, v_lo, g.k_w);
    const std::int64_t a = v_lo * g.cg, e = v_hi * g.cg;
    if (v_lo == 0 && v_hi == g.k_w && ih0 >= 0 && ih0 + (g.k_h - 1) * g.d_h < g.h) {
      // Inside the image: k_h strips, no zeros, no per-strip checks.
      const T* src = img + (ih0 * g.w + iw0) * g.c_in;
      for (std::int64_t u = 0; u < g.k_h; ++u) {
        copy_run(out + u * g.row_len, src + u * g.d_h * g.w * g.c_in, g.row_len);
      }
      return;
    }
    for (std::int64_t u = 0; u < g.k_h; ++u) {
      T* o = out + u * g.row_len;
      const std::int64_t ih = ih0 + u * g.d_h;
      if (ih < 0 || ih >= g.h) {
        fill_zero(o, g.row_len);
        continue;
      }
      fill_zero(o, a);
      copy_run(o + a, img + (ih * g.w + iw0) * g.c_in + a, e - a);
      fill_zero(o + e, g.row_len - e);
    }
  }

  // K range [k0, k0+kc) of one pixel's patch, kernel row by kernel row: a
  // strip's part inside the image at once, or else tap by tap.
  static void pack_kernel_rows(const Geometry& g, T* out, const T* img, std::int64_t ih0,
                               std::int64_t iw0, std::int64_t k0, std::int64_t kc) {
    for (std::int64_t u = k0 / g.row_len; u * g.row_len < k0 + kc; ++u) {
      const std::int64_t lo = std::max(k0, u * g.row_len);
      const std::int64_t hi = std::min(k0 + kc, (u + 1) * g.row_len);
      const std::int64_t ih = ih0 + u * g.d_h;
      if (ih < 0 || ih >= g.h) {
        fill_zero(out + lo, hi - lo);
        continue;
      }
      const T* image_row = img + ih * g.w * g.c_in;
      if (g.strips) {
        // Valid K range of this strip: taps whose column lies inside the image.
        const std::int64_t base = u * g.row_len;
        const std::int64_t v_lo = std::clamp<std::int64_t>(-iw0, 0, g.k_w);
        const std::int64_t v_hi = std::clamp<std::int64_t>(g.w - iw0, v_lo, g.k_w);
        const std::int64_t a = std::clamp(base + v_lo * g.cg, lo, hi);
        const std::int64_t e = std::clamp(base + v_hi * g.cg, lo, hi);
        fill_zero(out + lo, a - lo);
        copy_run(out + a, image_row + iw0 * g.c_in + (a - base), e - a);
        fill_zero(out + e, hi - e);
        continue;
      }
      for (std::int64_t p = lo; p < hi;) {
        const std::int64_t v = (p / g.cg) % g.k_w, c = p % g.cg;
        const std::int64_t run = std::min(g.cg - c, hi - p);
        const std::int64_t iw = iw0 + v * g.d_w;
        if (iw >= 0 && iw < g.w) {
          copy_run(out + p, image_row + iw * g.c_in + c, run);
        } else {
          fill_zero(out + p, run);
        }
        p += run;
      }
    }
  }
  const ConvShape& s_;
  const T* x_;
};

}  // namespace convx::detail
