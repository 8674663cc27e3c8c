// The GEMM micro-kernel contract. Every kernel, on every ISA, obeys it; the
// blocked driver (gemm/driver.hpp) relies on nothing else.
//
// A micro-kernel computes one MR x NR tile of C = A * B:
//
//   a: MR rows of A, row-major with row stride lda, each row in runs of `run`
//      values (run >= 1) `run_step` apart:
//      A(i, p) = a[i*lda + (p / run)*run_step + p % run].
//      A packed block is one run per row (run >= k); a patch read in place
//      from an image is one run per kernel row (see ASource::rows_in_place).
//      The packer copies rows of A as contiguous runs (no transposition), so
//      packing an image patch or a row-major matrix is a plain copy. Rows
//      i >= m exist and are zero-filled, so the kernel may always read MR rows.
//   b: the packed B micro-panel, k steps of NR values: B(p, j) = b[p*NR + j],
//      64-byte aligned. Columns j >= n are zero-filled.
//   c: C(i, j) lives at c[i*rs_c + j*cs_c] for i < m <= MR, j < n <= NR.
//      Nothing outside the m x n corner is read or written.
//   k: may be 0 (then the product is a zero tile).
//
//   accumulate == false: C = A*B, C is never read (so NaN in C cannot leak).
//   accumulate == true:  C = C + A*B.
//   ep != nullptr (last K block only): after the sum, C(i, j) += bias_row[i]
//       (if bias_row) or bias_col[j] (if bias_col), then max(C, 0) if relu.
//       The pointers are already offset to the tile's first row/column.
//
// The arithmetic order over p is fixed (p ascending, one multiply-add chain
// per C element) so a tile's value does not depend on how the driver splits
// work between threads.
#pragma once

#include <cstdint>

#include "common/relu.hpp"

namespace convx::detail {

template <typename T>
struct TileEpilogue {
  const T* bias_row = nullptr;
  const T* bias_col = nullptr;
  bool relu = false;
};

template <typename T>
using UKernelFn = void (*)(std::int64_t k, const T* a, std::int64_t lda, std::int64_t run,
                           std::int64_t run_step, const T* b, T* c,
                           std::int64_t rs_c, std::int64_t cs_c, std::int64_t m, std::int64_t n,
                           bool accumulate, const TileEpilogue<T>* ep);

// Packs B micro-panels, as BSource::pack_panels does, from a source whose
// columns are rows in memory: B(p, j) = src[j*ld + p] for p < kc, j < cols
// (e.g. a layer's OHWI filters, read as the transposed weight matrix).
// Columns cols.. of the last panel are zeroed.
template <typename T>
using PackColumnsFn = void (*)(T* dst, const T* src, std::int64_t ld, std::int64_t cols,
                               std::int64_t kc, int nr);

// A kernel plus the blocking that suits it. The kernel files set fn, mr, nr,
// name and pack_columns; the kernel table fills in the blocking from the CPU's
// caches (derive_gemm_blocking in gemm/blocking.hpp). mc is a multiple of mr.
//   kc: K block; a kc x nr B micro-panel and mr rows of A should sit in L1.
//   mc: M block; an mc x kc packed A block should sit in L2.
//   nc: N block; the packed K x nc block of B should sit in L3 (the driver
//       shrinks it further for large K, to at most packed_b_bytes).
template <typename T>
struct GemmKernel {
  UKernelFn<T> fn = nullptr;
  int mr = 0, nr = 0;
  const char* name = "";  // dtype, MR x NR and ISA, e.g. "f32 12x32 avx512"
  // Optional transposing packer for nr a multiple of 8; nullptr: the driver's
  // portable loop packs such sources.
  PackColumnsFn<T> pack_columns = nullptr;
  std::int64_t mc = 0, kc = 0, nc = 0, packed_b_bytes = 0;
};

// Helpers shared by kernel files live in an anonymous namespace: each file
// compiles its own copy with its own ISA flags. An ordinary inline function
// would be merged by the linker into one copy, possibly the AVX-512 one, which
// would then run on CPUs without AVX-512.
namespace {

// Stores an MR x NR tile held in `acc` (row-major, row stride nr) into C
// under the contract above. The shared scalar tail of every kernel.
template <typename T>
void store_tile_generic(const T* acc, int nr, T* c, std::int64_t rs_c, std::int64_t cs_c,
                               std::int64_t m, std::int64_t n, bool accumulate,
                               const TileEpilogue<T>* ep) {
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      T v = acc[i * nr + j];
      T* dst = c + i * rs_c + j * cs_c;
      if (accumulate) v += *dst;
      if (ep != nullptr) {
        if (ep->bias_row != nullptr) v += ep->bias_row[i];
        if (ep->bias_col != nullptr) v += ep->bias_col[j];
        if (ep->relu) v = relu(v);
      }
      *dst = v;
    }
  }
}

}  // namespace

}  // namespace convx::detail
