// convx::gemm on every available ISA: every small size, sizes around the
// kernel's blocking, every stride layout, the epilogue, NaN in C, zero sizes,
// thread-count invariance. Data are small integers so sums are exact and the
// naive double-precision product must match bit for bit; one case uses real
// values with a rounding tolerance.
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "check.hpp"
#include "convx/gemm.hpp"
#include "reference.hpp"
#include "kernels/kernel_table.hpp"

namespace {

using std::int64_t;

// Element strides of an r x c matrix stored row-major (or column-major) with
// `pad` extra elements per leading dimension.
struct View {
  int64_t rs, cs, len;
};

View make_view(int64_t rows, int64_t cols, bool col_major, int64_t pad) {
  if (!col_major) {
    const int64_t ld = cols + pad;
    return {ld, 1, rows * ld};
  }
  const int64_t ld = rows + pad;
  return {1, ld, cols * ld};
}

// Bitwise-equal, or both NaN (NaN marks cells gemm must not touch or read).
template <typename T>
bool same(T a, T b) {
  return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, sizeof(T)) == 0;
}

const char* dtype_name(float) { return "f32"; }
const char* dtype_name(double) { return "f64"; }

struct Case {
  int64_t m, n, k;
  bool ta = false, tb = false, tc = false;  // column-major instead of row-major
  int64_t pad = 0;                          // extra elements per leading dimension
  bool accumulate = false;
  convx::BiasMode bias = convx::BiasMode::None;
  bool relu = false;
};

// Runs one case against the naive product; returns false (after reporting) on mismatch.
template <typename T>
bool run_case(const Case& c, std::uint32_t seed) {
  const View va = make_view(c.m, c.k, c.ta, c.pad);
  const View vb = make_view(c.k, c.n, c.tb, c.pad);
  const View vc = make_view(c.m, c.n, c.tc, c.pad);
  const std::vector<T> a = ref::small_ints<T>(va.len, seed);
  const std::vector<T> b = ref::small_ints<T>(vb.len, seed + 1);
  const std::vector<T> bias = ref::small_ints<T>(std::max(c.m, c.n), seed + 2);
  // With accumulate == false C starts as NaN: none of it may reach the result.
  // Padding cells of C start as NaN either way and must stay NaN.
  std::vector<T> got(static_cast<std::size_t>(vc.len), std::numeric_limits<T>::quiet_NaN());
  if (c.accumulate) {
    const std::vector<T> init = ref::small_ints<T>(vc.len, seed + 3);
    for (int64_t i = 0; i < c.m; ++i) {
      for (int64_t j = 0; j < c.n; ++j) {
        const int64_t o = i * vc.rs + j * vc.cs;
        got[static_cast<std::size_t>(o)] = init[static_cast<std::size_t>(o)];
      }
    }
  }
  std::vector<T> want = got;

  convx::Epilogue<T> ep;
  ep.bias_mode = c.bias;
  ep.bias = c.bias == convx::BiasMode::None ? nullptr : bias.data();
  ep.activation = c.relu ? convx::Activation::ReLU : convx::Activation::None;
  convx::gemm<T>(c.m, c.n, c.k, a.data(), va.rs, va.cs, b.data(), vb.rs, vb.cs, got.data(), vc.rs,
                 vc.cs, c.accumulate, ep);
  ref::gemm_naive<T>(c.m, c.n, c.k, a.data(), va.rs, va.cs, b.data(), vb.rs, vb.cs, want.data(),
                     vc.rs, vc.cs, c.accumulate, ep);

  for (std::size_t i = 0; i < want.size(); ++i) {
    if (!same(got[i], want[i])) {
      CONTEXT(dtype_name(T{}), " m=", c.m, " n=", c.n, " k=", c.k, " a:", c.ta ? "col" : "row",
              " b:", c.tb ? "col" : "row", " c:", c.tc ? "col" : "row", " pad=", c.pad,
              " accumulate=", c.accumulate, " bias=", static_cast<int>(c.bias), " relu=", c.relu);
      ::check::fail(__FILE__, __LINE__,
                    ::check::str("C buffer offset ", i, ": got ", got[i], ", want ", want[i]));
      return false;
    }
  }
  return true;
}

template <typename T>
void every_small_size() {
  int failures = 0;
  for (int64_t m = 1; m <= 20; ++m) {
    for (int64_t n = 1; n <= 20; ++n) {
      for (int64_t k = 1; k <= 20; ++k) {
        // Rotate through the eight row/column-major combinations so every
        // size meets several of them without multiplying the run time.
        const int64_t v = (m + 3 * n + 5 * k) % 8;
        for (bool acc : {false, true}) {
          Case c{m, n, k, (v & 1) != 0, (v & 2) != 0, (v & 4) != 0, (m + n) % 3, acc};
          if (!run_case<T>(c, static_cast<std::uint32_t>(m * 400 + n * 20 + k)) && ++failures > 5) {
            return;
          }
        }
      }
    }
  }
}

TEST_CASE_ISA("gemm: every m, n, k in 1..20, both accumulate modes") {
  every_small_size<float>();
  every_small_size<double>();
}

template <typename T>
void around_blocking() {
  const auto& kern = convx::detail::kernels_for<T>(convx::active_isa()).gemm;
  const int64_t mr = kern.mr, nr = kern.nr, mc = kern.mc, kc = kern.kc, nc = kern.nc;
  CONTEXT(kern.name, " mr=", mr, " nr=", nr, " mc=", mc, " kc=", kc, " nc=", nc);
  const Case cases[] = {
      {mr - 1, nr - 1, kc - 1},
      {mr + 1, nr + 1, kc + 1, false, false, false, 0, true},
      {2 * mr, 2 * nr, kc},
      {mc - 1, 2 * nr + 1, kc + 1, true, false, false, 1},
      {mc, nr, 2 * kc + 1, false, true, false, 0, true, convx::BiasMode::PerRow, true},
      {mc + 1, 3 * nr - 1, kc - 1, false, false, true, 2, false, convx::BiasMode::PerColumn},
      {2 * mc + mr + 1, nr + 3, 2 * kc + 1, true, true, true, 0, true, convx::BiasMode::PerColumn, true},
      {3, nc + 1, 5, false, true, false, 0, false, convx::BiasMode::PerRow},
      {mr + 2, nc - 1, kc + 1, false, false, true, 1, true},
      {1, 1, 4 * kc + 3, true, true, false, 0, false, convx::BiasMode::PerRow, true},
  };
  for (const Case& c : cases) run_case<T>(c, static_cast<std::uint32_t>(c.m + c.n + c.k));
}

TEST_CASE_ISA("gemm: sizes around the kernel's MR, NR, MC, KC, NC") {
  around_blocking<float>();
  around_blocking<double>();
}

template <typename T>
void every_layout() {
  for (int tbits = 0; tbits < 8; ++tbits) {
    for (int64_t pad : {0, 3}) {
      for (bool acc : {false, true}) {
        Case c{37, 29, 41, (tbits & 1) != 0, (tbits & 2) != 0, (tbits & 4) != 0, pad, acc};
        run_case<T>(c, static_cast<std::uint32_t>(tbits * 10 + pad));
      }
    }
  }
}

TEST_CASE_ISA("gemm: row- and column-major A, B, C with padded leading dimensions") {
  every_layout<float>();
  every_layout<double>();
}

template <typename T>
void epilogues() {
  const convx::BiasMode modes[] = {convx::BiasMode::None, convx::BiasMode::PerRow,
                                   convx::BiasMode::PerColumn};
  const int64_t sizes[] = {1, 3, 7, 16, 17, 33};
  for (convx::BiasMode mode : modes) {
    for (bool relu : {false, true}) {
      for (bool acc : {false, true}) {
        for (int64_t m : sizes) {
          for (int64_t n : sizes) {
            // k = 300 spans two K blocks of every kernel: the epilogue must
            // apply once, after the last.
            for (int64_t k : {int64_t{2}, int64_t{300}}) {
              Case c{m, n, k, false, (m & 1) != 0, (n & 1) != 0, 0, acc, mode, relu};
              run_case<T>(c, static_cast<std::uint32_t>(m * 100 + n + k));
            }
          }
        }
      }
    }
  }
}

TEST_CASE_ISA("gemm: epilogue bias per row and per column, ReLU, after accumulation") {
  epilogues<float>();
  epilogues<double>();
}

template <typename T>
void nan_never_leaks() {
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const int64_t m = 13, n = 11, k = 9;
  const std::vector<T> a = ref::small_ints<T>(m * k, 1), b = ref::small_ints<T>(k * n, 2);
  std::vector<T> c(static_cast<std::size_t>(m * n), nan);
  convx::gemm<T>(m, n, k, a.data(), k, 1, b.data(), n, 1, c.data(), n, 1, false);
  for (T v : c) CHECK(!std::isnan(v));
  std::fill(c.begin(), c.end(), std::numeric_limits<T>::infinity());
  convx::Epilogue<T> ep;
  ep.activation = convx::Activation::ReLU;
  convx::gemm<T>(m, n, k, a.data(), k, 1, b.data(), n, 1, c.data(), n, 1, false, ep);
  for (T v : c) CHECK(std::isfinite(v) && v >= T(0));
}

TEST_CASE_ISA("gemm: NaN or Inf in C never leaks when accumulate is false") {
  nan_never_leaks<float>();
  nan_never_leaks<double>();
}

template <typename T>
void zero_sizes() {
  std::vector<T> c(12, T(7));
  // m == 0 or n == 0: nothing is written, and a, b and c may be null.
  convx::gemm<T>(0, 3, 4, nullptr, 4, 1, nullptr, 3, 1, nullptr, 3, 1, false);
  convx::gemm<T>(3, 0, 4, nullptr, 4, 1, nullptr, 3, 1, nullptr, 3, 1, false);
  // k == 0: C = 0 (+ bias, ReLU), or C unchanged when accumulating.
  convx::gemm<T>(3, 4, 0, nullptr, 1, 1, nullptr, 4, 1, c.data(), 4, 1, true);
  for (T v : c) CHECK_EQ(v, T(7));
  convx::gemm<T>(3, 4, 0, nullptr, 1, 1, nullptr, 4, 1, c.data(), 4, 1, false);
  for (T v : c) CHECK_EQ(v, T(0));
  const T bias[4] = {-1, 2, -3, 4};
  convx::Epilogue<T> ep{bias, convx::BiasMode::PerColumn, convx::Activation::ReLU};
  convx::gemm<T>(3, 4, 0, nullptr, 1, 1, nullptr, 4, 1, c.data(), 4, 1, false, ep);
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t j = 0; j < 4; ++j) CHECK_EQ(c[static_cast<std::size_t>(i * 4 + j)], std::max(T(0), bias[j]));
  }
}

TEST_CASE_ISA("gemm: zero m, n or k") {
  zero_sizes<float>();
  zero_sizes<double>();
}

template <typename T>
void real_values(double rtol) {
  for (int64_t s : {1, 5, 64, 200, 301}) {
    const int64_t m = s, n = s + 3, k = 2 * s + 1;
    const std::vector<T> a = ref::uniform<T>(m * k, 11), b = ref::uniform<T>(k * n, 12);
    std::vector<T> c(static_cast<std::size_t>(m * n));
    convx::gemm<T>(m, n, k, a.data(), 1, m, b.data(), n, 1, c.data(), n, 1, false);
    std::vector<double> want(c.size(), 0.0);
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        for (int64_t p = 0; p < k; ++p) {
          want[static_cast<std::size_t>(i * n + j)] +=
              double(a[static_cast<std::size_t>(i + p * m)]) * double(b[static_cast<std::size_t>(p * n + j)]);
        }
      }
    }
    // Each |term| < 1, so |error| <= ~k*eps; scale the tolerance by sqrt(k).
    const double atol = rtol * std::sqrt(double(k));
    const int64_t bad = ref::first_mismatch(c.data(), want, rtol, atol);
    CONTEXT("m=", m, " n=", n, " k=", k);
    CHECK_EQ(bad, int64_t{-1});
  }
}

TEST_CASE_ISA("gemm: real-valued data within rounding of the exact product") {
  real_values<float>(1e-5);
  real_values<double>(1e-13);
}

TEST_CASE("gemm: results are bitwise identical for 1, 2 and 3 threads") {
  const int saved = convx::num_threads();
  const int64_t m = 301, n = 157, k = 270;
  const std::vector<float> a = ref::uniform<float>(m * k, 5), b = ref::uniform<float>(k * n, 6);
  std::vector<std::vector<float>> results;
  for (int t : {1, 2, 3}) {
    convx::set_num_threads(t);
    std::vector<float> c(static_cast<std::size_t>(m * n));
    convx::gemm<float>(m, n, k, a.data(), k, 1, b.data(), n, 1, c.data(), n, 1, false);
    results.push_back(std::move(c));
  }
  convx::set_num_threads(saved);
  CHECK(std::memcmp(results[0].data(), results[1].data(), results[0].size() * sizeof(float)) == 0);
  CHECK(std::memcmp(results[0].data(), results[2].data(), results[0].size() * sizeof(float)) == 0);
}

}  // namespace
