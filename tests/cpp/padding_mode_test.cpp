// The padding modes (reflect, replicate, circular) against a reference that
// pads the input explicitly and convolves it unpadded: the forward operator on
// every algorithm, both layouts and dtypes, convx::pad and im2col, the input,
// filter and bias gradients, determinism across thread counts, and the
// arguments each mode refuses. Small integers make every result exact.
#include <cstring>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "check.hpp"
#include "reference.hpp"

namespace {

using convx::ConvShape;
using convx::Layout;
using convx::PaddingMode;
using std::int64_t;

constexpr PaddingMode kModes[] = {PaddingMode::Reflect, PaddingMode::Replicate,
                                  PaddingMode::Circular};

// The source index of padded index i (already shifted by the pad before) along
// an axis of n, written independently of the library: reflection by folding,
// wrap-around by a true modulus.
int64_t source(int64_t i, int64_t n, PaddingMode mode) {
  if (mode == PaddingMode::Replicate) return i < 0 ? 0 : (i >= n ? n - 1 : i);
  if (mode == PaddingMode::Circular) return ((i % n) + n) % n;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
  return i;
}

// The padded input, and the unpadded shape of the same convolution over it.
template <typename T>
std::vector<T> padded_input(const ConvShape& s, const std::vector<T>& x, ConvShape* plain) {
  convx::ConvParams p = s.p;
  p.pad = {};
  p.padding_mode = PaddingMode::Zeros;
  const int64_t hp = s.h + s.p.pad.top + s.p.pad.bottom, wp = s.w + s.p.pad.left + s.p.pad.right;
  *plain = convx::make_conv_shape(s.n, hp, wp, s.c_in, s.c_out, s.k_h, s.k_w, p);
  std::vector<T> xp(static_cast<std::size_t>(plain->input_size()));
  for (int64_t b = 0; b < s.n; ++b) {
    for (int64_t r = 0; r < hp; ++r) {
      for (int64_t c = 0; c < wp; ++c) {
        const int64_t sr = source(r - s.p.pad.top, s.h, s.p.padding_mode);
        const int64_t sc = source(c - s.p.pad.left, s.w, s.p.padding_mode);
        for (int64_t ch = 0; ch < s.c_in; ++ch) {
          xp[static_cast<std::size_t>(ref::x_index(*plain, b, r, c, ch))] =
              x[static_cast<std::size_t>(ref::x_index(s, b, sr, sc, ch))];
        }
      }
    }
  }
  return xp;
}

// Geometries chosen so that each algorithm runs (checked by the caller).
std::vector<ConvShape> geometries(Layout layout, PaddingMode mode) {
  struct G {
    int64_t n, h, w, c_in, c_out, k_h, k_w, s_h, s_w, d_h, d_w, groups;
    convx::Padding2D pad;
  };
  const G gs[] = {
      {2, 9, 8, 40, 24, 3, 3, 1, 1, 1, 1, 1, {2, 1, 1, 2}},   // gemm, whole taps
      {1, 11, 10, 3, 8, 5, 5, 2, 1, 2, 1, 1, {3, 2, 4, 1}},   // gemm, few channels
      {2, 7, 9, 8, 12, 3, 2, 1, 2, 1, 2, 2, {1, 2, 2, 1}},    // gemm, groups
      {1, 6, 7, 40, 16, 1, 1, 1, 1, 1, 1, 1, {1, 0, 0, 1}},   // gemm, 1x1 padded
      {3, 6, 5, 1, 5, 3, 3, 1, 1, 1, 1, 1, {1, 1, 2, 1}},     // direct, staged whole
      {1, 70, 66, 1, 7, 3, 3, 2, 1, 1, 2, 1, {2, 1, 1, 2}},   // direct, row by row
      {2, 8, 9, 16, 16, 3, 3, 1, 1, 1, 1, 16, {1, 1, 1, 1}},  // depthwise 3x3
      {1, 9, 11, 20, 20, 5, 3, 2, 1, 1, 2, 20, {3, 2, 1, 4}}, // depthwise, other
  };
  std::vector<ConvShape> out;
  for (const G& g : gs) {
    convx::ConvParams p;
    p.layout = layout;
    p.padding_mode = mode;
    p.stride_h = g.s_h;
    p.stride_w = g.s_w;
    p.dilation_h = g.d_h;
    p.dilation_w = g.d_w;
    p.groups = g.groups;
    p.pad = g.pad;
    if (mode == PaddingMode::Reflect) {  // reflect needs every pad below the extent
      p.pad.top = std::min(p.pad.top, g.h - 1);
      p.pad.left = std::min(p.pad.left, g.w - 1);
    }
    out.push_back(convx::make_conv_shape(g.n, g.h, g.w, g.c_in, g.c_out, g.k_h, g.k_w, p));
  }
  return out;
}

template <typename T>
void forward_matches(const ConvShape& s, std::set<std::string>* algorithms) {
  const std::vector<T> x = ref::small_ints<T>(s.input_size(), 3);
  const std::vector<T> w = ref::small_ints<T>(s.weight_size(), 4);
  const std::vector<T> bias = ref::small_ints<T>(s.c_out, 5);
  ConvShape plain;
  const std::vector<T> xp = padded_input(s, x, &plain);
  const std::vector<double> want = ref::conv2d_direct(plain, xp.data(), w.data(), bias.data(), false);
  std::vector<T> y(want.size());
  auto op = convx::Conv2d<T>::create(s, w.data());
  algorithms->insert(convx::algorithm_name(op->algorithm()));
  op->run(x.data(), bias.data(), y.data());
  CONTEXT(ref::describe(s), " mode=", convx::padding_mode_name(s.p.padding_mode),
          " algorithm=", convx::algorithm_name(op->algorithm()), " f", 8 * sizeof(T));
  CHECK_EQ(ref::first_mismatch(y.data(), want, 0.0, 0.0), int64_t(-1));
  // The free function (weights per run) takes the same path.
  std::vector<T> y2(want.size());
  convx::conv2d<T>(s, x.data(), w.data(), bias.data(), y2.data());
  CHECK(y2 == y);
}

// dx, dw and db against the gradients of the unpadded convolution over the
// padded input, dx folded back through the padding map.
template <typename T>
void backward_matches(const ConvShape& s) {
  const std::vector<T> x = ref::small_ints<T>(s.input_size(), 6);
  const std::vector<T> w = ref::small_ints<T>(s.weight_size(), 7);
  const std::vector<T> dy = ref::small_ints<T>(s.output_size(), 8);
  ConvShape plain;
  const std::vector<T> xp = padded_input(s, x, &plain);
  std::vector<double> dxp(static_cast<std::size_t>(plain.input_size()), 0.0);
  std::vector<double> dw_want(static_cast<std::size_t>(s.weight_size()), 0.0);
  const int64_t cg = s.c_in_per_group(), mg = s.c_out_per_group();
  for (int64_t b = 0; b < s.n; ++b)
    for (int64_t i = 0; i < s.h_out; ++i)
      for (int64_t j = 0; j < s.w_out; ++j)
        for (int64_t m = 0; m < s.c_out; ++m)
          for (int64_t u = 0; u < s.k_h; ++u)
            for (int64_t v = 0; v < s.k_w; ++v)
              for (int64_t q = 0; q < cg; ++q) {
                const double g = double(dy[std::size_t(ref::y_index(s, b, i, j, m))]);
                const int64_t xi = ref::x_index(plain, b, i * s.p.stride_h + u * s.p.dilation_h,
                                                j * s.p.stride_w + v * s.p.dilation_w,
                                                (m / mg) * cg + q);
                const int64_t wi = ref::w_index(s, m, u, v, q);
                dxp[std::size_t(xi)] += g * double(w[std::size_t(wi)]);
                dw_want[std::size_t(wi)] += g * double(xp[std::size_t(xi)]);
              }
  std::vector<double> dx_want(static_cast<std::size_t>(s.input_size()), 0.0);
  for (int64_t b = 0; b < s.n; ++b)
    for (int64_t r = 0; r < plain.h; ++r)
      for (int64_t c = 0; c < plain.w; ++c)
        for (int64_t ch = 0; ch < s.c_in; ++ch) {
          const int64_t sr = source(r - s.p.pad.top, s.h, s.p.padding_mode);
          const int64_t sc = source(c - s.p.pad.left, s.w, s.p.padding_mode);
          dx_want[std::size_t(ref::x_index(s, b, sr, sc, ch))] +=
              dxp[std::size_t(ref::x_index(plain, b, r, c, ch))];
        }
  std::vector<T> dx(dx_want.size()), dw(dw_want.size()), db(std::size_t(s.c_out));
  convx::conv2d_backward_data<T>(s, dy.data(), w.data(), dx.data());
  convx::conv2d_backward_weights<T>(s, x.data(), dy.data(), dw.data(), db.data());
  CONTEXT(ref::describe(s), " mode=", convx::padding_mode_name(s.p.padding_mode), " f",
          8 * sizeof(T));
  CHECK_EQ(ref::first_mismatch(dx.data(), dx_want, 0.0, 0.0), int64_t(-1));
  CHECK_EQ(ref::first_mismatch(dw.data(), dw_want, 0.0, 0.0), int64_t(-1));
}

}  // namespace

TEST_CASE_ISA("padding_mode: every mode equals explicit padding on every algorithm") {
  std::set<std::string> algorithms;
  for (Layout layout : {Layout::NHWC, Layout::NCHW}) {
    for (PaddingMode mode : kModes) {
      for (const ConvShape& s : geometries(layout, mode)) {
        forward_matches<float>(s, &algorithms);
        forward_matches<double>(s, &algorithms);
      }
    }
  }
  CHECK((algorithms == std::set<std::string>{"gemm", "direct", "depthwise"}));
}

TEST_CASE_ISA("padding_mode: dx, dw and db equal the gradients through explicit padding") {
  for (Layout layout : {Layout::NHWC, Layout::NCHW}) {
    for (PaddingMode mode : kModes) {
      for (ConvShape s : geometries(layout, mode)) {
        backward_matches<float>(s);
        backward_matches<double>(s);
        // Wide enough for dx as a convolution rather than col2im.
        s = convx::make_conv_shape(s.n, s.h, s.w, s.c_in * 8, s.c_out, s.k_h, s.k_w, s.p);
        backward_matches<double>(s);
      }
    }
  }
}

TEST_CASE("padding_mode: pad() and im2col() with each mode equal the explicit padding") {
  for (Layout layout : {Layout::NHWC, Layout::NCHW}) {
    for (PaddingMode mode : kModes) {
      const ConvShape s = geometries(layout, mode)[2];
      const std::vector<float> x = ref::small_ints<float>(s.input_size(), 9);
      ConvShape plain;
      const std::vector<float> want = padded_input(s, x, &plain);
      std::vector<float> got(want.size());
      convx::pad<float>(x.data(), {s.n, s.h, s.w, s.c_in}, s.p.pad, layout, got.data(), mode);
      CHECK(got == want);
      const std::vector<float> cols_want = ref::im2col_direct(plain, want.data(),
                                                              convx::PatchOrder::HWC);
      std::vector<float> cols(cols_want.size());
      convx::im2col<float>(x.data(), {s.n, s.h, s.w, s.c_in}, s.k_h, s.k_w, s.p,
                           convx::PatchOrder::HWC, cols.data());
      CHECK(cols == cols_want);
    }
  }
}

TEST_CASE("threads: padding-mode results are bitwise identical at 1, 2 and 3 threads") {
  for (Layout layout : {Layout::NHWC, Layout::NCHW}) {
    for (const ConvShape& s : geometries(layout, PaddingMode::Reflect)) {
      const std::vector<float> x = ref::uniform<float>(s.input_size(), 1);
      const std::vector<float> w = ref::uniform<float>(s.weight_size(), 2);
      const std::vector<float> dy = ref::uniform<float>(s.output_size(), 3);
      std::vector<std::vector<float>> runs;
      for (int threads : {1, 2, 3}) {
        convx::set_num_threads(threads);
        std::vector<float> y(std::size_t(s.output_size())), dx(std::size_t(s.input_size()));
        std::vector<float> dw(std::size_t(s.weight_size()));
        convx::conv2d<float>(s, x.data(), w.data(), nullptr, y.data());
        convx::conv2d_backward_data<float>(s, dy.data(), w.data(), dx.data());
        convx::conv2d_backward_weights<float>(s, x.data(), dy.data(), dw.data(), nullptr);
        y.insert(y.end(), dx.begin(), dx.end());
        y.insert(y.end(), dw.begin(), dw.end());
        runs.push_back(y);
      }
      CONTEXT(ref::describe(s));
      for (const auto& r : runs) {
        CHECK(std::memcmp(r.data(), runs[0].data(), r.size() * sizeof(float)) == 0);
      }
    }
  }
}

TEST_CASE("padding_mode: the limits of each mode are errors naming padding_mode") {
  convx::ConvParams p;
  p.pad = {3, 0, 0, 0};
  p.padding_mode = PaddingMode::Reflect;
  CHECK_THROWS_WITH(convx::make_conv_shape(1, 3, 5, 1, 1, 1, 1, p), std::invalid_argument,
                    "padding_mode 'reflect'");
  CHECK_EQ(convx::make_conv_shape(1, 4, 5, 1, 1, 1, 1, p).h_out, int64_t(7));
  p.padding_mode = PaddingMode::Circular;
  p.pad = {0, 0, 0, 6};
  CHECK_THROWS_WITH(convx::make_conv_shape(1, 3, 5, 1, 1, 1, 1, p), std::invalid_argument,
                    "padding_mode 'circular'");
  CHECK_EQ(convx::make_conv_shape(1, 3, 6, 1, 1, 1, 1, p).w_out, int64_t(12));
  p.padding_mode = PaddingMode::Replicate;
  CHECK_THROWS_WITH(convx::make_conv_shape(1, 3, 0, 1, 1, 1, 1, p), std::invalid_argument,
                    "padding_mode 'replicate'");
  p.padding_mode = static_cast<PaddingMode>(7);
  CHECK_THROWS_WITH(convx::make_conv_shape(1, 3, 5, 1, 1, 1, 1, p), std::invalid_argument,
                    "padding_mode");
  // Without padding the mode reads nothing and is reset to Zeros.
  p.pad = {};
  p.padding_mode = PaddingMode::Reflect;
  CHECK(convx::make_conv_shape(1, 1, 1, 1, 1, 1, 1, p).p.padding_mode == PaddingMode::Zeros);
  std::vector<float> x(6), y(64);
  CHECK_THROWS_WITH(convx::pad<float>(x.data(), {1, 2, 3, 1}, {2, 0, 0, 0}, Layout::NHWC,
                                      y.data(), PaddingMode::Reflect),
                    std::invalid_argument, "padding_mode 'reflect'");
  p.pad = {1, 1, 1, 1};
  CHECK_THROWS_WITH(convx::make_conv_transpose_shape(1, 4, 4, 2, 2, 3, 3, p, 0, 0),
                    std::invalid_argument, "padding_mode");
}
