#include "gemm/blocking.hpp"

#include <algorithm>

#include "gemm/driver.hpp"

namespace convx::detail {

namespace {

// Below this many flops per extra thread, waking a worker costs more than it saves.
constexpr double kFlopsPerThread = 1.0e6;
// With several threads, M is cut into at least this many tasks per thread,
// each of at least kMinTaskRows micro-panels and kMinTaskFlops (smaller ones
// cost more in re-read B panels than they save). The guided sizes of
// plan_n_block then split the last ones finer, so few are needed up front.
constexpr std::int64_t kMinTasksPerThread = 2;
constexpr std::int64_t kMinTaskRows = 4;
constexpr double kMinTaskFlops = 16.0e6;

int threads_for(int threads, std::int64_t m, std::int64_t n, std::int64_t k) {
  const double flops = 2.0 * double(m) * double(n) * double(std::max<std::int64_t>(k, 1));
  const double by_work = std::max(1.0, flops / kFlopsPerThread);
  return static_cast<int>(std::min<double>(std::max(threads, 1), by_work));
}

// How many M blocks an N block of nc columns is cut into when B is packed up
// front (several M blocks of at most mc rows).
std::int64_t m_task_count(int mr, const Blocking& blk, std::int64_t m, std::int64_t nc,
                          std::int64_t m_tasks) {
  const int threads = blk.threads;
  if (threads > 1) {
    // Several tasks per thread: threads claim tasks as they go, so a thread
    // whose core is slowed (by a neighbour on a shared VM, say) simply does
    // fewer, and the last task to finish ends the job. With one to three
    // large tasks each, one slow task leaves the other thread idle for up to
    // a third of the job.
    const double flops = 2.0 * double(m) * double(nc) * double(blk.k_alloc);
    const std::int64_t by_size = std::min<std::int64_t>(
        ceil_div(m, kMinTaskRows * mr), static_cast<std::int64_t>(flops / kMinTaskFlops));
    m_tasks = std::max(m_tasks, std::min(kMinTasksPerThread * threads, by_size));
  }
  if (threads > 1 && m_tasks % threads != 0 && m_tasks < 8 * threads) {
    m_tasks = round_up(m_tasks, threads);  // whole rounds of tasks per thread
  }
  // Blocks of equal height, give or take a micro-panel, so that the last one
  // is not a sliver and no thread waits for another at the end.
  return std::min(m_tasks, ceil_div(m, mr));
}

// Guided sizes: full blocks first, then each takes about 1/(2*threads) of the
// micro-panels still left, down to kMinTaskRows. Threads rarely run at the
// same speed on a shared machine, and with equal blocks the one that
// finishes first waits for the other's last block; small blocks at the end
// keep that wait short. Where the rows go has no effect on the arithmetic.
void guided_cuts(NBlock& b, std::int64_t m_panels, int threads) {
  const std::int64_t most = b.m_base + (b.m_extra > 0);
  for (std::int64_t pos = 0; pos < m_panels;) {
    const std::int64_t rest = m_panels - pos;
    b.cuts.push_back(pos);
    pos += std::min({most, rest, std::max(kMinTaskRows, ceil_div(rest, 2 * threads))});
  }
  b.cuts.push_back(m_panels);
  b.m_tasks = static_cast<std::int64_t>(b.cuts.size()) - 1;
}

}  // namespace

CacheBlocks derive_gemm_blocking(int mr, int nr, int elem_bytes, const CacheInfo& caches) {
  const std::int64_t size = std::max(elem_bytes, 1);
  const std::int64_t line = std::max<std::int64_t>(1, 64 / size);
  CacheBlocks b;
  const std::int64_t l1_use = caches.l1d - caches.l1d / 16;
  b.kc = l1_use / ((mr + nr) * size) / line * line;
  b.kc = std::clamp(b.kc, kMinKc, kMaxKc);
  b.mc = caches.l2 / 4 / (b.kc * size) / mr * mr;
  b.mc = std::clamp<std::int64_t>(b.mc, mr, kMaxPanelsPerBlock * mr);
  const std::int64_t l3_share =
      caches.l3 > 0 ? caches.l3 / std::max(caches.l3_shared_by, 1) : caches.l2;
  b.packed_b_bytes = std::clamp(l3_share / 2, std::int64_t(1) << 20, std::int64_t(16) << 20);
  b.nc = b.packed_b_bytes / (b.kc * size) / nr * nr;
  b.nc = std::clamp<std::int64_t>(b.nc, nr, kMaxNc / nr * nr);
  return b;
}

TaskTile NBlock::task(std::int64_t t, std::int64_t m, int mr) const {
  TaskTile tile;
  tile.ic = m_start(t / n_chunks, mr);
  tile.rows = std::min(m_rows(t / n_chunks, mr), m - tile.ic);
  tile.j_lo = (t % n_chunks) * chunk;
  tile.j_hi = std::min(nc, tile.j_lo + chunk);
  return tile;
}

template <typename T>
Blocking plan_blocking(const GemmKernel<T>& kern, int threads, std::int64_t m, std::int64_t n,
                       std::int64_t k, std::int64_t kc) {
  Blocking b;
  b.kc = kc;
  b.k_blocks = std::max<std::int64_t>(1, ceil_div(k, b.kc));
  b.k_alloc = std::max<std::int64_t>(k, 1);
  b.threads = threads_for(threads, m, n, k);
  const std::int64_t nc =
      std::min<std::int64_t>(kern.nc, kern.packed_b_bytes / (b.k_alloc * std::int64_t(sizeof(T))));
  b.nc = std::max<std::int64_t>(kern.nr, nc / kern.nr * kern.nr);
  return b;
}

template <typename T>
NBlock plan_n_block(const GemmKernel<T>& kern, const Blocking& blk, std::int64_t m,
                    std::int64_t nc, bool with_cuts) {
  const int mr = kern.mr, nr = kern.nr, threads = blk.threads;
  NBlock b;
  b.nc = nc;
  b.nc_pad = round_up(nc, nr);
  b.panels = b.nc_pad / nr;
  // K blocks longer than the kernel's kc (a source's whole patch) make the M
  // block shorter, so the A block keeps the kernel's share of L2.
  const std::int64_t kc = std::min(blk.kc, blk.k_alloc);
  const std::int64_t mc = kc > kern.kc ? std::max<std::int64_t>(mr, kern.mc * kern.kc / kc / mr * mr)
                                       : kern.mc;
  b.mc = std::min<std::int64_t>(mc, round_up(m, mr));
  b.m_tasks = ceil_div(m, b.mc);
  b.stream_b = b.m_tasks == 1;
  if (b.stream_b) {
    // One M block: the threads share out the N panels.
    b.n_chunks = std::min<std::int64_t>(threads, b.panels);
  } else {
    b.m_tasks = m_task_count(mr, blk, m, nc, b.m_tasks);
    b.n_chunks = 1;
    if (b.m_tasks < threads) {
      b.n_chunks = std::min<std::int64_t>(ceil_div(threads, b.m_tasks), b.panels);
    }
  }
  b.chunk = ceil_div(b.panels, b.n_chunks) * nr;
  b.n_chunks = ceil_div(b.nc_pad, b.chunk);
  const std::int64_t m_panels = ceil_div(m, mr);
  b.m_base = m_panels / b.m_tasks;
  b.m_extra = m_panels % b.m_tasks;
  b.mc = (b.m_base + (b.m_extra > 0)) * mr;
  if (with_cuts && threads > 1 && b.n_chunks == 1 && b.m_tasks > 1) {
    guided_cuts(b, m_panels, threads);
  }
  return b;
}

template <typename T>
std::int64_t gemm_workspace_bytes(const GemmKernel<T>& kern, int threads, std::int64_t m,
                                  std::int64_t n, std::int64_t k, std::int64_t kc,
                                  bool b_prepacked) {
  if (m == 0 || n == 0) return 0;
  Blocking blk = plan_blocking(kern, threads, m, n, k, kc);
  if (b_prepacked) blk.nc = std::max(blk.nc, round_up(n, kern.nr));  // as gemm_blocked does
  const NBlock nb = plan_n_block(kern, blk, m, std::min(blk.nc, n), /*with_cuts=*/false);
  const bool stream_b = nb.stream_b && !b_prepacked;
  const std::int64_t kc_used = std::min(blk.kc, blk.k_alloc);
  const std::int64_t per_task = round_up(nb.mc, kern.mr) * (kc_used + kRowPad<T>) +
                                (stream_b ? kc_used * kern.nr * stream_panels(kc_used, kern.nr, sizeof(T)) : 0);
  const std::int64_t shared = stream_b || b_prepacked ? 0 : blk.k_alloc * nb.nc_pad;
  return std::int64_t(sizeof(T)) *
         (shared + per_task * std::min<std::int64_t>(blk.threads, nb.tasks()));
}

template Blocking plan_blocking<float>(const GemmKernel<float>&, int, std::int64_t,
                                       std::int64_t, std::int64_t, std::int64_t);
template Blocking plan_blocking<double>(const GemmKernel<double>&, int, std::int64_t,
                                        std::int64_t, std::int64_t, std::int64_t);
template NBlock plan_n_block<float>(const GemmKernel<float>&, const Blocking&, std::int64_t,
                                    std::int64_t, bool);
template NBlock plan_n_block<double>(const GemmKernel<double>&, const Blocking&, std::int64_t,
                                     std::int64_t, bool);
template std::int64_t gemm_workspace_bytes<float>(const GemmKernel<float>&, int, std::int64_t,
                                                  std::int64_t, std::int64_t, std::int64_t,
                                                  bool);
template std::int64_t gemm_workspace_bytes<double>(const GemmKernel<double>&, int, std::int64_t,
                                                   std::int64_t, std::int64_t, std::int64_t,
                                                   bool);

}  // namespace convx::detail
