#include "gemm/driver.hpp"

#include <algorithm>
#include <cstring>

#include "common/checked.hpp"
#include "convx/runtime.hpp"
#include "runtime/kernel_table.hpp"
#include "runtime/thread_pool.hpp"

namespace convx::detail {

namespace {

inline std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }
inline std::int64_t round_up(std::int64_t a, std::int64_t b) { return ceil_div(a, b) * b; }

// Below this many flops per extra thread, waking a worker costs more than it saves.
constexpr double kFlopsPerThread = 2.0e6;

int threads_for(std::int64_t m, std::int64_t n, std::int64_t k) {
  const double flops = 2.0 * double(m) * double(n) * double(std::max<std::int64_t>(k, 1));
  const int by_work = static_cast<int>(std::max(1.0, flops / kFlopsPerThread));
  return std::max(1, std::min(num_threads(), by_work));
}

}  // namespace

template <typename T>
void StridedSource<T>::pack(T* dst, std::int64_t r0, std::int64_t rows, std::int64_t k0,
                            std::int64_t kc, int mr) const {
  for (std::int64_t q = 0; q * mr < rows; ++q) {
    const std::int64_t live = std::min<std::int64_t>(mr, rows - q * mr);
    const T* src = data_ + (r0 + q * mr) * rs_ + k0 * cs_;
    T* out = dst + q * kc * mr;
    if (rs_ == 1) {
      // Rows are contiguous: each K step is one short contiguous copy.
      for (std::int64_t p = 0; p < kc; ++p) {
        const T* s = src + p * cs_;
        T* o = out + p * mr;
        for (std::int64_t i = 0; i < live; ++i) o[i] = s[i];
        for (std::int64_t i = live; i < mr; ++i) o[i] = T(0);
      }
    } else {
      // Walk each row along K (contiguous when cs == 1), scattering by mr.
      for (std::int64_t i = 0; i < live; ++i) {
        const T* s = src + i * rs_;
        for (std::int64_t p = 0; p < kc; ++p) out[p * mr + i] = s[p * cs_];
      }
      if (live < mr) {
        for (std::int64_t p = 0; p < kc; ++p) {
          for (std::int64_t i = live; i < mr; ++i) out[p * mr + i] = T(0);
        }
      }
    }
  }
}

template <typename T>
void gemm_blocked(std::int64_t m, std::int64_t n, std::int64_t k, const PanelSource<T>& a,
                  const PanelSource<T>& b, T* c, std::int64_t rs_c, std::int64_t cs_c,
                  bool accumulate, const Epilogue<T>& ep) {
  if (m == 0 || n == 0) return;
  const GemmKernel<T>& kern = gemm_kernel<T>();
  const int mr = kern.mr, nr = kern.nr;
  // KC fixes the summation order, so it must never depend on the thread count.
  const std::int64_t kc_max = kern.kc;
  const std::int64_t k_blocks = std::max<std::int64_t>(1, ceil_div(k, kc_max));
  const int threads = threads_for(m, n, k);

  // N is split so that the packed K x nc block of B stays within ~L3.
  const std::int64_t nc_max = std::max<std::int64_t>(nr, kern.nc / nr * nr);
  for (std::int64_t jc = 0; jc < n; jc += nc_max) {
    const std::int64_t nc = std::min(nc_max, n - jc);
    const std::int64_t nc_pad = round_up(nc, nr);

    // Tasks: M blocks x N chunks. With few M blocks, N is cut too so that
    // every thread gets work. Neither cut changes any element's arithmetic.
    std::int64_t mc = std::min<std::int64_t>(kern.mc, round_up(m, mr));
    std::int64_t m_tasks = ceil_div(m, mc);
    if (threads > 1 && m_tasks % threads != 0 && m_tasks < 4 * threads) {
      // Even out the M blocks so no thread idles at the end.
      m_tasks = round_up(m_tasks, threads);
      mc = round_up(ceil_div(m, m_tasks), mr);
      m_tasks = ceil_div(m, mc);
    }
    std::int64_t n_chunks = 1;
    if (m_tasks < threads) {
      n_chunks = std::min<std::int64_t>(ceil_div(threads, m_tasks), nc_pad / nr);
    }
    const std::int64_t chunk = round_up(ceil_div(nc_pad, n_chunks), nr);
    n_chunks = ceil_div(nc_pad, chunk);

    T* packed_b = nullptr;
    auto setup = [&](AlignedBuffer& shared) {
      packed_b = shared.as<T>(static_cast<std::size_t>(std::max<std::int64_t>(k, 1) * nc_pad));
      for (std::int64_t kb = 0; kb < k_blocks; ++kb) {
        const std::int64_t pc = kb * kc_max;
        const std::int64_t kc = std::min(kc_max, k - pc);
        if (kc > 0) b.pack(packed_b + pc * nc_pad, jc, nc, pc, kc, nr);
      }
    };
    auto task = [&](std::int64_t t, WorkerScratch& scratch) {
      const std::int64_t ic = (t / n_chunks) * mc;
      const std::int64_t mcur = std::min(mc, m - ic);
      const std::int64_t j_lo = (t % n_chunks) * chunk;
      const std::int64_t j_hi = std::min(nc, j_lo + chunk);
      if (mcur <= 0 || j_lo >= j_hi) return;
      T* packed_a = scratch.pack.as<T>(static_cast<std::size_t>(round_up(mcur, mr) *
                                                                std::max<std::int64_t>(
                                                                    std::min(kc_max, k), 1)));
      for (std::int64_t kb = 0; kb < k_blocks; ++kb) {
        const std::int64_t pc = kb * kc_max;
        const std::int64_t kc = std::max<std::int64_t>(0, std::min(kc_max, k - pc));
        if (kc > 0) a.pack(packed_a, ic, mcur, pc, kc, mr);
        const bool acc = accumulate || kb > 0;
        const bool last = kb + 1 == k_blocks;
        const T* bblock = packed_b + pc * nc_pad;
        for (std::int64_t jr = j_lo; jr < j_hi; jr += nr) {
          const std::int64_t ncur = std::min<std::int64_t>(nr, j_hi - jr);
          for (std::int64_t ir = 0; ir < mcur; ir += mr) {
            const std::int64_t mcur_r = std::min<std::int64_t>(mr, mcur - ir);
            TileEpilogue<T> tile_ep;
            if (last) {
              if (ep.bias_mode == BiasMode::PerRow) tile_ep.bias_row = ep.bias + ic + ir;
              if (ep.bias_mode == BiasMode::PerColumn) tile_ep.bias_col = ep.bias + jc + jr;
              tile_ep.relu = ep.activation == Activation::ReLU;
            }
            const bool any_ep = last && (tile_ep.bias_row || tile_ep.bias_col || tile_ep.relu);
            kern.fn(kc, packed_a + ir * kc, bblock + jr * kc,
                    c + (ic + ir) * rs_c + (jc + jr) * cs_c, rs_c, cs_c, mcur_r, ncur, acc,
                    any_ep ? &tile_ep : nullptr);
          }
        }
      }
    };
    run_parallel(m_tasks * n_chunks, threads, setup, task);
  }
}

template class StridedSource<float>;
template class StridedSource<double>;
template void gemm_blocked<float>(std::int64_t, std::int64_t, std::int64_t,
                                  const PanelSource<float>&, const PanelSource<float>&, float*,
                                  std::int64_t, std::int64_t, bool, const Epilogue<float>&);
template void gemm_blocked<double>(std::int64_t, std::int64_t, std::int64_t,
                                   const PanelSource<double>&, const PanelSource<double>&,
                                   double*, std::int64_t, std::int64_t, bool,
                                   const Epilogue<double>&);

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
  const detail::StridedSource<T> sa(a, rs_a, cs_a);
  const detail::StridedSource<T> sb(b, cs_b, rs_b);  // rows of B^T
  detail::gemm_blocked<T>(m, n, k, sa, sb, c, rs_c, cs_c, accumulate, epilogue);
}

template void gemm<float>(std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t,
                          std::int64_t, const float*, std::int64_t, std::int64_t, float*,
                          std::int64_t, std::int64_t, bool, const Epilogue<float>&);
template void gemm<double>(std::int64_t, std::int64_t, std::int64_t, const double*, std::int64_t,
                           std::int64_t, const double*, std::int64_t, std::int64_t, double*,
                           std::int64_t, std::int64_t, bool, const Epilogue<double>&);

}  // namespace convx
