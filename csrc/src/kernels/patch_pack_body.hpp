// The body of the patch-row packers (patch_pack.hpp), written once against
// vector traits S and instantiated by each ISA file with its own flags.
//
// Besides the traits of ukernel_simd.hpp, S provides: type Mask, lane_mask(bits)
// (the lanes of the set bits, bit j for lane j), load_lanes(v, m, p) (lanes of
// m from p[j], the others from v; lanes outside m are never read),
// load_lanes_step2(v, m, pairs, p) (lanes of m from p[2j], with bit 2j of
// `pairs` set for each lane j of m) and gather_lanes(v, m, p, step) (lanes of
// m from p[j*step]).
#pragma once

#include "kernels/patch_pack.hpp"

namespace convx::detail {
namespace {  // one copy per kernel file, compiled with that file's ISA flags

// One lane at a time (the scalar path): zeros, then each segment's lanes.
template <typename T>
void patch_rows_lanes(const PatchRows<T>& job) {
  for (std::int64_t i = 0; i < job.rows; ++i) {
    const T* src = job.src + i * job.src_stride;
    for (int t = 0; t < job.taps; ++t) {
      T* dst = job.dst + i * job.dst_stride + std::int64_t(t) * job.nr;
      for (int j = 0; j < job.nr; ++j) dst[j] = T(0);
      for (int s = job.tap_first[t]; s < job.tap_first[t + 1]; ++s) {
        const LaneSegment& seg = job.segs[s];
        for (int j = seg.lo; j < seg.hi; ++j) dst[j] = src[seg.offset + j * job.step];
      }
    }
  }
}

// How a vector's lanes are read from a row: one after another, every second
// value (stride_w 2), or `step` apart.
enum class LaneStep { Unit, Two, Any };

// Bit 2j for every bit j of `bits`: the values lanes at step 2 read.
inline std::uint32_t spread_to_pairs(std::uint32_t bits) {
  std::uint32_t pairs = 0;
  for (int j = 0; j < 16; ++j) pairs |= ((bits >> j) & 1u) << (2 * j);
  return pairs;
}

// Vectors: each segment is cut into the parts that fall into each vector of
// the row, found once per call (with their lane masks), and every row is
// then a few masked loads (or permuted pairs of loads, or gathers) per vector.
template <typename S, typename T, LaneStep kStep>
void patch_rows_vectors(const PatchRows<T>& job) {
  using V = typename S::V;
  constexpr int L = S::kLanes;
  constexpr int kVectors = kMaxPatchLanes / L;
  struct Entry {
    std::uint32_t bits, pairs;
    std::int64_t offset;  // of the vector's lane 0
  };
  // A segment spans its vectors, so a tap has fewer parts than segments + vectors.
  Entry entries[kMaxLaneSegments + kMaxPatchTaps * kVectors];
  int first[kMaxPatchTaps * kVectors + 1];
  // Vectors that one segment fills: a plain load at unit steps.
  bool whole[kMaxPatchTaps * kVectors];
  constexpr std::uint32_t kAll = (1u << L) - 1u;
  const int vectors = job.nr / L;
  const std::int64_t step = job.step;
  int n = 0;
  for (int t = 0; t < job.taps; ++t) {
    for (int q = 0; q < vectors; ++q) {
      first[t * vectors + q] = n;
      for (int s = job.tap_first[t]; s < job.tap_first[t + 1]; ++s) {
        const LaneSegment& seg = job.segs[s];
        const int lo = seg.lo > q * L ? seg.lo - q * L : 0;
        const int hi = seg.hi < (q + 1) * L ? seg.hi - q * L : L;
        if (lo >= hi) continue;
        const std::uint32_t bits = ((1u << (hi - lo)) - 1u) << lo;  // L <= 16
        const std::uint32_t pairs = kStep == LaneStep::Two ? spread_to_pairs(bits) : 0u;
        entries[n++] = {bits, pairs, seg.offset + std::int64_t(q) * L * step};
      }
      const int r = t * vectors + q;
      whole[r] = kStep == LaneStep::Unit && n - first[r] == 1 && entries[n - 1].bits == kAll;
    }
  }
  first[job.taps * vectors] = n;
  const int row_vectors = job.taps * vectors;
  for (std::int64_t i = 0; i < job.rows; ++i) {
    const T* src = job.src + i * job.src_stride;
    T* dst = job.dst + i * job.dst_stride;
    for (int r = 0; r < row_vectors; ++r) {
      if (kStep == LaneStep::Unit && whole[r]) {
        S::storeu(dst + r * L, S::loadu(src + entries[first[r]].offset));
        continue;
      }
      V v = S::zero();
      for (int e = first[r]; e < first[r + 1]; ++e) {
        const typename S::Mask m = S::lane_mask(entries[e].bits);
        if constexpr (kStep == LaneStep::Unit) {
          v = S::load_lanes(v, m, src + entries[e].offset);
        } else if constexpr (kStep == LaneStep::Two) {
          v = S::load_lanes_step2(v, m, entries[e].pairs, src + entries[e].offset);
        } else {
          v = S::gather_lanes(v, m, src + entries[e].offset, step);
        }
      }
      S::storeu(dst + r * L, v);  // tap t's vector q is at t*nr + q*L = r*L
    }
  }
}

// The entry point of one ISA: unit steps (stride_w == 1) as masked loads,
// steps of 2 as permuted pairs of them, other steps as gathers.
template <typename S, typename T>
void patch_rows_simd(const PatchRows<T>& job) {
  if constexpr (S::kLanes == 1) {
    patch_rows_lanes(job);
  } else if (job.step == 1) {
    patch_rows_vectors<S, T, LaneStep::Unit>(job);
  } else if (job.step == 2) {
    patch_rows_vectors<S, T, LaneStep::Two>(job);
  } else {
    patch_rows_vectors<S, T, LaneStep::Any>(job);
  }
}

}  // namespace
}  // namespace convx::detail
