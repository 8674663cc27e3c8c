// The loops around the macro-kernel: N blocks (jc), then per N block a
// packing phase for B and a compute phase whose tasks each own an M block
// (ic) and a range of N panels and walk every K block (pc).
#include "gemm/driver.hpp"

#include <algorithm>
#include <stdexcept>

#include "gemm/blocking.hpp"
#include "gemm/macro_kernel.hpp"
#include "runtime/thread_pool.hpp"

namespace convx::detail {

namespace {

// Phase 1 of N block nb at column jc: makes B's K x nc block ready for the
// tasks of phase 2. A B packed ahead of time is used as it is; with a single
// M block each task packs its own panels as it goes (packed stays null);
// otherwise the block is packed here in parallel, K block by K block, into
// the executor's shared memory.
template <typename T>
BBlock<T> pack_b_block(const GemmJob<T>& job, Executor& exec, const Blocking& blk,
                       const NBlock& nb, std::int64_t jc) {
  const int nr = job.kern.nr;
  BBlock<T> bb;
  bb.jc = jc;
  bb.ld = nb.nc_pad;
  bb.bytes = blk.k_alloc * nb.nc_pad * std::int64_t(sizeof(T));
  bb.packed = job.b.prepacked(nr, blk.kc, &bb.ld);
  if (bb.packed != nullptr) {
    bb.j_off = jc;  // a B packed ahead of time holds all of N
    return bb;
  }
  if (nb.stream_b) return bb;
  T* dst = exec.shared().as<T>(static_cast<std::size_t>(blk.k_alloc * nb.nc_pad));
  const std::int64_t groups = ceil_div(nb.panels, kPanelsPerPackTask);
  const std::int64_t kc_max = blk.kc, k = job.k, nc = nb.nc, nc_pad = nb.nc_pad;
  if (k > 0) {
    exec.run(blk.k_blocks * groups, blk.threads, [&](std::int64_t t, WorkerScratch&) {
      const std::int64_t pc = (t / groups) * kc_max;
      const std::int64_t kc = std::min(kc_max, k - pc);
      const std::int64_t j = (t % groups) * kPanelsPerPackTask * nr;
      const std::int64_t cols = std::min(kPanelsPerPackTask * nr, nc - j);
      if (cols > 0) job.b.pack_panels(job.kern, dst + pc * nc_pad + j * kc, jc + j, cols, pc, kc);
    });
  }
  bb.packed = dst;
  return bb;
}

}  // namespace

template <typename T>
void gemm_blocked(const GemmKernel<T>& kern, Executor& exec, std::int64_t m, std::int64_t n,
                  std::int64_t k, const ASource<T>& a, const BSource<T>& b, T* c,
                  std::int64_t rs_c, std::int64_t cs_c, bool accumulate, const Epilogue<T>& ep) {
  if (m == 0 || n == 0) return;
  if (kern.mc / kern.mr > kMaxPanelsPerBlock) {
    throw std::logic_error("gemm: the kernel's mc / mr exceeds kMaxPanelsPerBlock");
  }
  Blocking blk = plan_blocking(kern, exec.threads(), m, n, k, a.k_block(kern));
  std::int64_t ld_prepacked = 0;
  if (b.prepacked(kern.nr, blk.kc, &ld_prepacked) != nullptr) {
    // N blocks bound the scratch of a B packed here. A B packed ahead of time
    // needs none, and each block would only add a parallel phase and another
    // packing of A.
    blk.nc = std::max(blk.nc, round_up(n, kern.nr));
  }
  const GemmJob<T> job{kern, a, b, c, rs_c, cs_c, k, blk.kc, blk.k_blocks, blk.k_alloc,
                       accumulate, ep};
  for (std::int64_t jc = 0; jc < n; jc += blk.nc) {
    const NBlock nb = plan_n_block(kern, blk, m, std::min(blk.nc, n - jc));
    const BBlock<T> bb = pack_b_block(job, exec, blk, nb, jc);
    // Phase 2: each task packs its rows of A per K block and sweeps its tiles.
    exec.run(nb.tasks(), blk.threads, [&](std::int64_t t, WorkerScratch& scratch) {
      macro_kernel(job, bb, nb.task(t, m, kern.mr), scratch);
    });
  }
}

template void gemm_blocked<float>(const GemmKernel<float>&, Executor&, std::int64_t,
                                  std::int64_t, std::int64_t, const ASource<float>&,
                                  const BSource<float>&, float*, std::int64_t, std::int64_t,
                                  bool, const Epilogue<float>&);
template void gemm_blocked<double>(const GemmKernel<double>&, Executor&, std::int64_t,
                                   std::int64_t, std::int64_t, const ASource<double>&,
                                   const BSource<double>&, double*, std::int64_t, std::int64_t,
                                   bool, const Epilogue<double>&);

}  // namespace convx::detail
