// How one GEMM is cut into blocks and tasks (BLIS's jc/pc/ic loops), and the
// scratch that cut needs.
//
// Only the K block (kc) affects the arithmetic: it fixes the order of the K
// sum. It comes from the A operand and the kernel (ASource::k_block), never
// from the thread count. Every other cut only decides who computes which
// tile, so results do not depend on the number of threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "convx/runtime.hpp"
#include "kernels/ukernel.hpp"

namespace convx::detail {

inline std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }
inline std::int64_t round_up(std::int64_t a, std::int64_t b) { return ceil_div(a, b) * b; }

// Rows of a packed A block are padded by one cache line, so that the MR rows
// a micro-kernel streams never share L1 sets at power-of-two strides.
template <typename T>
constexpr std::int64_t kRowPad = 64 / sizeof(T);
// B micro-panels a task packs at a time when it streams B (a single M block):
// rows of B are then read in runs of several panels, not one panel wide. At
// most kStreamPanels of them, and at most kStreamBytes, so that the panels of
// a long K block are still in L2 when the tiles read them.
constexpr std::int64_t kStreamPanels = 8;
constexpr std::int64_t kStreamBytes = std::int64_t(256) << 10;
inline std::int64_t stream_panels(std::int64_t kc, int nr, std::int64_t elem_bytes) {
  const std::int64_t panel = std::max<std::int64_t>(1, kc * nr * elem_bytes);
  return std::clamp<std::int64_t>(kStreamBytes / panel, 1, kStreamPanels);
}
// Micro-panels in one M block (mc / mr) at most, over every kernel.
constexpr std::int64_t kMaxPanelsPerBlock = 64;
// B micro-panels packed per task of the packing phase.
constexpr std::int64_t kPanelsPerPackTask = 4;

// The blocking of an MR x NR kernel on elements of elem_bytes, from the data
// caches of one core. The micro-kernel sweeps one kc x nr B micro-panel over
// every MR-row sliver of a packed mc x kc A block, so:
//   kc: the B micro-panel and one A sliver, kc * (mr + nr) elements, fill
//       15/16 of L1d (the rest holds the C tile and the stack), rounded down
//       to whole 64-byte lines of A, in [kMinKc, kMaxKc];
//   mc: the A block, mc * kc elements, fills a quarter of L2 (the B panels
//       streaming through it, C, and an SMT sibling's own block share the
//       rest), rounded down to a multiple of mr, in [mr, kMaxPanelsPerBlock * mr];
//   packed_b_bytes: half of this core's share of L3 (L3 / l3_shared_by; L2
//       when there is no L3), in [1 MiB, 16 MiB]; the driver packs at most
//       this much of B (K x nc) at once;
//   nc: packed_b_bytes / (kc * elem_bytes), rounded down to a multiple of nr,
//       in [nr, kMaxNc].
// Only kc changes the arithmetic (the order of the K sum); a process derives
// it once, so results within a process never depend on it changing.
struct CacheBlocks {
  std::int64_t mc = 0, kc = 0, nc = 0, packed_b_bytes = 0;
};
constexpr std::int64_t kMinKc = 64;
constexpr std::int64_t kMaxKc = 256;
constexpr std::int64_t kMaxNc = 4096;
CacheBlocks derive_gemm_blocking(int mr, int nr, int elem_bytes, const CacheInfo& caches);

// kern with its blocking derived from `caches`.
template <typename T>
GemmKernel<T> with_cache_blocking(GemmKernel<T> kern, const CacheInfo& caches) {
  const CacheBlocks b = derive_gemm_blocking(kern.mr, kern.nr, int(sizeof(T)), caches);
  kern.mc = b.mc;
  kern.kc = b.kc;
  kern.nc = b.nc;
  kern.packed_b_bytes = b.packed_b_bytes;
  return kern;
}

// The cuts shared by every N block of one GEMM.
struct Blocking {
  std::int64_t kc = 0, k_blocks = 0, k_alloc = 0, nc = 0;
  int threads = 1;
};

// The part of C that one task of the compute phase owns: rows [ic, ic+rows)
// and columns [j_lo, j_hi) of its N block. Empty when rows <= 0 or j_lo >= j_hi.
struct TaskTile {
  std::int64_t ic = 0, rows = 0, j_lo = 0, j_hi = 0;
};

// The tasks of one N block: M blocks x N chunks. With few M blocks, N is cut
// too so that every thread gets work. With a single M block each B panel is
// used once, so tasks pack B panels on the fly (stream_b) instead of the whole
// block up front.
struct NBlock {
  std::int64_t nc = 0, nc_pad = 0, panels = 0, mc = 0, m_tasks = 0, n_chunks = 0, chunk = 0;
  // M block i has m_base micro-panels, plus one for i < m_extra: blocks differ
  // by at most one micro-panel (mc is the largest). With several threads the
  // blocks shrink towards the end instead, and block i starts at micro-panel
  // cuts[i] (see plan_n_block).
  std::int64_t m_base = 0, m_extra = 0;
  std::vector<std::int64_t> cuts;
  bool stream_b = false;

  std::int64_t m_start(std::int64_t i, int mr) const {
    if (!cuts.empty()) return cuts[i] * mr;
    return (i * m_base + std::min(i, m_extra)) * mr;
  }
  std::int64_t m_rows(std::int64_t i, int mr) const {
    if (!cuts.empty()) return (cuts[i + 1] - cuts[i]) * mr;
    return (m_base + (i < m_extra)) * mr;
  }
  std::int64_t tasks() const { return m_tasks * n_chunks; }
  // Task t of [0, tasks()) for a GEMM of m rows.
  TaskTile task(std::int64_t t, std::int64_t m, int mr) const;
};

// Cuts an m x n x k GEMM whose A operand asks for K blocks of kc > 0, for at
// most `threads` threads.
template <typename T>
Blocking plan_blocking(const GemmKernel<T>& kern, int threads, std::int64_t m, std::int64_t n,
                       std::int64_t k, std::int64_t kc);

// Cuts the N block of nc columns into tasks. `with_cuts` false skips the
// guided block list, whose length grows with m: sizing the scratch needs only
// the block counts.
template <typename T>
NBlock plan_n_block(const GemmKernel<T>& kern, const Blocking& blk, std::int64_t m,
                    std::int64_t nc, bool with_cuts = true);

}  // namespace convx::detail
