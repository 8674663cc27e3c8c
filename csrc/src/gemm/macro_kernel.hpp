// The macro-kernel: one task's share of one N block, swept micro-tile by
// micro-tile over every K block (BLIS's jr/ir loops around the micro-kernel).
#pragma once

#include <atomic>
#include <cstdint>

#include "convx/gemm.hpp"
#include "gemm/blocking.hpp"
#include "gemm/source.hpp"
#include "kernels/ukernel.hpp"
#include "runtime/thread_pool.hpp"

namespace convx::detail {

// One GEMM as every task sees it: C[m x n] (=|+=) A * B, K summed in
// k_blocks blocks of kc (the last one shorter), then the epilogue.
template <typename T>
struct GemmJob {
  const GemmKernel<T>& kern;
  const ASource<T>& a;
  const BSource<T>& b;
  T* c;
  std::int64_t rs_c, cs_c;
  std::int64_t k, kc, k_blocks, k_alloc;
  bool accumulate;
  const Epilogue<T>& ep;
};

// The B operand of one N block (columns [jc, jc + nc) of B and C) as its
// tasks read it. When packed is set, K block pc of the N block's column j
// is the micro-panel at packed + pc*ld + (j_off + j)*kc. When it is null, each
// task packs the panels it needs itself (one M block: each is used once).
template <typename T>
struct BBlock {
  std::int64_t jc = 0;
  const T* packed = nullptr;
  std::int64_t ld = 0, j_off = 0;
  // Bytes of the packed K x nc block, which set how its panels are prefetched.
  std::int64_t bytes = 0;
};

// Computes the task's tile of C over all K blocks: for each K block, packs
// (or finds in place) its micro-panels of A in scratch.primary, then calls the
// micro-kernel on every MR x NR tile, writing C on the first K block (or
// adding to it when job.accumulate), and applying the epilogue on the last.
// A streamed B is packed into scratch.secondary. Does nothing for an empty tile.
template <typename T>
void macro_kernel(const GemmJob<T>& job, const BBlock<T>& b, const TaskTile& tile,
                  WorkerScratch& scratch);

// How the macro-kernels of the process obtained their A micro-panels: read in
// place from the source, or packed. For tests that must show which path ran;
// the computation never reads them, and each task adds to them once (two
// relaxed atomic additions).
struct GemmCounters {
  std::atomic<std::int64_t> a_in_place{0};
  std::atomic<std::int64_t> a_packed{0};
};
GemmCounters& gemm_counters();

}  // namespace convx::detail
