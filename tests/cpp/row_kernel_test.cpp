// The row-kernel contracts of kernels/direct.hpp and kernels/dwconv.hpp,
// checked directly on the kernels each path has (kernels_for(isa)) against a
// plain double sum written from the contract: channel counts around the
// kernel's vector width, rows of 1-9 pixels, every filter of 1-3 x 1-3,
// strides and dilations of 1-2, paddings of 0-2, ReLU, bias, and several rows
// per call for the direct kernel. Data are small integers, so every sum is
// exact and the outputs must match exactly; values around the output must
// stay untouched. This is the one shared tester every row kernel goes through,
// as ukernel_test.cpp is for the GEMM micro-kernels.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "check.hpp"
#include "kernels/direct.hpp"
#include "kernels/dwconv.hpp"
#include "reference.hpp"
#include "kernels/kernel_table.hpp"

namespace {

using std::int64_t;
using convx::detail::DirectKernel;
using convx::detail::DirectRow;
using convx::detail::DwKernel;
using convx::detail::DwRow;
using convx::detail::RowGeometry;

// v[i] for the signed indices the geometry uses.
template <typename V>
auto& at(V& v, int64_t i) {
  return v[static_cast<std::size_t>(i)];
}

// One call's geometry. pad_right / pad_bottom only size the image: negative,
// the image extends past what the output reads.
struct Case {
  int64_t channels = 1;  // c_out of a direct kernel, channels of a depthwise one
  int64_t c_in = 1;      // direct only
  int64_t w_out = 1, k_h = 1, k_w = 1, s_h = 1, s_w = 1, d_h = 1, d_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int64_t oh = 0, rows = 1;
  bool relu = false, bias = true;

  int64_t h() const {
    const int64_t span = (oh + rows - 1) * s_h + (k_h - 1) * d_h + 1;
    return std::max<int64_t>(1, span - pad_top - pad_bottom);
  }
  int64_t w_in() const {
    const int64_t span = (w_out - 1) * s_w + (k_w - 1) * d_w + 1;
    return std::max<int64_t>(1, span - pad_left - pad_right);
  }
  std::string describe() const {
    return check::str("channels=", channels, " c_in=", c_in, " w_out=", w_out, " k=", k_h, "x",
                      k_w, " stride=", s_h, ",", s_w, " dilation=", d_h, ",", d_w,
                      " pad top/left/bottom/right=", pad_top, "/", pad_left, "/", pad_bottom,
                      "/", pad_right, " oh=", oh, " rows=", rows, " relu=", relu,
                      " bias=", bias, " (image ", h(), "x", w_in(), ")");
  }
};

void set_geometry(RowGeometry& r, const Case& c) {
  r.h = c.h();
  r.w_in = c.w_in();
  r.k_h = c.k_h;
  r.k_w = c.k_w;
  r.oh = c.oh;
  r.w_out = c.w_out;
  r.s_h = c.s_h;
  r.s_w = c.s_w;
  r.d_h = c.d_h;
  r.d_w = c.d_w;
  r.pad_top = c.pad_top;
  r.pad_left = c.pad_left;
}

// Channel counts: every count up to two vectors and one more, then the
// neighbours of the kernels' wider blocks (four vectors, and the 8/16/32
// channel blocks of the generic depthwise body).
std::vector<int64_t> channel_counts(int64_t lanes) {
  std::set<int64_t> counts;
  for (int64_t c = 1; c <= 2 * lanes + 1; ++c) counts.insert(c);
  for (int64_t c : {3 * lanes, 4 * lanes - 1, 4 * lanes, 4 * lanes + 1, 5 * lanes + 3}) {
    counts.insert(c);
  }
  for (int64_t c : {7, 8, 9, 15, 16, 17, 31, 32, 33, 48, 64}) counts.insert(c);
  return {counts.begin(), counts.end()};
}

// Two sweeps: every channel count x row width x filter size with the rest
// drawn at random, then every filter size x stride x dilation x padding x
// ReLU with the sizes drawn at random. `direct` adds c_in (the patch stays
// within kMaxDirectPatch) and several rows per call.
std::vector<Case> sweep(int64_t lanes, bool direct) {
  std::mt19937 gen(lanes * 2 + (direct ? 1 : 0));
  auto pick = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(gen);
  };
  const std::vector<int64_t> channels = channel_counts(lanes);
  auto finish = [&](Case& c) {
    c.c_in = direct ? pick(1, convx::detail::kMaxDirectPatch / (c.k_h * c.k_w)) : 1;
    c.rows = direct ? pick(1, 3) : 1;
    c.oh = pick(0, 2);
    c.pad_bottom = pick(-1, 2);
    c.pad_right = pick(-1, 2);
    c.bias = pick(0, 3) != 0;
  };
  std::vector<Case> cases;
  for (int64_t ch : channels) {
    for (int64_t w_out = 1; w_out <= 9; ++w_out) {
      for (int64_t k = 0; k < 9; ++k) {
        Case c;
        c.channels = ch;
        c.w_out = w_out;
        c.k_h = 1 + k / 3;
        c.k_w = 1 + k % 3;
        c.s_h = pick(1, 2);
        c.s_w = pick(1, 2);
        c.d_h = pick(1, 2);
        c.d_w = pick(1, 2);
        c.pad_top = pick(0, 2);
        c.pad_left = pick(0, 2);
        c.relu = pick(0, 1) != 0;
        finish(c);
        cases.push_back(c);
      }
    }
  }
  for (int64_t k = 0; k < 9; ++k) {
    for (int64_t sd = 0; sd < 16; ++sd) {
      for (int64_t pad = 0; pad < 9; ++pad) {
        for (bool relu : {false, true}) {
          Case c;
          c.channels = at(channels, pick(0, int64_t(channels.size()) - 1));
          c.w_out = pick(1, 9);
          c.k_h = 1 + k / 3;
          c.k_w = 1 + k % 3;
          c.s_h = 1 + (sd & 1);
          c.s_w = 1 + ((sd >> 1) & 1);
          c.d_h = 1 + ((sd >> 2) & 1);
          c.d_w = 1 + ((sd >> 3) & 1);
          c.pad_top = pad / 3;
          c.pad_left = pad % 3;
          c.relu = relu;
          finish(c);
          cases.push_back(c);
        }
      }
    }
  }
  return cases;
}

double act(double s, bool relu) { return relu && s < 0.0 ? 0.0 : s; }

// The output lives `guard` values into a NaN-filled buffer; the kernel must
// write exactly `want` there and nothing around it. Reports the first wrong
// value; returns whether all were right.
template <typename T>
bool check_output(const std::vector<T>& buf, int64_t guard, const std::vector<double>& want,
                  const Case& c) {
  for (std::size_t e = 0; e < buf.size(); ++e) {
    const int64_t pos = int64_t(e) - guard;
    const bool inside = pos >= 0 && pos < int64_t(want.size());
    const bool ok = inside ? double(buf[e]) == at(want, pos) : std::isnan(buf[e]);
    if (!ok) {
      CONTEXT(c.describe());
      ::check::fail(__FILE__, __LINE__,
                    inside ? check::str("output ", pos, ": got ", buf[e], ", want ", at(want, pos))
                           : check::str("wrote outside the output (", want.size(),
                                        " values), at ", pos));
      return false;
    }
  }
  return true;
}

template <typename T>
std::vector<T> guarded(int64_t len, int64_t guard) {
  return std::vector<T>(static_cast<std::size_t>(len + 2 * guard),
                        std::numeric_limits<T>::quiet_NaN());
}

// y[i, ow, m] for i < rows: the sum in direct.hpp, over taps inside the image.
template <typename T>
bool check_direct(const DirectKernel<T>& kern, const Case& c, std::uint32_t seed) {
  const int64_t h = c.h(), w_in = c.w_in(), c_in = c.c_in, c_out = c.channels;
  const int64_t K = c.k_h * c.k_w * c_in;
  const int64_t ld = (c_out + kern.lanes - 1) / kern.lanes * kern.lanes;
  const std::vector<T> x = ref::small_ints<T>(h * w_in * c_in, seed);
  const std::vector<T> w = ref::small_ints<T>(K * c_out, seed + 1);
  const std::vector<T> b = ref::small_ints<T>(c_out, seed + 2);
  std::vector<T> wt(static_cast<std::size_t>(K * ld), T(0));
  std::vector<T> bias(static_cast<std::size_t>(ld), T(0));
  for (int64_t t = 0; t < K; ++t) {
    for (int64_t m = 0; m < c_out; ++m) at(wt, t * ld + m) = at(w, t * c_out + m);
  }
  if (c.bias) std::copy(b.begin(), b.end(), bias.begin());
  std::vector<int64_t> off(static_cast<std::size_t>(K));
  for (int64_t u = 0; u < c.k_h; ++u) {
    for (int64_t v = 0; v < c.k_w; ++v) {
      for (int64_t ch = 0; ch < c_in; ++ch) {
        at(off, (u * c.k_w + v) * c_in + ch) = (u * c.d_h * w_in + v * c.d_w) * c_in + ch;
      }
    }
  }
  const int64_t len = c.rows * c.w_out * c_out, guard = 2 * kern.lanes + 3;
  std::vector<T> buf = guarded<T>(len, guard);

  DirectRow<T> r;
  set_geometry(r, c);
  r.x = x.data();
  r.wt = wt.data();
  r.bias = bias.data();
  r.off = off.data();
  r.y = buf.data() + guard;
  r.c_in = c_in;
  r.c_out = c_out;
  r.ld = ld;
  r.rows = c.rows;
  r.relu = c.relu;
  kern.fn(r);

  std::vector<double> want(static_cast<std::size_t>(len));
  for (int64_t i = 0; i < c.rows; ++i) {
    for (int64_t ow = 0; ow < c.w_out; ++ow) {
      for (int64_t m = 0; m < c_out; ++m) {
        double s = double(at(bias, m));
        for (int64_t u = 0; u < c.k_h; ++u) {
          const int64_t ih = (c.oh + i) * c.s_h - c.pad_top + u * c.d_h;
          for (int64_t v = 0; v < c.k_w; ++v) {
            const int64_t iw = ow * c.s_w - c.pad_left + v * c.d_w;
            if (ih < 0 || ih >= h || iw < 0 || iw >= w_in) continue;
            for (int64_t ch = 0; ch < c_in; ++ch) {
              s += double(at(x, (ih * w_in + iw) * c_in + ch)) *
                   double(at(wt, ((u * c.k_w + v) * c_in + ch) * ld + m));
            }
          }
        }
        at(want, (i * c.w_out + ow) * c_out + m) = act(s, c.relu);
      }
    }
  }
  return check_output(buf, guard, want, c);
}

// y[ow, ch]: the sum in dwconv.hpp, over taps inside the image.
template <typename T>
bool check_dwconv(const DwKernel<T>& kern, const Case& c, std::uint32_t seed) {
  const int64_t h = c.h(), w_in = c.w_in(), C = c.channels;
  const std::vector<T> x = ref::small_ints<T>(h * w_in * C, seed);
  const std::vector<T> w = ref::small_ints<T>(c.k_h * c.k_w * C, seed + 1);
  const std::vector<T> bias = ref::small_ints<T>(C, seed + 2);
  const int64_t len = c.w_out * C, guard = 2 * kern.lanes + 3;
  std::vector<T> buf = guarded<T>(len, guard);

  DwRow<T> r;
  set_geometry(r, c);
  r.x = x.data();
  r.w = w.data();
  r.bias = c.bias ? bias.data() : nullptr;
  r.y = buf.data() + guard;
  r.channels = C;
  r.relu = c.relu;
  kern.fn(r);

  std::vector<double> want(static_cast<std::size_t>(len));
  for (int64_t ow = 0; ow < c.w_out; ++ow) {
    for (int64_t ch = 0; ch < C; ++ch) {
      double s = c.bias ? double(at(bias, ch)) : 0.0;
      for (int64_t u = 0; u < c.k_h; ++u) {
        const int64_t ih = c.oh * c.s_h - c.pad_top + u * c.d_h;
        for (int64_t v = 0; v < c.k_w; ++v) {
          const int64_t iw = ow * c.s_w - c.pad_left + v * c.d_w;
          if (ih < 0 || ih >= h || iw < 0 || iw >= w_in) continue;
          s += double(at(x, (ih * w_in + iw) * C + ch)) *
               double(at(w, (u * c.k_w + v) * C + ch));
        }
      }
      at(want, ow * C + ch) = act(s, c.relu);
    }
  }
  return check_output(buf, guard, want, c);
}

// Runs `check_case` for a kernel over the sweep of its vector width,
// stopping after a few failing cases (each is reported with its geometry).
template <typename Kernel, typename CheckCase>
void run_sweep(const Kernel& kern, bool direct, CheckCase check_case) {
  REQUIRE(kern.fn != nullptr && kern.lanes >= 1);
  CONTEXT(kern.name);
  int failures = 0;
  std::uint32_t seed = 1;
  for (const Case& c : sweep(kern.lanes, direct)) {
    if (!check_case(kern, c, seed += 3) && ++failures >= 5) return;
  }
}

TEST_CASE_ISA("row kernels: direct, every channel count, filter, stride, dilation and padding") {
  run_sweep(convx::detail::kernels_for<float>(isa).direct, true, &check_direct<float>);
  run_sweep(convx::detail::kernels_for<double>(isa).direct, true, &check_direct<double>);
}

TEST_CASE_ISA("row kernels: depthwise, every channel count, filter, stride, dilation and padding") {
  run_sweep(convx::detail::kernels_for<float>(isa).dw, false, &check_dwconv<float>);
  run_sweep(convx::detail::kernels_for<double>(isa).dw, false, &check_dwconv<double>);
}

// Every kernel's name says its dtype, its family and the path it was built for.
template <typename T>
void check_names(convx::Isa isa, const char* dtype) {
  const convx::detail::KernelSet<T>& ks = convx::detail::kernels_for<T>(isa);
  CHECK(ks.isa == isa);
  CHECK(ks.gemm.fn != nullptr && ks.dw.fn != nullptr && ks.direct.fn != nullptr);
  const std::string suffix = std::string(" ") + convx::isa_name(isa);
  for (const char* name : {ks.gemm.name, ks.dw.name, ks.direct.name}) {
    CONTEXT("name '", name, "'");
    const std::string s(name);
    CHECK(s.rfind(std::string(dtype) + " ", 0) == 0);
    CHECK(s.size() > suffix.size() &&
          s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0);
  }
  CHECK(std::string(ks.direct.name).find(check::str(" direct ", ks.direct.lanes, "-lane ")) !=
        std::string::npos);
  CHECK(std::string(ks.dw.name).find(check::str(" dwconv ", ks.dw.lanes, "-lane ")) !=
        std::string::npos);
  CHECK(std::string(ks.gemm.name).find(check::str(" ", ks.gemm.mr, "x", ks.gemm.nr, " ")) !=
        std::string::npos);
}

TEST_CASE_ISA("kernel table: every path has all three families, named by dtype, tile and ISA") {
  check_names<float>(isa, "f32");
  check_names<double>(isa, "f64");
}

TEST_CASE("kernel table: a path this build or CPU lacks is refused") {
  int refused = 0;
  for (convx::Isa isa : {convx::Isa::Scalar, convx::Isa::AVX2, convx::Isa::AVX512}) {
    if (convx::isa_available(isa)) continue;
    CONTEXT("isa=", convx::isa_name(isa));
    CHECK_THROWS_WITH(convx::detail::kernels_for<float>(isa), std::invalid_argument,
                      "not available");
    CHECK_THROWS_WITH(convx::detail::kernels_for<double>(isa), std::invalid_argument,
                      "not available");
    ++refused;
  }
  if (refused == 0) SKIP("every path is available here");
}

}  // namespace
