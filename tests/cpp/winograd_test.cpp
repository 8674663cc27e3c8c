// The Winograd algorithm against the float64 formula: odd output sizes (partial
// 4x4 tiles), asymmetric padding 0-2, every padding mode, batch > 1, channel
// counts off the kernels' tile widths, f32 and f64, every ISA path; the error
// bound of docs/winograd.md, bitwise determinism across thread counts, the
// filters transformed once, and the shapes it refuses.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "check.hpp"
#include "reference.hpp"

namespace {

using convx::Algorithm;
using convx::ConvShape;
using convx::Layout;
using convx::PaddingMode;
using std::int64_t;

// max|y - ref| / max|ref| that the tests allow: docs/winograd.md measures up
// to 1.5e-5 in f32 on VGG and ResNet layers (512 channels) and below 1e-14 in
// f64; the margin covers other seeds and the tests' uniform data.
template <typename T>
double error_bound() {
  return sizeof(T) == 4 ? 5e-5 : 5e-14;
}

ConvShape make_shape(int64_t n, int64_t h, int64_t w, int64_t c_in, int64_t c_out,
                     convx::Padding2D pad, PaddingMode mode, Algorithm algorithm) {
  convx::ConvParams p;
  p.pad = pad;
  p.padding_mode = mode;
  p.algorithm = algorithm;
  return convx::make_conv_shape(n, h, w, c_in, c_out, 3, 3, p);
}

// The formula over the input padded explicitly by convx::pad (the padding
// modes have tests of their own), so that the reference sees no padding.
template <typename T>
std::vector<double> reference(const ConvShape& s, const std::vector<T>& x, const std::vector<T>& w,
                              const std::vector<T>& bias, bool relu) {
  const convx::Padding2D& pd = s.p.pad;
  std::vector<T> xp(static_cast<std::size_t>(s.n * (s.h + pd.top + pd.bottom) *
                                             (s.w + pd.left + pd.right) * s.c_in));
  convx::pad<T>(x.data(), {s.n, s.h, s.w, s.c_in}, pd, Layout::NHWC, xp.data(),
                s.p.padding_mode);
  const ConvShape plain = convx::make_conv_shape(s.n, s.h + pd.top + pd.bottom,
                                                 s.w + pd.left + pd.right, s.c_in, s.c_out, 3, 3,
                                                 convx::ConvParams{});
  return ref::conv2d_direct(plain, xp.data(), w.data(), bias.data(), relu);
}

template <typename T>
double relative_error(const std::vector<T>& got, const std::vector<double>& want) {
  double err = 0.0, scale = 0.0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    err = std::max(err, std::fabs(double(got[i]) - want[i]));
    scale = std::max(scale, std::fabs(want[i]));
  }
  return scale > 0.0 ? err / scale : err;
}

template <typename T>
void matches_reference(const ConvShape& s, convx::Context& ctx, bool relu) {
  CONTEXT(ref::describe(s), sizeof(T) == 4 ? " f32" : " f64", relu ? " relu" : "");
  const std::vector<T> x = ref::uniform<T>(s.input_size(), 1);
  const std::vector<T> w = ref::uniform<T>(s.weight_size(), 2);
  const std::vector<T> bias = ref::uniform<T>(s.c_out, 3);
  const auto act = relu ? convx::Activation::ReLU : convx::Activation::None;
  const auto op = convx::Conv2d<T>::create(s, w.data(), act, ctx);
  REQUIRE(op->algorithm() == Algorithm::Winograd);
  CHECK(std::string(op->kernel()).find("winograd") != std::string::npos);
  std::vector<T> y(static_cast<std::size_t>(s.output_size()), T(-7));
  op->run(x.data(), bias.data(), y.data());
  const double err = relative_error(y, reference(s, x, w, bias, relu));
  CONTEXT("error ", err);
  CHECK(err <= error_bound<T>());
  // Weights given per run are transformed per run: the same result (auto would
  // take the GEMM for them, so Winograd is asked for).
  ConvShape asked = s;
  asked.p.algorithm = Algorithm::Winograd;
  const auto any = convx::Conv2d<T>::create_for_any_weights(asked, act, ctx);
  std::vector<T> y2(y.size(), T(5));
  any->run(x.data(), w.data(), bias.data(), y2.data());
  CHECK(std::memcmp(y.data(), y2.data(), y.size() * sizeof(T)) == 0);
}

std::vector<ConvShape> shapes(PaddingMode mode) {
  const Algorithm wino = Algorithm::Winograd;
  return {
      make_shape(1, 8, 8, 4, 4, {1, 1, 1, 1}, mode, wino),
      make_shape(2, 9, 7, 5, 3, {0, 1, 2, 1}, mode, wino),        // partial tiles, asymmetric
      make_shape(1, 13, 11, 17, 33, {2, 2, 0, 1}, mode, wino),
      make_shape(3, 6, 5, 13, 37, {1, 0, 2, 2}, mode, wino),
      make_shape(1, 5, 21, 40, 70, {1, 1, 1, 1}, mode, wino),     // several chunks of C_out
      make_shape(1, 3, 3, 2, 1, {0, 0, 0, 0}, PaddingMode::Zeros, wino),  // one output pixel
  };
}

}  // namespace

TEST_CASE_ISA("winograd: equals the formula within its error bound") {
  convx::Context ctx(2);
  ctx.set_isa(isa);
  for (PaddingMode mode : {PaddingMode::Zeros, PaddingMode::Reflect, PaddingMode::Replicate,
                           PaddingMode::Circular}) {
    for (const ConvShape& s : shapes(mode)) {
      matches_reference<float>(s, ctx, false);
      matches_reference<double>(s, ctx, mode == PaddingMode::Zeros);
    }
  }
  // Many tiles: several blocks per thread.
  const ConvShape big = make_shape(2, 30, 29, 64, 48, {1, 1, 1, 1}, PaddingMode::Zeros,
                                   Algorithm::Fast);
  matches_reference<float>(big, ctx, true);
}

TEST_CASE_ISA("winograd: results are bitwise identical at 1, 2 and 3 threads") {
  for (const ConvShape& s :
       {make_shape(2, 23, 19, 48, 40, {1, 1, 1, 1}, PaddingMode::Zeros, Algorithm::Winograd),
        make_shape(1, 7, 7, 64, 300, {1, 1, 1, 1}, PaddingMode::Reflect, Algorithm::Winograd)}) {
    const std::vector<float> x = ref::uniform<float>(s.input_size(), 4);
    const std::vector<float> w = ref::uniform<float>(s.weight_size(), 5);
    std::vector<float> first;
    for (int threads : {1, 2, 3}) {
      convx::Context ctx(threads);
      ctx.set_isa(isa);
      const auto op = convx::Conv2d<float>::create(s, w.data(), convx::Activation::None, ctx);
      std::vector<float> y(static_cast<std::size_t>(s.output_size()));
      op->run(x.data(), nullptr, y.data());
      if (first.empty()) first = y;
      CONTEXT(ref::describe(s), " threads ", threads);
      CHECK(std::memcmp(first.data(), y.data(), y.size() * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("winograd: fast picks it for wide 3x3 stride-1 layers only, auto never") {
  const auto pick = [](int64_t c_in, int64_t c_out, int64_t k, int64_t stride, Layout layout,
                       Algorithm asked = Algorithm::Fast) {
    convx::ConvParams p;
    p.pad = {1, 1, 1, 1};
    p.stride_h = p.stride_w = stride;
    p.layout = layout;
    p.algorithm = asked;
    return convx::choose_algorithm(convx::make_conv_shape(1, 14, 14, c_in, c_out, k, k, p));
  };
  CHECK(pick(64, 64, 3, 1, Layout::NHWC) == Algorithm::Winograd);
  CHECK(pick(64, 64, 3, 1, Layout::NHWC, Algorithm::Auto) == Algorithm::Gemm);
  CHECK(pick(256, 512, 3, 1, Layout::NHWC) == Algorithm::Winograd);
  CHECK(pick(512, 512, 3, 1, Layout::NHWC) == Algorithm::Winograd);
  CHECK(pick(8, 64, 3, 1, Layout::NHWC) == Algorithm::Gemm);
  CHECK(pick(64, 64, 3, 2, Layout::NHWC) == Algorithm::Gemm);
  CHECK(pick(64, 64, 5, 1, Layout::NHWC) == Algorithm::Gemm);
  CHECK(pick(64, 64, 3, 1, Layout::NCHW) == Algorithm::Gemm);
  convx::ConvParams p;  // 7x7 outputs: 4 tiles, too few
  p.pad = {1, 1, 1, 1};
  p.algorithm = Algorithm::Fast;
  CHECK(convx::choose_algorithm(convx::make_conv_shape(1, 7, 7, 256, 256, 3, 3, p)) ==
        Algorithm::Gemm);
  CHECK(convx::choose_algorithm(convx::make_conv_shape(2, 7, 7, 256, 256, 3, 3, p)) ==
        Algorithm::Winograd);
  // Filters given per run would be transformed per run: fast keeps the GEMM.
  const ConvShape wide = convx::make_conv_shape(1, 14, 14, 64, 64, 3, 3, p);
  CHECK(convx::choose_algorithm(wide, false) == Algorithm::Gemm);
  CHECK(convx::Conv2d<float>::create_for_any_weights(wide)->algorithm() == Algorithm::Gemm);
}

TEST_CASE("winograd: a request it cannot run is refused, naming why") {
  convx::ConvParams p;
  p.algorithm = Algorithm::Winograd;
  p.stride_h = 2;
  const ConvShape strided = convx::make_conv_shape(1, 9, 9, 4, 4, 3, 3, p);
  CHECK_THROWS_WITH(convx::choose_algorithm(strided), std::invalid_argument,
                    "algorithm: winograd needs stride 1");
  CHECK_THROWS_WITH(convx::Conv2d<float>::create_for_any_weights(strided),
                    std::invalid_argument, "winograd needs stride 1");
  p.stride_h = 1;
  p.layout = Layout::NCHW;
  CHECK_THROWS_WITH(convx::choose_algorithm(convx::make_conv_shape(1, 9, 9, 4, 4, 3, 3, p)),
                    std::invalid_argument, "winograd needs layout NHWC");
  p.layout = Layout::NHWC;
  p.groups = 2;
  CHECK_THROWS_WITH(convx::choose_algorithm(convx::make_conv_shape(1, 9, 9, 4, 4, 3, 3, p)),
                    std::invalid_argument, "winograd needs groups == 1");
  p.groups = 1;
  CHECK_THROWS_WITH(convx::choose_algorithm(convx::make_conv_shape(1, 9, 9, 4, 4, 5, 5, p)),
                    std::invalid_argument, "winograd needs a 3x3 filter");
  p.algorithm = Algorithm::Direct;
  CHECK_THROWS_WITH(convx::choose_algorithm(convx::make_conv_shape(1, 9, 9, 4, 4, 3, 3, p)),
                    std::invalid_argument, "algorithm: direct needs");
}

TEST_CASE("winograd: the filters are transformed once and counted in bytes()") {
  const ConvShape s = make_shape(1, 10, 10, 8, 8, {1, 1, 1, 1}, PaddingMode::Zeros,
                                 Algorithm::Winograd);
  const std::vector<float> w = ref::uniform<float>(s.weight_size(), 6);
  auto weights = std::make_shared<const convx::ConvWeights<float>>(w.data(), 8, 3, 3, 8, 1,
                                                                  Layout::NHWC);
  const int64_t before = weights->bytes();
  const auto op = convx::Conv2d<float>::create(s, weights);
  const int64_t after = weights->bytes();
  CHECK(after >= before + 36 * 8 * 8 * int64_t(sizeof(float)));
  const auto again = convx::Conv2d<float>::create(s, weights);
  CHECK_EQ(weights->bytes(), after);
  CHECK(op->workspace_bytes() > 0);
  CHECK(convx::Conv2d<float>::create_for_any_weights(s)->workspace_bytes() >
        op->workspace_bytes());
}
