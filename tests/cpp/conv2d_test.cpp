// conv2d against the direct formula (reference.hpp: the six nested sums) in
// both layouts and dtypes, with groups, dilation, stride, asymmetric padding,
// bias and ReLU, on every available ISA.
#include <cmath>
#include <limits>
#include <vector>

#include "check.hpp"
#include "reference.hpp"

namespace {

using std::int64_t;
using convx::Layout;

// Integer-valued data: the library's result must equal the formula exactly.
template <typename T>
bool matches_formula(const convx::ConvShape& s, bool with_bias, bool relu, std::uint32_t seed) {
  const std::vector<T> x = ref::small_ints<T>(s.input_size(), seed);
  const std::vector<T> w = ref::small_ints<T>(s.weight_size(), seed + 1);
  const std::vector<T> bias = ref::small_ints<T>(s.c_out, seed + 2);
  const T* bp = with_bias ? bias.data() : nullptr;
  // NaN first: y must be fully overwritten and never read.
  std::vector<T> y(static_cast<std::size_t>(s.output_size()), std::numeric_limits<T>::quiet_NaN());
  convx::conv2d<T>(s, x.data(), w.data(), bp, y.data(),
                   relu ? convx::Activation::ReLU : convx::Activation::None);
  const std::vector<double> want = ref::conv2d_direct<T>(s, x.data(), w.data(), bp, relu);
  const int64_t bad = ref::first_mismatch(y.data(), want, 0.0, 0.0);
  if (bad < 0) return true;
  CONTEXT(ref::describe(s), " bias=", with_bias, " relu=", relu, " dtype=", sizeof(T) == 4 ? "f32" : "f64");
  ::check::fail(__FILE__, __LINE__,
                ::check::str("y[", bad, "] = ", y[static_cast<std::size_t>(bad)], ", formula gives ",
                             want[static_cast<std::size_t>(bad)]));
  return false;
}

void random_geometries(Layout layout, std::uint32_t seed) {
  int failures = 0, i = 0;
  for (const convx::ConvShape& s : ref::random_shapes(200, seed, layout)) {
    ++i;
    const bool bias = (i % 3) != 0, relu = (i % 4) == 1;
    if (!matches_formula<float>(s, bias, relu, static_cast<std::uint32_t>(i)) && ++failures > 5) return;
    if (!matches_formula<double>(s, bias, relu, static_cast<std::uint32_t>(i)) && ++failures > 5) return;
  }
}

TEST_CASE_ISA("conv2d: NHWC equals the direct formula on 200 varied geometries") {
  random_geometries(Layout::NHWC, 21);
}

TEST_CASE_ISA("conv2d: NCHW equals the direct formula on 200 varied geometries") {
  random_geometries(Layout::NCHW, 22);
}

convx::ConvShape shape(Layout layout, int64_t n, int64_t h, int64_t w, int64_t c_in,
                       int64_t c_out, int64_t k_h, int64_t k_w, convx::ConvParams p) {
  p.layout = layout;
  return convx::make_conv_shape(n, h, w, c_in, c_out, k_h, k_w, p);
}

TEST_CASE_ISA("conv2d: depthwise, grouped, dilated, strided, asymmetric padding") {
  for (Layout layout : {Layout::NHWC, Layout::NCHW}) {
    convx::ConvParams depthwise;
    depthwise.groups = 6;
    depthwise.pad = {1, 1, 1, 1};
    convx::ConvParams multiplier = depthwise;  // depthwise with 2 filters per channel
    convx::ConvParams grouped;
    grouped.groups = 4;
    grouped.stride_h = 2;
    grouped.dilation_w = 3;
    grouped.pad = {0, 2, 3, 1};
    convx::ConvParams dilated;
    dilated.dilation_h = dilated.dilation_w = 2;
    dilated.pad = {2, 2, 2, 2};
    convx::ConvParams strided;
    strided.stride_h = 3;
    strided.stride_w = 2;
    strided.pad = {1, 0, 0, 1};
    convx::ConvParams one_by_one;
    const convx::ConvShape shapes[] = {
        shape(layout, 2, 9, 7, 6, 6, 3, 3, depthwise),
        shape(layout, 1, 8, 8, 6, 12, 3, 3, multiplier),
        shape(layout, 2, 11, 10, 8, 12, 3, 2, grouped),
        shape(layout, 1, 12, 9, 5, 7, 3, 3, dilated),
        shape(layout, 3, 13, 11, 4, 9, 3, 4, strided),
        shape(layout, 2, 5, 6, 17, 19, 1, 1, one_by_one),
        shape(layout, 1, 1, 1, 3, 2, 1, 1, one_by_one),
        shape(layout, 1, 4, 4, 2, 3, 4, 4, one_by_one),  // kernel as large as the input
    };
    for (const convx::ConvShape& s : shapes) {
      matches_formula<float>(s, true, false, 1);
      matches_formula<double>(s, false, true, 2);
    }
  }
}

TEST_CASE_ISA("conv2d: depthwise (groups == c_in == c_out) across vector-width channel counts") {
  // NHWC depthwise layers have their own kernel that vectorises over channels:
  // sweep channel counts around every vector width (4, 8 and 16 lanes) and the
  // spatial edge cases.
  int i = 0, tested = 0;
  for (int64_t c : {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 48, 65}) {
    convx::ConvParams p;
    p.groups = c;
    p.stride_h = 1 + i % 2;
    p.stride_w = 1 + (i / 2) % 3;
    p.dilation_h = 1 + (i / 3) % 2;
    p.dilation_w = 1 + i % 2;
    p.pad = {i % 3, (i + 1) % 2, (i + 2) % 3, i % 2};
    const int64_t k = 1 + i % 5;
    const int64_t h = 9 + i % 5, w = 9 + (i * 3) % 7;  // every (dilated) kernel fits
    if ((k - 1) * p.dilation_h + 1 > h + p.pad.top + p.pad.bottom) continue;
    if ((k - 1) * p.dilation_w + 1 > w + p.pad.left + p.pad.right) continue;
    for (Layout layout : {Layout::NHWC, Layout::NCHW}) {
      p.layout = layout;
      const convx::ConvShape s = convx::make_conv_shape(2, h, w, c, c, k, k, p);
      matches_formula<float>(s, (i & 1) != 0, (i & 2) != 0, static_cast<std::uint32_t>(i));
      matches_formula<double>(s, (i & 2) != 0, (i & 1) != 0, static_cast<std::uint32_t>(i + 1));
      ++tested;
    }
    ++i;
  }
  CHECK_EQ(tested, 32);
}

TEST_CASE_ISA("conv2d: layers that span several GEMM blocks") {
  // K = 3*3*48 = 432 and 2*20*20 = 800 output pixels exceed every kernel's
  // KC and MC; c_out = 37 leaves partial tiles in N. Exact results need the
  // GEMM (auto would take Winograd, whose transforms round).
  convx::ConvParams p;
  p.pad = {1, 1, 1, 1};
  p.algorithm = convx::Algorithm::Gemm;
  for (Layout layout : {Layout::NHWC, Layout::NCHW}) {
    const convx::ConvShape s = shape(layout, 2, 20, 20, 48, 37, 3, 3, p);
    matches_formula<float>(s, true, true, 3);
    matches_formula<double>(s, true, false, 4);
  }
}

TEST_CASE_ISA("conv2d: real-valued data within rounding of the formula") {
  convx::ConvParams p;
  p.pad = {2, 1, 0, 2};
  p.groups = 2;
  for (Layout layout : {Layout::NHWC, Layout::NCHW}) {
    const convx::ConvShape s = shape(layout, 2, 15, 13, 32, 24, 5, 3, p);
    const std::vector<float> x = ref::uniform<float>(s.input_size(), 1);
    const std::vector<float> w = ref::uniform<float>(s.weight_size(), 2);
    const std::vector<float> b = ref::uniform<float>(s.c_out, 3);
    std::vector<float> y(static_cast<std::size_t>(s.output_size()));
    convx::conv2d<float>(s, x.data(), w.data(), b.data(), y.data());
    const std::vector<double> want = ref::conv2d_direct<float>(s, x.data(), w.data(), b.data(), false);
    CONTEXT(ref::describe(s));
    CHECK_EQ(ref::first_mismatch(y.data(), want, 1e-5, 1e-5 * std::sqrt(double(s.patch_size()))),
             int64_t{-1});
  }
}

TEST_CASE("conv2d: a hand-computed example") {
  // 1x3x3x1 input 1..9, one 2x2 filter [[1, 0], [0, -1]], bias 10, no padding:
  // y(i, j) = 10 + x(i, j) - x(i+1, j+1) = 10 - 4 = 6 everywhere.
  const double x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  const double w[4] = {1, 0, 0, -1};
  const double bias[1] = {10};
  double y[4] = {0, 0, 0, 0};
  const convx::ConvShape s = convx::make_conv_shape(1, 3, 3, 1, 1, 2, 2, convx::ConvParams{});
  CHECK_EQ(s.h_out, int64_t{2});
  CHECK_EQ(s.w_out, int64_t{2});
  convx::conv2d<double>(s, x, w, bias, y);
  for (double v : y) CHECK_EQ(v, 6.0);
}

TEST_CASE("conv2d: an empty batch writes nothing") {
  const convx::ConvShape s = convx::make_conv_shape(0, 4, 4, 2, 3, 3, 3, convx::ConvParams{});
  CHECK_EQ(s.output_size(), int64_t{0});
  convx::conv2d<float>(s, nullptr, nullptr, nullptr, nullptr);
}

}  // namespace
