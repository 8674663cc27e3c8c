// The patch-row packing contract: the kernels that fill rows of a GEMM's B
// micro-panels with NCHW convolution patches (conv/nchw_patches.hpp).
//
// A micro-panel row holds one K index (channel, tap row, tap column) of nr
// neighbouring output pixels. Its lanes fall into a few runs, one per output
// row the pixels cross, and each run reads one input row at a fixed step
// (stride_w); lanes on the zero padding belong to no run. The same runs serve
// every channel, a whole plane further on, so one call packs the rows of one
// tap for a range of channels.
//
// One call packs the rows of `taps` consecutive taps for `rows` channels:
// for i < rows, t < taps and lane j < nr,
//   dst[i*dst_stride + t*nr + j] = src[i*src_stride + s.offset + j*step]
// for the segment s of tap t (segs[tap_first[t]] .. segs[tap_first[t+1]-1])
// with s.lo <= j < s.hi, or 0 when none of tap t's segments holds lane j.
//   segs: at most kMaxLaneSegments in all; a tap's are disjoint, with
//         0 <= lo < hi <= nr.  taps: at most kMaxPatchTaps.
//   nr: at most kMaxPatchLanes and a multiple of the kernel's `lanes`.
// Only the addresses of the lanes inside segments are read, so src + offset
// may lie before the image for a segment that starts at lane lo > 0.
#pragma once

#include <cstdint>

namespace convx::detail {

constexpr int kMaxLaneSegments = 128;
constexpr int kMaxPatchTaps = 32;
constexpr int kMaxPatchLanes = 64;

struct LaneSegment {
  int lo = 0, hi = 0;         // lanes [lo, hi)
  std::int64_t offset = 0;    // lane j reads src[offset + j*step]
};

template <typename T>
struct PatchRows {
  T* dst = nullptr;
  std::int64_t dst_stride = 0;
  std::int64_t rows = 0;
  const T* src = nullptr;
  std::int64_t src_stride = 0;
  const LaneSegment* segs = nullptr;
  const int* tap_first = nullptr;  // taps + 1 indices into segs
  int taps = 0;
  std::int64_t step = 1;
  int nr = 0;
};

template <typename T>
using PatchRowsFn = void (*)(const PatchRows<T>& job);

// A patch-row packer and what it is: `lanes` is its vector width (1 on the
// scalar path); `name` reads like "f32 patch rows 16-lane avx512".
template <typename T>
struct PatchPackKernel {
  PatchRowsFn<T> fn = nullptr;
  int lanes = 1;
  const char* name = "";
};

}  // namespace convx::detail
