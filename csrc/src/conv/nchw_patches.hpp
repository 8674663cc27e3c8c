// The NCHW patch source: B micro-panels of a GEMM gathered straight from an
// NCHW image, so that the patch matrix never exists.
#pragma once

#include <algorithm>
#include <cstdint>

#include "conv/pad_map.hpp"
#include "convx/shape.hpp"
#include "gemm/source.hpp"
#include "kernels/patch_pack.hpp"

namespace convx::detail {

// NCHW patches of one image and group as columns of B. Column j is output
// pixel (oh, ow) (j = oh*w_out + ow); K index p = (c*k_h + u)*k_w + v, the CHW
// patch order in which OIHW weights are stored. Values on the padding are
// zeros, or in the other padding modes the input values pad_source() maps
// them to.
//
// A panel's nr pixels fall into a few runs, one per output row they cross.
// For a tap (u, v) each run reads one input row at stride_w, the same for
// every channel a plane apart: the panel is packed by the context's
// patch-row kernel (kernels/patch_pack.hpp) from segments found once per tap
// and K block, channel by channel. A kernel whose micro-panels are wider than
// the patch-row kernels take packs value by value.
template <typename T>
class NchwPatchColumns final : public BSource<T> {
 public:
  NchwPatchColumns(const ConvShape& s, const T* image_group, const PatchPackKernel<T>& packer)
      : s_(s), x_(image_group), packer_(packer) {}

  void pack_panels(const GemmKernel<T>& kern, T* dst, std::int64_t j0, std::int64_t cols,
                   std::int64_t k0, std::int64_t kc) const override {
    const int nr = kern.nr;
    const bool by_segments = nr <= kMaxPatchLanes && nr % packer_.lanes == 0;
    for (std::int64_t q = 0; q * nr < cols; ++q) {
      T* out = dst + q * kc * nr;
      const std::int64_t first = j0 + q * nr;
      const int live = static_cast<int>(std::min<std::int64_t>(nr, cols - q * nr));
      if (by_segments) {
        pack_panel(out, first, live, k0, kc, nr);
      } else {
        pack_panel_slow(out, first, live, k0, kc, nr);
      }
    }
  }

 private:
  // The panel's lanes [at, at + len) are pixels (oh, ow..ow+len) of one output row.
  struct Run {
    std::int64_t oh, ow;
    int at, len;
  };

  // Packs K rows [k0, k0 + kc) of the panel of `live` pixels from column
  // `first` through the patch-row kernel, for as many taps per call as their
  // segments allow (usually all of them), channel by channel.
  void pack_panel(T* out, std::int64_t first, int live, std::int64_t k0, std::int64_t kc,
                  int nr) const {
    if (kc <= 0) return;
    Run runs[kMaxPatchLanes];
    int n_runs = 0;
    for (std::int64_t oh = first / s_.w_out, ow = first % s_.w_out, at = 0; at < live; ++oh) {
      const int len = static_cast<int>(std::min<std::int64_t>(live - at, s_.w_out - ow));
      runs[n_runs++] = {oh, ow, static_cast<int>(at), len};
      at += len;
      ow = 0;
    }
    const std::int64_t taps = s_.k_h * s_.k_w;
    LaneSegment segs[kMaxLaneSegments];
    int tap_first[kMaxPatchTaps + 1];
    for (std::int64_t t0 = 0; t0 < taps;) {
      // Taps [t0, t1): as many as the kernel takes in one call.
      std::int64_t t1 = t0;
      int n = 0;
      while (t1 < taps && t1 - t0 < kMaxPatchTaps) {
        const int added = tap_segments(runs, n_runs, t1 / s_.k_w, t1 % s_.k_w, segs + n,
                                       kMaxLaneSegments - n);
        if (added < 0) break;
        tap_first[t1 - t0] = n;
        n += added;
        ++t1;
      }
      tap_first[t1 - t0] = n;
      pack_taps(out, k0, kc, nr, t0, t1, segs, tap_first);
      t0 = t1;
    }
  }

  // The K rows of taps [t0, t1) in [k0, k0 + kc): the first and last
  // channels may hold only some of them, the channels between all.
  void pack_taps(T* out, std::int64_t k0, std::int64_t kc, int nr, std::int64_t t0,
                 std::int64_t t1, const LaneSegment* segs, const int* tap_first) const {
    const std::int64_t taps = s_.k_h * s_.k_w, plane = s_.h * s_.w;
    auto call = [&](std::int64_t c_lo, std::int64_t c_hi, std::int64_t ta, std::int64_t tb) {
      ta = std::max(ta, t0);
      tb = std::min(tb, t1);
      if (c_lo >= c_hi || ta >= tb) return;
      PatchRows<T> job;
      job.dst = out + (c_lo * taps + ta - k0) * nr;
      job.dst_stride = taps * nr;
      job.rows = c_hi - c_lo;
      job.src = x_ + c_lo * plane;
      job.src_stride = plane;
      job.segs = segs;
      job.tap_first = tap_first + (ta - t0);
      job.taps = static_cast<int>(tb - ta);
      job.step = s_.p.stride_w;
      job.nr = nr;
      packer_.fn(job);
    };
    const std::int64_t c_first = k0 / taps, c_last = (k0 + kc - 1) / taps;
    const std::int64_t first_lo = k0 - c_first * taps;
    const std::int64_t last_hi = k0 + kc - c_last * taps;
    if (c_first == c_last) {
      call(c_first, c_first + 1, first_lo, last_hi);
      return;
    }
    // Channels that hold all their taps share one call (segments found once).
    const std::int64_t whole_lo = first_lo == 0 ? c_first : c_first + 1;
    const std::int64_t whole_hi = last_hi == taps ? c_last + 1 : c_last;
    if (whole_lo > c_first) call(c_first, c_first + 1, first_lo, taps);
    call(whole_lo, whole_hi, 0, taps);
    if (whole_hi <= c_last) call(c_last, c_last + 1, 0, last_hi);
  }

  // The lane segments of tap (u, v) relative to a channel's plane: per run,
  // the lanes whose column lies inside the image read its input row (or, in
  // the rows above and below the image, the row the padding mode maps to;
  // none in zeros mode); in a mode other than zeros each other lane is a
  // segment of its own, at its mapped column. Returns the count, or -1 when
  // they would be more than `room` (never for room = kMaxLaneSegments: a
  // tap has at most a segment per run and per lane).
  int tap_segments(const Run* runs, int n_runs, std::int64_t u, std::int64_t v,
                   LaneSegment* segs, int room) const {
    const std::int64_t h = s_.h, w = s_.w, sw = s_.p.stride_w;
    const PaddingMode mode = s_.p.padding_mode;
    int n = 0;
    for (int r = 0; r < n_runs; ++r) {
      const Run& run = runs[r];
      const std::int64_t ih = pad_source(run.oh * s_.p.stride_h - s_.p.pad.top + u * s_.p.dilation_h,
                                         h, mode);
      if (ih < 0) continue;  // zeros mode, above or below the image
      const std::int64_t iw0 = run.ow * sw - s_.p.pad.left + v * s_.p.dilation_w;
      // Pixels t in [t_lo, t_hi) of the run read columns inside the image.
      const std::int64_t t_lo = std::clamp<std::int64_t>(iw0 >= 0 ? 0 : (-iw0 + sw - 1) / sw,
                                                         0, run.len);
      const std::int64_t t_hi = std::clamp<std::int64_t>(
          iw0 >= w ? 0 : (w - 1 - iw0) / sw + 1, t_lo, run.len);
      const std::int64_t row = ih * w, lane0 = run.at;
      if (t_lo < t_hi) {
        if (n == room) return -1;
        segs[n++] = {static_cast<int>(lane0 + t_lo), static_cast<int>(lane0 + t_hi),
                     row + iw0 - lane0 * sw};
      }
      if (mode == PaddingMode::Zeros) continue;
      for (std::int64_t t = 0; t < run.len; ++t) {
        if (t == t_lo) t = t_hi;
        if (t >= run.len) break;
        if (n == room) return -1;
        const std::int64_t lane = lane0 + t;
        segs[n++] = {static_cast<int>(lane), static_cast<int>(lane + 1),
                     row + pad_source(iw0 + t * sw, w, mode) - lane * sw};
      }
    }
    return n;
  }

  // Value by value: the reference the segments must agree with.
  void pack_panel_slow(T* out, std::int64_t first, std::int64_t live, std::int64_t k0,
                       std::int64_t kc, int nr) const {
    const std::int64_t taps = s_.k_h * s_.k_w;
    const PaddingMode mode = s_.p.padding_mode;
    for (std::int64_t p = 0; p < kc; ++p) {
      const std::int64_t kk = k0 + p;
      const std::int64_t c = kk / taps, u = (kk % taps) / s_.k_w, v = kk % s_.k_w;
      const T* plane = x_ + c * s_.h * s_.w;
      T* o = out + p * nr;
      for (std::int64_t i = 0; i < live; ++i) {
        const std::int64_t oh = (first + i) / s_.w_out, ow = (first + i) % s_.w_out;
        const std::int64_t ih =
            pad_source(oh * s_.p.stride_h - s_.p.pad.top + u * s_.p.dilation_h, s_.h, mode);
        const std::int64_t iw =
            pad_source(ow * s_.p.stride_w - s_.p.pad.left + v * s_.p.dilation_w, s_.w, mode);
        o[i] = (ih >= 0 && iw >= 0) ? plane[ih * s_.w + iw] : T(0);
      }
      std::fill(o + live, o + nr, T(0));
    }
  }

  const ConvShape& s_;
  const T* x_;
  const PatchPackKernel<T>& packer_;
};

}  // namespace convx::detail
