// The K blocking of the implicit-im2col GEMMs. NHWC: a K index is (kernel
// row u, tap v, channel c) and one tap's channels, or a kernel row's taps
// when they are adjacent in the image, form one contiguous run. NCHW: a K
// index is (channel c, kernel row u, tap v) and B's micro-panels are packed
// from the image as the tiles use them.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/ukernel.hpp"

namespace convx::detail {

// Channel runs shorter than this are cheaper to pack than to block K around.
constexpr std::int64_t kMinInPlaceRun = 32;
// Strips of a kernel row (k_w taps of few channels) shorter than this are
// packed rather than read in place run by run: below it the micro-kernel's
// per-run overhead outweighs the copy it saves.
constexpr std::int64_t kMinInPlaceStrip = 8;

// The K block for patches of k_h x k_w taps of c_per_group channels in
// `groups` groups, where one tap's channels, or a kernel row's taps when they
// are adjacent in the image, form one contiguous run. Depends on the kernel
// and the filter shape only, so the weights can be packed for it ahead of
// time.
//
// With one group the whole patch is one block when its B micro-panel (K x nr)
// fits in half the share of L2 the kernel's A block has (mc x kc): each tile
// of C then sums all its taps in registers (the patch is read in place as k_h
// strips) instead of being stored and reloaded once per block. Otherwise
// blocks are whole taps of one kernel row (or an equal part of one tap), so
// that a block of a patch is one run of the image and can be read in place,
// falling back to the kernel's kc for short runs.
template <typename T>
std::int64_t nhwc_k_block(const GemmKernel<T>& kern, std::int64_t k_h, std::int64_t k_w,
                          std::int64_t c_per_group, std::int64_t groups) {
  const std::int64_t patch = k_h * k_w * c_per_group;
  if (groups == 1 && patch * kern.nr <= 2 * kern.mc * kern.kc) return patch;
  // Longest block: the kernel's kc, sized so that its B micro-panel and an A
  // sliver fit in L1.
  const std::int64_t limit = kern.kc;
  if (c_per_group < kMinInPlaceRun) return kern.kc;
  if (c_per_group <= limit) {
    std::int64_t taps = 1;  // the most whole taps that divide the kernel row and fit
    for (std::int64_t t = 2; t <= k_w; ++t) {
      if (k_w % t == 0 && t * c_per_group <= limit) taps = t;
    }
    return taps * c_per_group;
  }
  for (std::int64_t parts = 2; parts <= 64; ++parts) {  // an equal part of one tap
    if (c_per_group % parts == 0 && c_per_group / parts <= limit) return c_per_group / parts;
  }
  return kern.kc;
}

// The K block of an NCHW GEMM of `rows` filters (A, read in place) and
// `channels` input channels of `taps` taps (B, patch panels packed per K block
// as the tiles use them). When the filters fit in one M block (rows <=
// kern.mc), each K block is one more pass of the micro-kernel over the whole
// of C (an image's output, usually beyond L2) and one more setup of every
// panel's lane segments, which so few rows amortise little: K is then cut into
// the fewest blocks of whole channels whose B micro-panel (kc x nr) takes at
// most half the L2 the kernel sizes its A block for (mc x kc). With more rows,
// B is packed up front and each panel serves many tiles from L1, so the
// kernel's L1-sized kc stays, as it does when one channel's taps exceed the
// limit. Depends on the kernel and the filter shape only, never on the
// thread count.
template <typename T>
std::int64_t nchw_k_block(const GemmKernel<T>& kern, std::int64_t rows, std::int64_t taps,
                          std::int64_t channels) {
  const std::int64_t limit = std::max(kern.kc, kern.mc * kern.kc / (2 * std::int64_t(kern.nr)));
  if (rows > kern.mc || taps <= 0 || channels <= 0 || taps > limit) return kern.kc;
  const std::int64_t per_block = limit / taps;  // channels, >= 1
  const std::int64_t blocks = (channels + per_block - 1) / per_block;
  return (channels + blocks - 1) / blocks * taps;
}

}  // namespace convx::detail
