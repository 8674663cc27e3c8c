// The backward operators and the transposed convolution against the sums that
// define them (small integers, so every result is exact), in both layouts
// and dtypes, on every available ISA, plus bitwise determinism across thread
// counts.
#include <cmath>
#include <cstring>
#include <string>
#include <limits>
#include <vector>

#include "check.hpp"
#include "reference.hpp"

namespace {

using convx::ConvShape;
using convx::Layout;
using std::int64_t;

// dx, dw and db of y = conv(x, w) + b for the upstream gradient dy, summed
// directly in double over every (output, tap) pair.
struct Grads {
  std::vector<double> dx, dw, db;
};

template <typename T>
Grads reference_grads(const ConvShape& s, const T* x, const T* w, const T* dy) {
  Grads r{std::vector<double>(static_cast<std::size_t>(s.input_size())),
          std::vector<double>(static_cast<std::size_t>(s.weight_size())),
          std::vector<double>(static_cast<std::size_t>(s.c_out))};
  const int64_t cg = s.c_in_per_group(), mg = s.c_out_per_group();
  for (int64_t b = 0; b < s.n; ++b) {
    for (int64_t i = 0; i < s.h_out; ++i) {
      for (int64_t j = 0; j < s.w_out; ++j) {
        for (int64_t m = 0; m < s.c_out; ++m) {
          const double g_out = static_cast<double>(dy[ref::y_index(s, b, i, j, m)]);
          r.db[static_cast<std::size_t>(m)] += g_out;
          for (int64_t u = 0; u < s.k_h; ++u) {
            for (int64_t v = 0; v < s.k_w; ++v) {
              const int64_t row = i * s.p.stride_h + u * s.p.dilation_h - s.p.pad.top;
              const int64_t col = j * s.p.stride_w + v * s.p.dilation_w - s.p.pad.left;
              if (row < 0 || row >= s.h || col < 0 || col >= s.w) continue;
              for (int64_t q = 0; q < cg; ++q) {
                const int64_t xi = ref::x_index(s, b, row, col, (m / mg) * cg + q);
                const int64_t wi = ref::w_index(s, m, u, v, q);
                r.dx[static_cast<std::size_t>(xi)] += g_out * static_cast<double>(w[wi]);
                r.dw[static_cast<std::size_t>(wi)] += g_out * static_cast<double>(x[xi]);
              }
            }
          }
        }
      }
    }
  }
  return r;
}

template <typename T>
bool grads_match(const ConvShape& s, std::uint32_t seed) {
  const std::vector<T> x = ref::small_ints<T>(s.input_size(), seed);
  const std::vector<T> w = ref::small_ints<T>(s.weight_size(), seed + 1);
  const std::vector<T> dy = ref::small_ints<T>(s.output_size(), seed + 2);
  const Grads want = reference_grads(s, x.data(), w.data(), dy.data());
  const T nan = std::numeric_limits<T>::quiet_NaN();
  std::vector<T> dx(want.dx.size(), nan), dw(want.dw.size(), nan), db(want.db.size(), nan);
  convx::conv2d_backward_data<T>(s, dy.data(), w.data(), dx.data());
  convx::conv2d_backward_weights<T>(s, x.data(), dy.data(), dw.data(), db.data());
  const bool ok = ref::first_mismatch(dx.data(), want.dx, 0.0, 0.0) < 0 &&
                  ref::first_mismatch(dw.data(), want.dw, 0.0, 0.0) < 0 &&
                  ref::first_mismatch(db.data(), want.db, 0.0, 0.0) < 0;
  if (!ok) {
    CONTEXT(ref::describe(s), " dtype=", sizeof(T) == 4 ? "f32" : "f64");
    ::check::fail(__FILE__, __LINE__, "a gradient differs from its defining sum");
  }
  return ok;
}

// The random geometries have few channels (col2im computes their dx); `widen`
// multiplies the channels so that dx is a convolution instead.
void random_geometries(Layout layout, std::uint32_t seed, int64_t widen = 1) {
  int failures = 0;
  for (ConvShape s : ref::random_shapes(widen == 1 ? 150 : 40, seed, layout)) {
    s = convx::make_conv_shape(s.n, s.h, s.w, s.c_in * widen, s.c_out, s.k_h, s.k_w, s.p);
    const bool depthwise = s.groups() > 1 && s.groups() == s.c_in && s.groups() == s.c_out;
    const char* want = s.c_in_per_group() < 8 && !depthwise ? "col2im" : "convolution";
    const std::vector<float> w1(static_cast<std::size_t>(s.weight_size()), 1.0f);
    CHECK(std::string(convx::Conv2dBackwardData<float>::create(s, w1.data())->method()) == want);
    if (!grads_match<float>(s, seed) || !grads_match<double>(s, seed + 7)) ++failures;
    if (failures > 3) return;
  }
}

}  // namespace

TEST_CASE_ISA("backward: dx, dw and db equal their sums on 150 NHWC geometries") {
  random_geometries(Layout::NHWC, 11);
}

TEST_CASE_ISA("backward: dx, dw and db equal their sums on 150 NCHW geometries") {
  random_geometries(Layout::NCHW, 12);
}

TEST_CASE_ISA("backward: dx as a convolution, dw and db on 40 wide geometries per layout") {
  random_geometries(Layout::NHWC, 13, 8);
  random_geometries(Layout::NCHW, 14, 8);
}

TEST_CASE("backward: inputs no patch reads get exactly zero") {
  convx::ConvParams p;
  p.stride_h = p.stride_w = 3;
  const ConvShape s = convx::make_conv_shape(1, 7, 7, 2, 3, 1, 1, p);  // reads rows 0, 3, 6
  const std::vector<float> w = ref::uniform<float>(s.weight_size(), 1);
  const std::vector<float> dy = ref::uniform<float>(s.output_size(), 2);
  std::vector<float> dx(static_cast<std::size_t>(s.input_size()), 1.0f);
  convx::conv2d_backward_data<float>(s, dy.data(), w.data(), dx.data());
  for (int64_t r = 0; r < 7; ++r) {
    for (int64_t c = 0; c < 7; ++c) {
      const bool read = r % 3 == 0 && c % 3 == 0;
      for (int64_t ch = 0; ch < 2; ++ch) {
        const float v = dx[static_cast<std::size_t>((r * 7 + c) * 2 + ch)];
        if (!read) CHECK(v == 0.0f && !std::signbit(v));
      }
    }
  }
}

TEST_CASE("threads: backward results are bitwise identical at 1, 2 and 3 threads") {
  for (int64_t c_in : {32, 6}) {  // dx as a convolution, then by col2im
  for (Layout layout : {Layout::NHWC, Layout::NCHW}) {
    convx::ConvParams p;
    p.layout = layout;
    p.stride_h = 2;
    p.pad = {1, 2, 1, 0};
    p.groups = 2;
    const ConvShape s = convx::make_conv_shape(3, 23, 19, c_in, 48, 3, 3, p);
    const std::vector<float> x = ref::uniform<float>(s.input_size(), 1);
    const std::vector<float> w = ref::uniform<float>(s.weight_size(), 2);
    const std::vector<float> dy = ref::uniform<float>(s.output_size(), 3);
    std::vector<std::vector<float>> results;
    for (int threads : {1, 2, 3}) {
      convx::set_num_threads(threads);
      std::vector<float> dx(static_cast<std::size_t>(s.input_size()));
      std::vector<float> dw(static_cast<std::size_t>(s.weight_size()));
      std::vector<float> db(static_cast<std::size_t>(s.c_out));
      convx::conv2d_backward_data<float>(s, dy.data(), w.data(), dx.data());
      convx::conv2d_backward_weights<float>(s, x.data(), dy.data(), dw.data(), db.data());
      dx.insert(dx.end(), dw.begin(), dw.end());
      dx.insert(dx.end(), db.begin(), db.end());
      results.push_back(dx);
    }
    for (const auto& r : results) {
      CHECK(std::memcmp(r.data(), results[0].data(), r.size() * sizeof(float)) == 0);
    }
  }
  }
}

TEST_CASE("backward: the transposed convolution is the input gradient plus a bias") {
  convx::ConvParams p;
  p.stride_h = p.stride_w = 2;
  p.pad = {1, 1, 0, 2};
  p.dilation_w = 2;
  // A 5x4 input of 3 channels to 4 channels, output_padding 1 on the height.
  const ConvShape f = convx::make_conv_transpose_shape(2, 5, 4, 3, 4, 3, 3, p, 1, 0);
  CHECK_EQ(f.h, (5 - 1) * 2 - 2 + 2 + 1 + 1);
  CHECK_EQ(f.w, (4 - 1) * 2 - 2 + 4 + 0 + 1);
  CHECK(f.h_out == 5 && f.w_out == 4 && f.c_in == 4 && f.c_out == 3);
  const std::vector<double> w = ref::small_ints<double>(f.weight_size(), 1);
  const std::vector<double> x = ref::small_ints<double>(f.output_size(), 2);
  const std::vector<double> bias = ref::small_ints<double>(f.c_in, 3);
  std::vector<double> y(static_cast<std::size_t>(f.input_size()));
  const auto op = convx::ConvTranspose2d<double>::create(2, 5, 4, 3, 4, 3, 3, p, 1, 0, w.data());
  CHECK(op->forward_shape().h == f.h && op->forward_shape().w == f.w);
  op->run(x.data(), bias.data(), y.data());
  const Grads want = reference_grads(f, y.data(), w.data(), x.data());
  for (int64_t i = 0; i < f.input_size(); ++i) {
    CHECK(y[static_cast<std::size_t>(i)] ==
          want.dx[static_cast<std::size_t>(i)] + bias[static_cast<std::size_t>(i % f.c_in)]);
  }
  CHECK_THROWS_WITH(convx::make_conv_transpose_shape(1, 5, 5, 1, 1, 3, 3, p, 2, 0),
                    std::invalid_argument, "output_padding");
}
