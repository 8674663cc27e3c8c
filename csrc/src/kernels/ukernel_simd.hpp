// The body shared by the SIMD micro-kernels. It is written once against a
// vector-traits type `S`; each ISA file (gemm_avx2.cpp, gemm_avx512.cpp)
// defines its traits with that ISA's intrinsics and instantiates the body
// there, so ISA flags never leak into portable code.
//
// S provides: type V, kLanes, zero(), load(p) (aligned), loadu(p),
// loadu_n(p, n) / storeu_n(p, v, n) (first n lanes, n < kLanes), bcast(p),
// fma(a, b, c) = a*b + c, add, relu, storeu, store (aligned).
#pragma once

#include "kernels/ukernel.hpp"

namespace convx::detail {
namespace {  // one copy per kernel file, compiled with that file's ISA flags

// Starts fetching the first m <= MR rows of a row-contiguous C tile (NR
// values each) for writing: C is touched only after the k loop, and the
// read-modify-write at the end then does not stall on L2/L3 misses.
template <typename T, int MR, int NR>
inline __attribute__((always_inline)) void prefetch_c_rows(T* c, std::int64_t rs_c,
                                                           std::int64_t m) {
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) {
    if (i < m) {
      __builtin_prefetch(c + i * rs_c, 1);
      if (NR * sizeof(T) > 64) __builtin_prefetch(c + i * rs_c + NR - 1, 1);
    }
  }
}

// acc += A * B over p ascending, with A and B as the contract in ukernel.hpp
// lays them out (k steps, A in runs of `run` values `run_step` apart).
template <typename S, typename T, int MR, int NV>
inline __attribute__((always_inline)) void accumulate_tile(typename S::V (&acc)[MR][NV],
                                                           std::int64_t k, const T* a,
                                                           std::int64_t lda, std::int64_t run,
                                                           std::int64_t run_step, const T* b) {
  using V = typename S::V;
  constexpr int L = S::kLanes;
  constexpr int NR = NV * L;
  // A's rows in groups of three, one pointer per group: row 3g+j is at
  // grp[g] + j*lda, an address x86 forms as base + index*scale, so that with
  // the k loop unrolled a step needs no address arithmetic of its own.
  constexpr int kGroups = (MR + 2) / 3;
  // Unrolled by eight, with the row and B addresses as constant offsets from
  // a few pointers, so that a step costs few instructions beyond its FMAs and
  // the core's front end (shared with a busy neighbour at times on a VM)
  // keeps up. A packed block is a single run; a patch read in place is one
  // run per kernel row.
  for (std::int64_t p0 = 0; p0 < k; p0 += run, a += run_step) {
    const std::int64_t len = k - p0 < run ? k - p0 : run;
    const T* grp[kGroups];
#pragma GCC unroll 8
    for (int g = 0; g < kGroups; ++g) grp[g] = a + 3 * g * lda;
#pragma GCC unroll 8
    for (std::int64_t p = 0; p < len; ++p) {
      V bv[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) bv[v] = S::load(b + v * L);
#pragma GCC unroll 32
      for (int i = 0; i < MR; ++i) {
        const V ai = S::bcast(grp[i / 3] + (i % 3) * lda);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[i][v] = S::fma(ai, bv[v], acc[i][v]);
      }
      b += NR;
#pragma GCC unroll 8
      for (int g = 0; g < kGroups; ++g) ++grp[g];
    }
  }
}

// The rows a tile of m < MR live rows is computed on: a tile of MR rows does
// MR rows of multiply-adds whatever m is, so a partial tile (C_out = 64 on 12
// rows leaves 4) runs on the smallest tile of whole row groups (of 4 rows, or
// 3 when MR is not a multiple of 4) that holds it. Each element's sum is the
// same chain on any tile.
template <int MR>
constexpr int kRowStep = MR % 4 == 0 ? 4 : (MR % 3 == 0 ? 3 : MR);

// The micro-kernel of ukernel.hpp on an MR x (NV vectors) register tile.
template <typename S, typename T, int MR, int NV>
void ukernel_simd(std::int64_t k, const T* a, std::int64_t lda, std::int64_t run,
                  std::int64_t run_step, const T* b, T* c, std::int64_t rs_c, std::int64_t cs_c,
                  std::int64_t m, std::int64_t n, bool accumulate, const TileEpilogue<T>* ep) {
  if constexpr (MR > kRowStep<MR>) {
    if (m <= MR - kRowStep<MR>) {
      ukernel_simd<S, T, MR - kRowStep<MR>, NV>(k, a, lda, run, run_step, b, c, rs_c, cs_c, m,
                                                n, accumulate, ep);
      return;
    }
  }
  using V = typename S::V;
  constexpr int L = S::kLanes;
  constexpr int NR = NV * L;
  V acc[MR][NV];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[i][v] = S::zero();
  }
  if (accumulate && cs_c == 1) prefetch_c_rows<T, MR, NR>(c, rs_c, m);
  accumulate_tile<S, T, MR, NV>(acc, k, a, lda, run, run_step, b);
  if (cs_c != 1) {
    alignas(64) T tile[MR * NR];
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) S::store(tile + i * NR + v * L, acc[i][v]);
    }
    store_tile_generic(tile, NR, c, rs_c, cs_c, m, n, accumulate, ep);
    return;
  }
  // Row-contiguous C: vector stores, partial on the last vector of a row.
  const T* bias_row = ep != nullptr ? ep->bias_row : nullptr;
  const T* bias_col = ep != nullptr ? ep->bias_col : nullptr;
  const bool relu = ep != nullptr && ep->relu;
  V bias_v[NV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) {
    const int live = static_cast<int>(n) - v * L;
    bias_v[v] = (bias_col == nullptr || live <= 0) ? S::zero()
                : live >= L                       ? S::loadu(bias_col + v * L)
                                                  : S::loadu_n(bias_col + v * L, live);
  }
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) {
    if (i >= m) break;
    T* row = c + i * rs_c;
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const int live = static_cast<int>(n) - v * L;
      if (live <= 0) break;
      V r = acc[i][v];
      if (accumulate) r = S::add(r, live >= L ? S::loadu(row + v * L) : S::loadu_n(row + v * L, live));
      if (ep != nullptr) {
        r = S::add(r, bias_v[v]);
        if (bias_row != nullptr) r = S::add(r, S::bcast(bias_row + i));
        if (relu) r = S::relu(r);
      }
      if (live >= L) {
        S::storeu(row + v * L, r);
      } else {
        S::storeu_n(row + v * L, r, live);
      }
    }
  }
}

// Register-only multiply-add loop for measuring the FMA peak: kChains
// independent accumulator chains of `iterations` steps each, so throughput,
// not latency, bounds it. Returns a value that depends on every chain, so the
// loop cannot be dropped. The caller does the timing in portable code.
template <typename S, typename T, int kChains>
T fma_peak_loop(std::int64_t iterations) {
  using V = typename S::V;
  V acc[kChains];
  alignas(64) T seed[S::kLanes];
  for (int i = 0; i < kChains; ++i) {
    for (int l = 0; l < S::kLanes; ++l) seed[l] = static_cast<T>(i);
    acc[i] = S::load(seed);
  }
  for (int l = 0; l < S::kLanes; ++l) seed[l] = T(0.999);
  const V a = S::load(seed);
  for (int l = 0; l < S::kLanes; ++l) seed[l] = T(0.001);
  const V b = S::load(seed);
  for (std::int64_t k = 0; k < iterations; ++k) {
#pragma GCC unroll 32
    for (int i = 0; i < kChains; ++i) acc[i] = S::fma(acc[i], a, b);
  }
  V sum = acc[0];
  for (int i = 1; i < kChains; ++i) sum = S::add(sum, acc[i]);
  S::store(seed, sum);
  return seed[0];
}

}  // namespace
}  // namespace convx::detail
