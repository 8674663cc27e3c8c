#include "gemm/driver.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include "common/checked.hpp"
#include "convx/runtime.hpp"
#include "runtime/kernel_table.hpp"
#include "runtime/thread_pool.hpp"
#include "runtime/context_state.hpp"

namespace convx::detail {

namespace {

inline std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }
inline std::int64_t round_up(std::int64_t a, std::int64_t b) { return ceil_div(a, b) * b; }

// Below this many flops per extra thread, waking a worker costs more than it saves.
constexpr double kFlopsPerThread = 1.0e6;
// The packed K x nc block of B is kept within this many bytes (a share of L3).
constexpr std::int64_t kPackedBBudget = std::int64_t(6) << 20;
// A packed B block of at most this many bytes is not prefetched panel by panel.
constexpr std::int64_t kSmallB = std::int64_t(128) << 10;
// Lines of the next B micro-panel prefetched per micro-kernel call at most,
// for a packed B of at most kBurstB bytes (see gemm_blocked).
constexpr std::int64_t kMaxPrefetchPerCall = 16;
constexpr std::int64_t kBurstB = std::int64_t(4) << 20;
// B micro-panels packed per task of the packing phase.
constexpr std::int64_t kPanelsPerPackTask = 4;
// Rows ahead that pack_panels() prefetches when it copies rows of B.
constexpr std::int64_t kPackAhead = 8;
// B micro-panels a task packs at a time when it streams B (a single M block):
// rows of B are then read in runs of this many panels, not one panel wide.
constexpr std::int64_t kStreamPanels = 8;
template <typename T>
constexpr std::int64_t kRowPad = 64 / sizeof(T);
// With several threads, M is cut into at least this many tasks per thread,
// each of at least kMinTaskRows micro-panels and kMinTaskFlops (smaller ones
// cost more in re-read B panels than they save). The guided sizes of
// plan_n_block then split the last ones finer, so few are needed up front.
constexpr std::int64_t kMinTasksPerThread = 2;
constexpr std::int64_t kMinTaskRows = 4;
constexpr double kMinTaskFlops = 16.0e6;
// Micro-panels in one M block (mc / mr) at most, over every kernel.
constexpr std::int64_t kMaxPanelsPerBlock = 64;

// Whether mr rows ld_bytes apart can be streamed by a micro-kernel without
// crowding L1: at most two of them may start in the same set (64 sets of
// 64-byte lines per 4 KiB way), or they would evict each other and the B panel.
// Rows that start in one line share it rather than crowd its set (a patch
// of a few channels at a small stride).
bool rows_spread(std::int64_t ld_bytes, int mr) {
  if (ld_bytes <= 0) return false;  // reversed or repeated rows: pack them
  int in_set[64] = {};
  std::int64_t last_line = -1;
  for (int i = 0; i < mr; ++i) {
    const std::int64_t line = i * ld_bytes / 64;
    if (line == last_line) continue;
    last_line = line;
    if (++in_set[line % 64] > 2) return false;
  }
  return true;
}

int threads_for(std::int64_t m, std::int64_t n, std::int64_t k) {
  const double flops = 2.0 * double(m) * double(n) * double(std::max<std::int64_t>(k, 1));
  const double by_work = std::max(1.0, flops / kFlopsPerThread);
  return static_cast<int>(std::min<double>(num_threads(), by_work));  // SHIM
}

}  // namespace

template <typename T>
void StridedMatrix<T>::pack_rows(T* dst, std::int64_t ld, std::int64_t r0, std::int64_t rows,
                                 std::int64_t k0, std::int64_t kc) const {
  const T* src = data_ + r0 * rs_ + k0 * cs_;
  if (cs_ == 1) {
    for (std::int64_t i = 0; i < rows; ++i) {
      std::memcpy(dst + i * ld, src + i * rs_, static_cast<std::size_t>(kc) * sizeof(T));
    }
    return;
  }
  // Transposing copy: read along the contiguous-ish axis in short row strips.
  constexpr std::int64_t kStrip = 8;
  for (std::int64_t i0 = 0; i0 < rows; i0 += kStrip) {
    const std::int64_t i1 = std::min(rows, i0 + kStrip);
    for (std::int64_t p = 0; p < kc; ++p) {
      for (std::int64_t i = i0; i < i1; ++i) dst[i * ld + p] = src[i * rs_ + p * cs_];
    }
  }
}

template <typename T>
void StridedMatrix<T>::pack_panels(T* dst, std::int64_t j0, std::int64_t cols, std::int64_t k0,
                                   std::int64_t kc, int nr) const {
  if (cs_ == 1) {
    // Row by row across all the panels, so that each row of B is read as one
    // contiguous run rather than in nr-wide strips, one panel at a time.
    const std::int64_t full = cols / nr, tail = cols - full * nr;
    const std::int64_t run_bytes = cols * std::int64_t(sizeof(T));
    for (std::int64_t p = 0; p < kc; ++p) {
      const T* src = data_ + (k0 + p) * rs_ + j0;
      if (p + kPackAhead < kc) {
        // Rows are far apart: ask for a later row now, so that several are
        // in flight from memory while this one is copied.
        const char* ahead = reinterpret_cast<const char*>(src + kPackAhead * rs_);
        for (std::int64_t off = 0; off < run_bytes; off += 64) __builtin_prefetch(ahead + off);
      }
      T* out = dst + p * nr;
      for (std::int64_t q = 0; q < full; ++q) {
        std::memcpy(out + q * kc * nr, src + q * nr, static_cast<std::size_t>(nr) * sizeof(T));
      }
      if (tail > 0) {
        T* o = out + full * kc * nr;
        std::memcpy(o, src + full * nr, static_cast<std::size_t>(tail) * sizeof(T));
        std::fill(o + tail, o + nr, T(0));
      }
    }
    return;
  }
  if (rs_ == 1 && nr % 8 == 0) {
    if (const PackColumnsFn<T> pack = gemm_kernel<T>().pack_columns) {
      pack(dst, data_ + k0 + j0 * cs_, cs_, cols, kc, nr);
      return;
    }
  }
  for (std::int64_t q = 0; q * nr < cols; ++q) {
    const std::int64_t live = std::min<std::int64_t>(nr, cols - q * nr);
    const T* src = data_ + k0 * rs_ + (j0 + q * nr) * cs_;
    T* out = dst + q * kc * nr;
    // Columns of B are rows in memory (e.g. transposed weights): read each
    // along K and scatter into the panel, which stays in L1 meanwhile.
    for (std::int64_t j = 0; j < live; ++j) {
      const T* s = src + j * cs_;
      for (std::int64_t p = 0; p < kc; ++p) out[p * nr + j] = s[p * rs_];
    }
    if (live < nr) {
      for (std::int64_t p = 0; p < kc; ++p) std::fill(out + p * nr + live, out + (p + 1) * nr, T(0));
    }
  }
}

// How a GEMM is cut into blocks and tasks. Only kc affects the arithmetic
// (the order of the K sum), and it depends on the kernel and the caller's
// choice (nhwc_k_block), never on the thread count; every other cut only
// decides who computes which tile.
struct Blocking {
  std::int64_t kc = 0, k_blocks = 0, k_alloc = 0, nc = 0;
  int threads = 1;
};

template <typename K>
Blocking plan_blocking(std::int64_t m, std::int64_t n, std::int64_t k, std::int64_t kc,
                       const K& kern, std::size_t elem) {
  Blocking b;
  b.kc = kc > 0 ? kc : kern.kc;
  b.k_blocks = std::max<std::int64_t>(1, ceil_div(k, b.kc));
  b.k_alloc = std::max<std::int64_t>(k, 1);
  b.threads = threads_for(m, n, k);
  const std::int64_t nc =
      std::min<std::int64_t>(kern.nc, kPackedBBudget / (b.k_alloc * std::int64_t(elem)));
  b.nc = std::max<std::int64_t>(kern.nr, nc / kern.nr * kern.nr);
  return b;
}

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
  std::int64_t m_start(std::int64_t i, int mr) const {
    if (!cuts.empty()) return cuts[i] * mr;
    return (i * m_base + std::min(i, m_extra)) * mr;
  }
  std::int64_t m_rows(std::int64_t i, int mr) const {
    if (!cuts.empty()) return (cuts[i + 1] - cuts[i]) * mr;
    return (m_base + (i < m_extra)) * mr;
  }
  bool stream_b = false;
};

// `with_cuts` false skips the guided block list, whose length grows with m:
// sizing the scratch needs only the block counts.
template <typename K>
NBlock plan_n_block(std::int64_t m, std::int64_t nc, const Blocking& blk, const K& kern,
                    bool with_cuts = true) {
  const int mr = kern.mr, nr = kern.nr, threads = blk.threads;
  NBlock b;
  b.nc = nc;
  b.nc_pad = round_up(nc, nr);
  b.panels = b.nc_pad / nr;
  b.mc = std::min<std::int64_t>(kern.mc, round_up(m, mr));
  b.m_tasks = ceil_div(m, b.mc);
  b.stream_b = b.m_tasks == 1;
  if (b.stream_b) {
    // One M block: the threads share out the N panels.
    b.n_chunks = std::min<std::int64_t>(threads, b.panels);
  } else {
    if (threads > 1) {
      // Several tasks per thread: threads claim tasks as they go, so a thread
      // whose core is slowed (by a neighbour on a shared VM, say) simply does
      // fewer, and the last task to finish ends the job. With one to three
      // large tasks each, one slow task leaves the other thread idle for up to
      // a third of the job.
      const double flops = 2.0 * double(m) * double(nc) * double(blk.k_alloc);
      const std::int64_t by_size = std::min<std::int64_t>(
          ceil_div(m, kMinTaskRows * mr), static_cast<std::int64_t>(flops / kMinTaskFlops));
      b.m_tasks = std::max(b.m_tasks, std::min(kMinTasksPerThread * threads, by_size));
    }
    if (threads > 1 && b.m_tasks % threads != 0 && b.m_tasks < 8 * threads) {
      b.m_tasks = round_up(b.m_tasks, threads);  // whole rounds of tasks per thread
    }
    // Blocks of equal height, give or take a micro-panel, so that the last one
    // is not a sliver and no thread waits for another at the end.
    b.m_tasks = std::min(b.m_tasks, ceil_div(m, mr));
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
    // Guided sizes: full blocks first, then each takes about 1/(2*threads) of
    // the micro-panels still left, down to kMinTaskRows. Threads rarely run
    // at the same speed on a shared machine, and with equal blocks the one
    // that finishes first waits for the other's last block; small blocks at
    // the end keep that wait short. Where the rows go has no effect on the
    // arithmetic.
    const std::int64_t most = b.m_base + (b.m_extra > 0);
    for (std::int64_t pos = 0; pos < m_panels;) {
      const std::int64_t rest = m_panels - pos;
      b.cuts.push_back(pos);
      pos += std::min({most, rest, std::max(kMinTaskRows, ceil_div(rest, 2 * threads))});
    }
    b.cuts.push_back(m_panels);
    b.m_tasks = static_cast<std::int64_t>(b.cuts.size()) - 1;
  }
  return b;
}

template <typename T>
std::int64_t gemm_workspace_bytes(std::int64_t m, std::int64_t n, std::int64_t k,
                                  std::int64_t kc_block) {
  if (m == 0 || n == 0) return 0;
  const GemmKernel<T>& kern = gemm_kernel<T>();
  const Blocking blk = plan_blocking(m, n, k, kc_block, kern, sizeof(T));
  const NBlock nb = plan_n_block(m, std::min(blk.nc, n), blk, kern, /*with_cuts=*/false);
  const std::int64_t kc = std::min(blk.kc, blk.k_alloc);
  const std::int64_t per_task =
      round_up(nb.mc, kern.mr) * (kc + kRowPad<T>) +
      (nb.stream_b ? kc * kern.nr * kStreamPanels : 0);
  const std::int64_t shared = nb.stream_b ? 0 : blk.k_alloc * nb.nc_pad;
  return std::int64_t(sizeof(T)) * (shared + per_task * std::min<std::int64_t>(
                                                 blk.threads, nb.m_tasks * nb.n_chunks));
}

template <typename T>
void gemm_blocked(std::int64_t m, std::int64_t n, std::int64_t k, const ASource<T>& a,
                  const BSource<T>& b, T* c, std::int64_t rs_c, std::int64_t cs_c,
                  bool accumulate, const Epilogue<T>& ep, Executor* exec,
                  std::int64_t kc_block) {
  if (m == 0 || n == 0) return;
  const GemmKernel<T>& kern = gemm_kernel<T>();
  const int mr = kern.mr, nr = kern.nr;
  Blocking blk = plan_blocking(m, n, k, kc_block, kern, sizeof(T));
  std::int64_t ld_prepacked = 0;
  if (b.prepacked(nr, blk.kc, &ld_prepacked) != nullptr) {
    // N blocks bound the scratch of a B packed here. A B packed ahead of time
    // needs none, and each block would only add a parallel phase and another
    // packing of A.
    blk.nc = std::max(blk.nc, round_up(n, nr));
  }
  const std::int64_t kc_max = blk.kc, k_blocks = blk.k_blocks, k_alloc = blk.k_alloc;
  const int threads = blk.threads;

  if (kern.mc / mr > kMaxPanelsPerBlock) {
    throw std::logic_error("gemm: the kernel's mc / mr exceeds kMaxPanelsPerBlock");
  }
  std::unique_ptr<PoolLease> own_lease;
  if (exec == nullptr) {
    own_lease = std::make_unique<PoolLease>(Context::default_context().state());
    exec = own_lease.get();
  }
  Executor& lease = *exec;
  for (std::int64_t jc = 0; jc < n; jc += blk.nc) {
    const NBlock nb = plan_n_block(m, std::min(blk.nc, n - jc), blk, kern);
    const std::int64_t nc = nb.nc, nc_pad = nb.nc_pad, panels = nb.panels;
    const std::int64_t m_tasks = nb.m_tasks, n_chunks = nb.n_chunks, chunk = nb.chunk;
    bool stream_b = nb.stream_b;

    // Phase 1: pack the K x nc block of B, k-block by k-block, in parallel.
    // (With stream_b each task packs its B panels just before use instead;
    // a prepacked B needs neither.) Block pc of B starts at packed_b + pc*ld_b.
    std::int64_t ld_b = nc_pad;
    const T* packed_b = b.prepacked(nr, kc_max, &ld_b);
    // Column offset of this N block inside the packed B (a prepacked B holds all of N).
    const std::int64_t j_off = packed_b != nullptr ? jc : 0;
    if (packed_b != nullptr) {
      stream_b = false;
    } else if (!stream_b) {
      T* dst = lease.shared().as<T>(static_cast<std::size_t>(k_alloc * nc_pad));
      const std::int64_t groups = ceil_div(panels, kPanelsPerPackTask);
      if (k > 0) {
        lease.run(k_blocks * groups, threads, [&](std::int64_t t, WorkerScratch&) {
          const std::int64_t pc = (t / groups) * kc_max;
          const std::int64_t kc = std::min(kc_max, k - pc);
          const std::int64_t j = (t % groups) * kPanelsPerPackTask * nr;
          const std::int64_t cols = std::min(kPanelsPerPackTask * nr, nc - j);
          if (cols > 0) b.pack_panels(dst + pc * nc_pad + j * kc, jc + j, cols, pc, kc, nr);
        });
      }
      packed_b = dst;
    }

    // A packed B this small stays in L2 from one panel to the next (resnet50
    // conv1's filters: 37 KiB); fetching it ahead would only cost instructions.
    const std::int64_t b_bytes = k_alloc * nc_pad * std::int64_t(sizeof(T));
    const bool b_small = !stream_b && b_bytes <= kSmallB;
    // Few micro-panels per task (small M cut for two threads) would fetch the
    // next B panel in bursts of up to 256 lines per call, which stall the core
    // on its miss buffers; at most kMaxPrefetchPerCall lines then, and the
    // hardware prefetcher follows the rest. A B of more than kBurstB is too
    // large for the hardware prefetcher to keep up with and wants every line
    // fetched ahead.
    const bool b_burst_cap = b_bytes <= kBurstB;

    // Phase 2: each task packs its rows of A per k-block and sweeps its tiles.
    lease.run(m_tasks * n_chunks, threads, [&](std::int64_t t, WorkerScratch& scratch) {
      const std::int64_t ic = nb.m_start(t / n_chunks, mr);
      const std::int64_t mcur = std::min(nb.m_rows(t / n_chunks, mr), m - ic);
      const std::int64_t j_lo = (t % n_chunks) * chunk;
      const std::int64_t j_hi = std::min(nc, j_lo + chunk);
      if (mcur <= 0 || j_lo >= j_hi) return;
      const std::int64_t rows_pad = round_up(mcur, mr);
      // Rows of the packed A block are padded by a cache line so that the MR
      // rows a micro-kernel streams never share L1 sets at power-of-two strides.
      const std::int64_t lda_max = std::min(kc_max, k_alloc) + kRowPad<T>;
      T* packed_a = scratch.pack.as<T>(static_cast<std::size_t>(rows_pad * lda_max));
      T* b_panel = stream_b ? scratch.pack_b.as<T>(static_cast<std::size_t>(
                                  std::min(kc_max, k_alloc) * nr * kStreamPanels))
                            : nullptr;
      const std::int64_t calls = rows_pad / mr;  // <= kMaxPanelsPerBlock, checked on entry
      // rows_spread() of the last row stride seen: a source's in-place rows nearly
      // always share one stride, and the check costs more than a micro-panel's setup.
      std::int64_t spread_ld = 0;
      bool spread = false;
      const T* a_ptr[kMaxPanelsPerBlock];
      std::int64_t a_ld[kMaxPanelsPerBlock], a_run[kMaxPanelsPerBlock],
          a_step[kMaxPanelsPerBlock];
      for (std::int64_t kb = 0; kb < k_blocks; ++kb) {
        const std::int64_t pc = kb * kc_max;
        const std::int64_t kc = std::max<std::int64_t>(0, std::min(kc_max, k - pc));
        const std::int64_t lda = kc + kRowPad<T>;
        for (std::int64_t q = 0; q < calls; ++q) {
          a_ptr[q] = packed_a + q * mr * lda;
          a_ld[q] = lda;
          a_run[q] = kc;
          a_step[q] = 0;
        }
        if (kc > 0 && !a.reads_in_place()) {
          a.pack_rows(packed_a, lda, ic, mcur, pc, kc);
          std::fill(packed_a + mcur * lda, packed_a + rows_pad * lda, T(0));
        } else if (kc > 0) {
          // Micro-panel by micro-panel: read whole ones in place where the
          // source allows it and its rows do not crowd L1; pack the rest.
          for (std::int64_t q = 0; q < calls; ++q) {
            const std::int64_t r = q * mr, rows = std::min<std::int64_t>(mr, mcur - r);
            std::int64_t ld = 0, run = kc, run_step = 0;
            const T* in_place =
                rows == mr ? a.rows_in_place(ic + r, mr, pc, kc, &ld, &run, &run_step) : nullptr;
            if (in_place != nullptr && ld != spread_ld) {
              spread_ld = ld;
              spread = rows_spread(ld * std::int64_t(sizeof(T)), mr);
            }
            if (in_place != nullptr && spread) {
              a_ptr[q] = in_place;
              a_ld[q] = ld;
              a_run[q] = run;
              a_step[q] = run_step;
              continue;
            }
            T* dst = packed_a + r * lda;
            a.pack_rows(dst, lda, ic + r, rows, pc, kc);
            std::fill(dst + rows * lda, dst + mr * lda, T(0));
          }
        }
        const bool acc = accumulate || kb > 0;
        const bool last = kb + 1 == k_blocks;
        for (std::int64_t jr = j_lo; jr < j_hi; jr += nr) {
          const std::int64_t ncur = std::min<std::int64_t>(nr, j_hi - jr);
          const T* bpanel = nullptr;
          if (!stream_b) {
            bpanel = packed_b + pc * ld_b + (j_off + jr) * kc;
          } else {
            const std::int64_t slot = (jr - j_lo) / nr % kStreamPanels;
            if (slot == 0 && kc > 0) {
              b.pack_panels(b_panel, jc + jr, std::min(kStreamPanels * nr, j_hi - jr), pc, kc, nr);
            }
            bpanel = b_panel + slot * kc * nr;
          }
          // The next B micro-panel was packed long before and has fallen out to
          // L3. Fetch it into L2 a slice per micro-kernel call, so that the first
          // call on it does not stall.
          const T* b_next =
              (!stream_b && !b_small && jr + nr < j_hi) ? bpanel + kc * nr : nullptr;
          const std::int64_t next_lines =
              b_next != nullptr ? kc * nr * std::int64_t(sizeof(T)) / 64 : 0;
          const std::int64_t even_share = ceil_div(next_lines, calls);
          const std::int64_t per_call =
              b_burst_cap ? std::min(even_share, kMaxPrefetchPerCall) : even_share;
          for (std::int64_t ir = 0, q = 0; ir < mcur; ir += mr, ++q) {
            for (std::int64_t l = q * per_call; l < std::min(next_lines, (q + 1) * per_call); ++l) {
              __builtin_prefetch(reinterpret_cast<const char*>(b_next) + 64 * l, 0, 2);
            }
            if (kb == 0 && cs_c == 1 && ir + mr < mcur) {
              // The first K block writes C, which is usually not in cache (a
              // large layer's output): ask for the next tile's lines now, so
              // that the kernel's stores do not wait on them (this matters most
              // for a short K, such as resnet50 conv1's 147).
              const std::int64_t rows_next = std::min<std::int64_t>(mr, mcur - ir - mr);
              const T* c_next = c + (ic + ir + mr) * rs_c + jc + jr;
              for (std::int64_t i = 0; i < rows_next; ++i) {
                const char* p = reinterpret_cast<const char*>(c_next + i * rs_c);
                __builtin_prefetch(p, 1, 3);
                __builtin_prefetch(p + ncur * std::int64_t(sizeof(T)) - 1, 1, 3);
              }
            }
            TileEpilogue<T> tile_ep;
            const TileEpilogue<T>* tile_ep_ptr = nullptr;
            if (last && (ep.bias_mode != BiasMode::None || ep.activation != Activation::None)) {
              if (ep.bias_mode == BiasMode::PerRow) tile_ep.bias_row = ep.bias + ic + ir;
              if (ep.bias_mode == BiasMode::PerColumn) tile_ep.bias_col = ep.bias + jc + jr;
              tile_ep.relu = ep.activation == Activation::ReLU;
              tile_ep_ptr = &tile_ep;
            }
            kern.fn(kc, a_ptr[q], a_ld[q], a_run[q], a_step[q], bpanel,
                    c + (ic + ir) * rs_c + (jc + jr) * cs_c, rs_c, cs_c,
                    std::min<std::int64_t>(mr, mcur - ir), ncur, acc, tile_ep_ptr);
          }
        }
      }
    });
  }
}

template <typename T>
PrepackedB<T>::PrepackedB(const T* data, std::int64_t rs, std::int64_t cs, std::int64_t k,
                          std::int64_t n, std::int64_t kc)
    : raw_(data, rs, cs) {
  const GemmKernel<T>& kern = gemm_kernel<T>();
  nr_ = kern.nr;
  kc_ = kc > 0 ? kc : kern.kc;
  n_pad_ = round_up(std::max<std::int64_t>(n, 1), nr_);
  const std::int64_t k_alloc = std::max<std::int64_t>(k, 1);
  bytes_ = checked_product("packed weights", k_alloc, n_pad_, std::int64_t(sizeof(T)));
  packed_ = static_cast<T*>(std::aligned_alloc(64, static_cast<std::size_t>(round_up(bytes_, 64))));
  if (packed_ == nullptr) throw std::bad_alloc();
  for (std::int64_t pc = 0; pc < k; pc += kc_) {
    const std::int64_t kc = std::min(kc_, k - pc);
    raw_.pack_panels(packed_ + pc * n_pad_, 0, n, pc, kc, nr_);
  }
}

template <typename T>
PrepackedB<T>::~PrepackedB() {
  std::free(packed_);
}

template <typename T>
const T* PrepackedB<T>::prepacked(int nr, std::int64_t kc, std::int64_t* n_pad) const {
  if (nr != nr_ || kc != kc_) return nullptr;  // packed for another kernel path
  *n_pad = n_pad_;
  return packed_;
}

template <typename T>
std::int64_t nhwc_k_block(std::int64_t k_w, std::int64_t c_per_group) {
  const GemmKernel<T>& kern = gemm_kernel<T>();
  // Longest block: its B micro-panel must leave room in L1 for the A rows.
  constexpr std::int64_t kPanelBytes = 24 << 10;
  const std::int64_t limit =
      std::max<std::int64_t>(kern.kc, kPanelBytes / (kern.nr * std::int64_t(sizeof(T))));
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

template std::int64_t nhwc_k_block<float>(std::int64_t, std::int64_t);
template std::int64_t nhwc_k_block<double>(std::int64_t, std::int64_t);
template class PrepackedB<float>;
template class PrepackedB<double>;
template class StridedMatrix<float>;
template class StridedMatrix<double>;
template void gemm_blocked<float>(std::int64_t, std::int64_t, std::int64_t,
                                  const ASource<float>&, const BSource<float>&, float*,
                                  std::int64_t, std::int64_t, bool, const Epilogue<float>&,
                                  Executor*, std::int64_t);
template std::int64_t gemm_workspace_bytes<float>(std::int64_t, std::int64_t, std::int64_t,
                                                  std::int64_t);
template std::int64_t gemm_workspace_bytes<double>(std::int64_t, std::int64_t, std::int64_t,
                                                   std::int64_t);
template void gemm_blocked<double>(std::int64_t, std::int64_t, std::int64_t,
                                   const ASource<double>&, const BSource<double>&, double*,
                                   std::int64_t, std::int64_t, bool, const Epilogue<double>&,
                                   Executor*, std::int64_t);

}  // namespace convx::detail

namespace convx {

template <typename T>
void gemm(std::int64_t m, std::int64_t n, std::int64_t k, const T* a, std::int64_t rs_a,
          std::int64_t cs_a, const T* b, std::int64_t rs_b, std::int64_t cs_b, T* c,
          std::int64_t rs_c, std::int64_t cs_c, bool accumulate, const Epilogue<T>& epilogue) {
  detail::require(m >= 0 && n >= 0 && k >= 0, "gemm: sizes must be >= 0");
  detail::checked_product("gemm: m*k", m, k);
  detail::checked_product("gemm: k*n", k, n);
  detail::checked_product("gemm: m*n", m, n);
  if (m == 0 || n == 0) return;
  detail::require(c != nullptr, "gemm: c is null");
  detail::require(k == 0 || (a != nullptr && b != nullptr), "gemm: a or b is null");
  detail::require(epilogue.bias_mode == BiasMode::None || epilogue.bias != nullptr,
                  "gemm: epilogue bias is null");
  const detail::StridedMatrix<T> ma(a, rs_a, cs_a);
  const detail::StridedMatrix<T> mb(b, rs_b, cs_b);
  const detail::FloatModeScope float_mode(flush_denormal());
  detail::gemm_blocked<T>(m, n, k, ma, mb, c, rs_c, cs_c, accumulate, epilogue);
}

template void gemm<float>(std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t,
                          std::int64_t, const float*, std::int64_t, std::int64_t, float*,
                          std::int64_t, std::int64_t, bool, const Epilogue<float>&);
template void gemm<double>(std::int64_t, std::int64_t, std::int64_t, const double*, std::int64_t,
                           std::int64_t, const double*, std::int64_t, std::int64_t, double*,
                           std::int64_t, std::int64_t, bool, const Epilogue<double>&);

}  // namespace convx
