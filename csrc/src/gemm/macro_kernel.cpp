#include "gemm/macro_kernel.hpp"

#include <algorithm>

namespace convx::detail {

namespace {

// A packed B block of at most this many bytes is not prefetched panel by panel:
// it stays in L2 from one panel to the next, and fetching it ahead would only
// cost instructions.
constexpr std::int64_t kSmallB = std::int64_t(128) << 10;
// Lines of the next B micro-panel prefetched per micro-kernel call at most,
// for a packed B of at most kBurstB bytes (see sweep_tiles).
constexpr std::int64_t kMaxPrefetchPerCall = 16;
constexpr std::int64_t kBurstB = std::int64_t(4) << 20;

// Whether mr rows ld_bytes apart can be streamed by a micro-kernel without
// crowding L1: at most two of them may start in the same set (64 sets of
// 64-byte lines per 4 KiB way), or they would evict each other and the B panel.
// Rows that start in one line (a row stride shorter than a line) share it
// rather than crowd its set.
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

// Where the micro-kernel reads A for each micro-panel q of a task in one K
// block, in the form of the kernel contract (ptr, ld, run, step).
template <typename T>
struct APanels {
  const T* ptr[kMaxPanelsPerBlock];
  std::int64_t ld[kMaxPanelsPerBlock], run[kMaxPanelsPerBlock], step[kMaxPanelsPerBlock];
  // rows_spread() of the last row stride seen: a source's in-place rows nearly
  // always share one stride, and the check costs more than a micro-panel's setup.
  std::int64_t spread_ld = 0;
  bool spread = false;
  std::int64_t in_place = 0, packed = 0;  // micro-panels of each kind, for GemmCounters
};

// Fills `ap` for the `calls` micro-panels of rows [ic, ic+rows) over K range
// [pc, pc+kc): each reads its rows in place when the source has them in
// memory and they do not crowd L1, and otherwise from packed_a (row stride
// lda), where they are packed and padded with zero rows to a whole panel.
template <typename T>
void prepare_a_panels(const ASource<T>& a, int mr, T* packed_a, std::int64_t lda,
                      std::int64_t ic, std::int64_t rows, std::int64_t calls, std::int64_t pc,
                      std::int64_t kc, APanels<T>& ap) {
  for (std::int64_t q = 0; q < calls; ++q) {
    ap.ptr[q] = packed_a + q * mr * lda;
    ap.ld[q] = lda;
    ap.run[q] = kc;
    ap.step[q] = 0;
  }
  if (kc == 0) return;
  if (!a.reads_in_place()) {
    a.pack_rows(packed_a, lda, ic, rows, pc, kc);
    std::fill(packed_a + rows * lda, packed_a + calls * mr * lda, T(0));
    ap.packed += calls;
    return;
  }
  for (std::int64_t q = 0; q < calls; ++q) {
    const std::int64_t r = q * mr, live = std::min<std::int64_t>(mr, rows - r);
    std::int64_t ld = 0, run = kc, run_step = 0;
    const T* in_place =
        live == mr ? a.rows_in_place(ic + r, mr, pc, kc, &ld, &run, &run_step) : nullptr;
    if (in_place != nullptr && ld != ap.spread_ld) {
      ap.spread_ld = ld;
      ap.spread = rows_spread(ld * std::int64_t(sizeof(T)), mr);
    }
    if (in_place != nullptr && ap.spread) {
      ap.ptr[q] = in_place;
      ap.ld[q] = ld;
      ap.run[q] = run;
      ap.step[q] = run_step;
      ++ap.in_place;
      continue;
    }
    T* dst = packed_a + r * lda;
    a.pack_rows(dst, lda, ic + r, live, pc, kc);
    std::fill(dst + live * lda, dst + mr * lda, T(0));
    ++ap.packed;
  }
}

// The epilogue of the tile at (row, col) of C, or nullptr when there is none
// (or it is not the last K block).
template <typename T>
const TileEpilogue<T>* tile_epilogue(const Epilogue<T>& ep, bool last, std::int64_t row,
                                     std::int64_t col, TileEpilogue<T>& out) {
  if (!last || (ep.bias_mode == BiasMode::None && ep.activation == Activation::None)) {
    return nullptr;
  }
  if (ep.bias_mode == BiasMode::PerRow) out.bias_row = ep.bias + row;
  if (ep.bias_mode == BiasMode::PerColumn) out.bias_col = ep.bias + col;
  out.relu = ep.activation == Activation::ReLU;
  return &out;
}

// Asks for the lines of `rows` rows of `cols` values at c (row stride rs_c),
// for writing.
template <typename T>
inline void prefetch_c_rows(const T* c, std::int64_t rows, std::int64_t cols, std::int64_t rs_c) {
  for (std::int64_t i = 0; i < rows; ++i) {
    const char* p = reinterpret_cast<const char*>(c + i * rs_c);
    __builtin_prefetch(p, 1, 3);
    __builtin_prefetch(p + cols * std::int64_t(sizeof(T)) - 1, 1, 3);
  }
}

// Calls the micro-kernel on every tile of the task for K block kb ([pc, pc+kc)),
// reading A through `ap` and B from b (or packing it into b_panel when b
// streams).
template <typename T>
void sweep_tiles(const GemmJob<T>& job, const BBlock<T>& b, const TaskTile& tile,
                 const APanels<T>& ap, std::int64_t kb, std::int64_t pc, std::int64_t kc,
                 T* b_panel) {
  const GemmKernel<T>& kern = job.kern;
  const int mr = kern.mr, nr = kern.nr;
  const std::int64_t ic = tile.ic, mcur = tile.rows, j_lo = tile.j_lo, j_hi = tile.j_hi;
  const std::int64_t jc = b.jc, rs_c = job.rs_c, cs_c = job.cs_c;
  const std::int64_t calls = ceil_div(mcur, mr);
  const bool stream = b.packed == nullptr;
  const bool acc = job.accumulate || kb > 0;
  const bool last = kb + 1 == job.k_blocks;
  // The next B micro-panel was packed long before and has fallen out to L3:
  // fetch it into L2 a slice per micro-kernel call, so that the first call on
  // it does not stall. Few micro-panels per task would fetch it in bursts of
  // up to 256 lines per call, which stall the core on its miss buffers; at
  // most kMaxPrefetchPerCall lines then, and the hardware prefetcher follows
  // the rest. A B of more than kBurstB is too large for the hardware
  // prefetcher to keep up with and wants every line fetched ahead.
  const bool prefetch_b = !stream && b.bytes > kSmallB;
  const bool burst_cap = b.bytes <= kBurstB;
  // Streamed panels per packing, as the scratch was sized (macro_kernel).
  const std::int64_t panels = stream_panels(std::min(job.kc, job.k_alloc), nr, sizeof(T));
  for (std::int64_t jr = j_lo; jr < j_hi; jr += nr) {
    const std::int64_t ncur = std::min<std::int64_t>(nr, j_hi - jr);
    const T* bpanel = nullptr;
    if (!stream) {
      bpanel = b.packed + pc * b.ld + (b.j_off + jr) * kc;
    } else {
      const std::int64_t slot = (jr - j_lo) / nr % panels;
      if (slot == 0 && kc > 0) {
        job.b.pack_panels(kern, b_panel, jc + jr, std::min(panels * nr, j_hi - jr), pc, kc);
      }
      bpanel = b_panel + slot * kc * nr;
    }
    const T* b_next = (prefetch_b && jr + nr < j_hi) ? bpanel + kc * nr : nullptr;
    const std::int64_t next_lines = b_next != nullptr ? kc * nr * std::int64_t(sizeof(T)) / 64 : 0;
    const std::int64_t even_share = ceil_div(next_lines, calls);
    const std::int64_t per_call =
        burst_cap ? std::min(even_share, kMaxPrefetchPerCall) : even_share;
    for (std::int64_t ir = 0, q = 0; ir < mcur; ir += mr, ++q) {
      for (std::int64_t l = q * per_call; l < std::min(next_lines, (q + 1) * per_call); ++l) {
        __builtin_prefetch(reinterpret_cast<const char*>(b_next) + 64 * l, 0, 2);
      }
      if (kb == 0 && cs_c == 1 && ir + mr < mcur) {
        // The first K block writes C, which is usually not in cache: ask for
        // the next tile's lines now, so that the kernel's stores do not wait
        // on them (this matters most when K is short).
        prefetch_c_rows(job.c + (ic + ir + mr) * rs_c + jc + jr,
                        std::min<std::int64_t>(mr, mcur - ir - mr), ncur, rs_c);
      }
      TileEpilogue<T> tile_ep;
      kern.fn(kc, ap.ptr[q], ap.ld[q], ap.run[q], ap.step[q], bpanel,
              job.c + (ic + ir) * rs_c + (jc + jr) * cs_c, rs_c, cs_c,
              std::min<std::int64_t>(mr, mcur - ir), ncur, acc,
              tile_epilogue(job.ep, last, ic + ir, jc + jr, tile_ep));
    }
  }
}

}  // namespace

template <typename T>
void macro_kernel(const GemmJob<T>& job, const BBlock<T>& b, const TaskTile& tile,
                  WorkerScratch& scratch) {
  if (tile.rows <= 0 || tile.j_lo >= tile.j_hi) return;
  const int mr = job.kern.mr, nr = job.kern.nr;
  const std::int64_t calls = ceil_div(tile.rows, mr);  // <= kMaxPanelsPerBlock
  const std::int64_t kc_alloc = std::min(job.kc, job.k_alloc);
  const std::int64_t a_size = calls * mr * (kc_alloc + kRowPad<T>);
  const std::int64_t b_size = kc_alloc * nr * stream_panels(kc_alloc, nr, sizeof(T));
  T* packed_a = scratch.primary.as<T>(static_cast<std::size_t>(a_size));
  T* b_panel =
      b.packed == nullptr ? scratch.secondary.as<T>(static_cast<std::size_t>(b_size)) : nullptr;
  APanels<T> ap;
  for (std::int64_t kb = 0; kb < job.k_blocks; ++kb) {
    const std::int64_t pc = kb * job.kc;
    const std::int64_t kc = std::max<std::int64_t>(0, std::min(job.kc, job.k - pc));
    prepare_a_panels(job.a, mr, packed_a, kc + kRowPad<T>, tile.ic, tile.rows, calls, pc, kc, ap);
    sweep_tiles(job, b, tile, ap, kb, pc, kc, b_panel);
  }
  GemmCounters& counters = gemm_counters();
  counters.a_in_place.fetch_add(ap.in_place, std::memory_order_relaxed);
  counters.a_packed.fetch_add(ap.packed, std::memory_order_relaxed);
}

GemmCounters& gemm_counters() {
  static GemmCounters counters;
  return counters;
}

template void macro_kernel<float>(const GemmJob<float>&, const BBlock<float>&, const TaskTile&,
                                  WorkerScratch&);
template void macro_kernel<double>(const GemmJob<double>&, const BBlock<double>&,
                                   const TaskTile&, WorkerScratch&);

}  // namespace convx::detail
