// The micro-kernel contract of kernels/ukernel.hpp, checked directly on the
// kernel each ISA selects: every partial tile m <= MR, n <= NR, short and long
// K, strided C, accumulate, the epilogue, and that nothing outside the m x n
// corner is touched. This is the one shared tester every kernel goes through.
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "check.hpp"
#include "kernels/ukernel.hpp"
#include "reference.hpp"
#include "kernels/kernel_table.hpp"

namespace {

using std::int64_t;

template <typename T>
void check_kernel() {
  const convx::detail::GemmKernel<T>& kern = convx::detail::kernels_for<T>(convx::active_isa()).gemm;
  const int64_t mr = kern.mr, nr = kern.nr;
  REQUIRE(kern.fn != nullptr && mr >= 1 && nr >= 1);
  CONTEXT(kern.name);
  const T nan = std::numeric_limits<T>::quiet_NaN();
  int failures = 0;

  for (int64_t k : {0, 1, 2, 3, 8, 17, 64}) {
    for (int64_t lda_pad : {0, 5}) {
      const int64_t lda = k + lda_pad;
      // A: MR rows of stride lda; B: k steps of NR values, 64-byte aligned.
      std::vector<T> a_rows = ref::small_ints<T>(mr * std::max<int64_t>(lda, 1), 3);
      ref::AlignedArray<T> b(static_cast<std::size_t>(std::max<int64_t>(k * nr, 1)));
      const std::vector<T> b_vals = ref::small_ints<T>(k * nr, 4);
      const std::vector<T> bias_r = ref::small_ints<T>(mr, 5), bias_c = ref::small_ints<T>(nr, 6);

      for (int64_t m = 1; m <= mr; ++m) {
        for (int64_t n = 1; n <= nr; ++n) {
          // The packer's zero fill: rows >= m of A and columns >= n of B.
          std::vector<T> a = a_rows;
          for (int64_t i = m; i < mr; ++i) {
            for (int64_t p = 0; p < lda; ++p) a[static_cast<std::size_t>(i * lda + p)] = T(0);
          }
          for (int64_t p = 0; p < k; ++p) {
            for (int64_t j = 0; j < nr; ++j) {
              b[static_cast<std::size_t>(p * nr + j)] = j < n ? b_vals[static_cast<std::size_t>(p * nr + j)] : T(0);
            }
          }
          for (int variant = 0; variant < 4; ++variant) {
            const bool accumulate = (variant & 1) != 0;
            const bool col_major = (variant & 2) != 0;
            // C lives in a larger NaN-filled buffer: only the m x n corner may change.
            const int64_t ld = (col_major ? m : n) + 2;
            const int64_t rs = col_major ? 1 : ld, cs = col_major ? ld : 1;
            const int64_t len = (col_major ? n : m) * ld + 4;
            std::vector<T> c(static_cast<std::size_t>(len), nan);
            const std::vector<T> init = ref::small_ints<T>(len, 7);
            if (accumulate) {
              for (int64_t i = 0; i < m; ++i) {
                for (int64_t j = 0; j < n; ++j) c[static_cast<std::size_t>(i * rs + j * cs)] = init[static_cast<std::size_t>(i * rs + j * cs)];
              }
            }
            std::vector<T> want = c;
            // Epilogue on every other call: row bias, column bias and ReLU in turn.
            convx::detail::TileEpilogue<T> ep;
            const int which = static_cast<int>((m + n + k) % 3);
            if (which == 1) ep.bias_row = bias_r.data();
            if (which == 2) ep.bias_col = bias_c.data();
            ep.relu = ((m * n) & 1) != 0;
            const bool use_ep = ((m + n + variant) & 1) != 0;

            for (int64_t i = 0; i < m; ++i) {
              for (int64_t j = 0; j < n; ++j) {
                double s = accumulate ? double(want[static_cast<std::size_t>(i * rs + j * cs)]) : 0.0;
                for (int64_t p = 0; p < k; ++p) {
                  s += double(a[static_cast<std::size_t>(i * lda + p)]) * double(b[static_cast<std::size_t>(p * nr + j)]);
                }
                if (use_ep) {
                  if (ep.bias_row != nullptr) s += double(ep.bias_row[i]);
                  if (ep.bias_col != nullptr) s += double(ep.bias_col[j]);
                  if (ep.relu && !(s > 0.0)) s = 0.0;
                }
                want[static_cast<std::size_t>(i * rs + j * cs)] = T(s);
              }
            }
            kern.fn(k, a.data(), lda, k, 0, b.data(), c.data(), rs, cs, m, n, accumulate,
                    use_ep ? &ep : nullptr);
            for (std::size_t e = 0; e < c.size(); ++e) {
              const bool ok = (std::isnan(c[e]) && std::isnan(want[e])) || c[e] == want[e];
              if (!ok) {
                CONTEXT("m=", m, " n=", n, " k=", k, " lda=", lda, " accumulate=", accumulate,
                        " C ", col_major ? "column" : "row", "-major, epilogue=", use_ep);
                ::check::fail(__FILE__, __LINE__,
                              ::check::str("C offset ", e, ": got ", c[e], ", want ", want[e]));
                if (++failures > 5) return;
                break;
              }
            }
          }
        }
      }
    }
  }
}

TEST_CASE_ISA("ukernel: every partial tile, K, C layout, accumulate and epilogue") {
  check_kernel<float>();
  check_kernel<double>();
}

// A read in runs (a patch in place in the image, one run per kernel row):
// A(i, p) = a[i*lda + (p / run)*step + p % run]. Every run length against a
// full tile, including runs that do not divide K and runs of one value.
template <typename T>
void check_runs() {
  const convx::detail::GemmKernel<T>& kern = convx::detail::kernels_for<T>(convx::active_isa()).gemm;
  const int64_t mr = kern.mr, nr = kern.nr;
  CONTEXT(kern.name);
  for (int64_t k : {1, 7, 21, 40, 147}) {
    for (int64_t run : {1, 3, 8, 9, 21, 64}) {
      if (run > k && run != 64) continue;
      const int64_t lda = 6, step = 211;  // rows overlap; runs far apart
      const int64_t runs = (k + run - 1) / run;
      const int64_t span = (mr - 1) * lda + (runs - 1) * step + run;
      const std::vector<T> a = ref::small_ints<T>(span, 11);
      ref::AlignedArray<T> b(static_cast<std::size_t>(k * nr));
      const std::vector<T> b_vals = ref::small_ints<T>(k * nr, 12);
      for (int64_t e = 0; e < k * nr; ++e) b[static_cast<std::size_t>(e)] = b_vals[static_cast<std::size_t>(e)];
      for (bool accumulate : {false, true}) {
        std::vector<T> c = ref::small_ints<T>(mr * nr, 13);
        std::vector<T> want = c;
        for (int64_t i = 0; i < mr; ++i) {
          for (int64_t j = 0; j < nr; ++j) {
            double s = accumulate ? double(want[static_cast<std::size_t>(i * nr + j)]) : 0.0;
            for (int64_t p = 0; p < k; ++p) {
              const int64_t at = i * lda + (p / run) * step + p % run;
              s += double(a[static_cast<std::size_t>(at)]) * double(b_vals[static_cast<std::size_t>(p * nr + j)]);
            }
            want[static_cast<std::size_t>(i * nr + j)] = T(s);
          }
        }
        kern.fn(k, a.data(), lda, run, step, b.data(), c.data(), nr, 1, mr, nr, accumulate,
                nullptr);
        CONTEXT("k=", k, " run=", run, " accumulate=", accumulate);
        CHECK(c == want);
      }
    }
  }
}

TEST_CASE_ISA("ukernel: A read in runs, as a patch in place in an image") {
  check_runs<float>();
  check_runs<double>();
}

}  // namespace
