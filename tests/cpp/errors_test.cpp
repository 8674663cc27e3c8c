// Error paths of the public API: every bad argument is a std::invalid_argument
// whose message names the argument.
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#include "check.hpp"
#include "convx/convx.hpp"

namespace {

using std::int64_t;
using convx::ConvParams;
using convx::make_conv_shape;

ConvParams with(void (*edit)(ConvParams&)) {
  ConvParams p;
  edit(p);
  return p;
}

TEST_CASE("make_conv_shape: each bad argument is named") {
  const ConvParams ok;
  CHECK_THROWS_WITH(make_conv_shape(-1, 4, 4, 1, 1, 1, 1, ok), std::invalid_argument, "input");
  CHECK_THROWS_WITH(make_conv_shape(1, -4, 4, 1, 1, 1, 1, ok), std::invalid_argument, "input");
  CHECK_THROWS_WITH(make_conv_shape(1, 4, 4, 0, 1, 1, 1, ok), std::invalid_argument, "channel");
  CHECK_THROWS_WITH(make_conv_shape(1, 4, 4, 1, 0, 1, 1, ok), std::invalid_argument, "out_channels");
  CHECK_THROWS_WITH(make_conv_shape(1, 4, 4, 1, 1, 0, 1, ok), std::invalid_argument, "kernel_size");
  CHECK_THROWS_WITH(make_conv_shape(1, 4, 4, 1, 1, 5, 1, ok), std::invalid_argument, "kernel_size");
  CHECK_THROWS_WITH(make_conv_shape(1, 4, 4, 1, 1, 1, 1, with([](ConvParams& p) { p.stride_w = 0; })),
                    std::invalid_argument, "stride");
  CHECK_THROWS_WITH(make_conv_shape(1, 4, 4, 1, 1, 1, 1, with([](ConvParams& p) { p.dilation_h = 0; })),
                    std::invalid_argument, "dilation");
  CHECK_THROWS_WITH(make_conv_shape(1, 4, 4, 1, 1, 1, 1, with([](ConvParams& p) { p.pad.left = -1; })),
                    std::invalid_argument, "padding");
  CHECK_THROWS_WITH(make_conv_shape(1, 4, 4, 1, 1, 1, 1, with([](ConvParams& p) { p.groups = 0; })),
                    std::invalid_argument, "groups");
  CHECK_THROWS_WITH(make_conv_shape(1, 4, 4, 3, 2, 1, 1, with([](ConvParams& p) { p.groups = 2; })),
                    std::invalid_argument, "groups");
  CHECK_THROWS_WITH(make_conv_shape(1, 4, 4, 2, 3, 1, 1, with([](ConvParams& p) { p.groups = 2; })),
                    std::invalid_argument, "groups");
  // A dilated kernel larger than the padded input.
  CHECK_THROWS_WITH(make_conv_shape(1, 4, 4, 1, 1, 3, 3, with([](ConvParams& p) { p.dilation_h = 2; })),
                    std::invalid_argument, "kernel_size");
}

TEST_CASE("make_conv_shape: sizes whose product overflows int64 are rejected") {
  const int64_t big = int64_t{1} << 40;
  CHECK_THROWS_WITH(make_conv_shape(big, big, 1, 1, 1, 1, 1, ConvParams{}), std::invalid_argument,
                    "input");
  const int64_t max = std::numeric_limits<int64_t>::max();
  CHECK_THROWS_WITH(make_conv_shape(1, max, 1, 1, 1, 1, 1,
                                    with([](ConvParams& p) { p.pad.bottom = 1; })),
                    std::invalid_argument, "padding");
}

TEST_CASE("conv_output_size: formula and errors") {
  CHECK_EQ(convx::conv_output_size(7, 3, 2, 1, 1, 1), int64_t{4});
  CHECK_EQ(convx::conv_output_size(10, 3, 1, 0, 2, 2), int64_t{8});
  CHECK_EQ(convx::conv_output_size(5, 5, 1, 0, 0, 1), int64_t{1});
  CHECK_THROWS_WITH(convx::conv_output_size(4, 0, 1, 0, 0, 1), std::invalid_argument, "kernel");
  CHECK_THROWS_WITH(convx::conv_output_size(4, 2, 0, 0, 0, 1), std::invalid_argument, "stride");
  CHECK_THROWS_WITH(convx::conv_output_size(4, 2, 1, -1, 0, 1), std::invalid_argument, "padding");
  CHECK_THROWS_WITH(convx::conv_output_size(4, 2, 1, 0, 0, 0), std::invalid_argument, "dilation");
  CHECK_THROWS_WITH(convx::conv_output_size(4, 3, 1, 0, 0, 2), std::invalid_argument, "kernel_size");
}

TEST_CASE("gemm: bad sizes and null pointers") {
  float a[4] = {}, b[4] = {}, c[4] = {};
  CHECK_THROWS_WITH(convx::gemm<float>(-1, 2, 2, a, 2, 1, b, 2, 1, c, 2, 1), std::invalid_argument, "gemm");
  CHECK_THROWS_WITH(convx::gemm<float>(2, 2, -2, a, 2, 1, b, 2, 1, c, 2, 1), std::invalid_argument, "gemm");
  CHECK_THROWS_WITH(convx::gemm<float>(2, 2, 2, a, 2, 1, b, 2, 1, nullptr, 2, 1), std::invalid_argument, "c");
  CHECK_THROWS_WITH(convx::gemm<float>(2, 2, 2, nullptr, 2, 1, b, 2, 1, c, 2, 1), std::invalid_argument, "a");
  CHECK_THROWS_WITH(convx::gemm<double>(2, 2, 2, nullptr, 2, 1, nullptr, 2, 1, nullptr, 2, 1),
                    std::invalid_argument, "gemm");
  convx::Epilogue<float> ep;
  ep.bias_mode = convx::BiasMode::PerRow;  // but no bias pointer
  CHECK_THROWS_WITH(convx::gemm<float>(2, 2, 2, a, 2, 1, b, 2, 1, c, 2, 1, false, ep),
                    std::invalid_argument, "bias");
  const int64_t big = int64_t{1} << 40;
  CHECK_THROWS_WITH(convx::gemm<float>(big, big, 1, a, 1, 1, b, 1, 1, c, 1, 1), std::invalid_argument,
                    "gemm");
}

TEST_CASE("pad, im2col and conv2d: bad arguments") {
  std::vector<float> buf(64);
  CHECK_THROWS_WITH(convx::pad<float>(buf.data(), {1, -2, 2, 1}, {}, convx::Layout::NHWC, buf.data()),
                    std::invalid_argument, "x");
  CHECK_THROWS_WITH(convx::pad<float>(buf.data(), {1, 2, 2, 1}, {0, -1, 0, 0}, convx::Layout::NHWC,
                                      buf.data()),
                    std::invalid_argument, "padding");
  CHECK_THROWS_WITH(convx::im2col<float>(buf.data(), {1, 2, 2, 1}, 3, 3, ConvParams{},
                                         convx::PatchOrder::HWC, buf.data()),
                    std::invalid_argument, "kernel_size");
  CHECK_THROWS_WITH(convx::im2col<double>(nullptr, {1, 2, 2, 1}, 1, 1,
                                          with([](ConvParams& p) { p.stride_h = -1; }),
                                          convx::PatchOrder::Seed, nullptr),
                    std::invalid_argument, "stride");
  const convx::ConvShape s = make_conv_shape(1, 4, 4, 1, 1, 1, 1, ConvParams{});
  CHECK_THROWS_WITH(convx::conv2d<float>(s, nullptr, buf.data(), nullptr, buf.data()),
                    std::invalid_argument, "conv2d");
  convx::ConvShape forged = s;
  forged.p.groups = 0;  // not from make_conv_shape: validated again, the bad field named
  CHECK_THROWS_WITH(convx::conv2d<float>(forged, buf.data(), buf.data(), nullptr, buf.data()),
                    std::invalid_argument, "groups");
  convx::ConvShape wrong_out = s;
  wrong_out.h_out = 7;
  CHECK_THROWS_WITH(convx::conv2d<float>(wrong_out, buf.data(), buf.data(), nullptr, buf.data()),
                    std::invalid_argument, "make_conv_shape");
}

TEST_CASE("runtime: ISA names and thread counts") {
  CHECK_THROWS_WITH(convx::parse_isa("sse9"), std::invalid_argument, "isa");
  CHECK(convx::parse_isa("AVX2") == convx::Isa::AVX2);
  CHECK(convx::parse_isa("scalar") == convx::Isa::Scalar);
  CHECK(convx::parse_isa("avx512") == convx::Isa::AVX512);
  CHECK_THROWS_WITH(convx::set_num_threads(0), std::invalid_argument, "n must be");
  CHECK_THROWS_WITH(convx::set_num_threads(-3), std::invalid_argument, "set_num_threads");
  for (convx::Isa isa : {convx::Isa::AVX2, convx::Isa::AVX512}) {
    if (!convx::isa_available(isa)) {
      CHECK_THROWS_WITH(convx::set_active_isa(isa), std::invalid_argument, "isa");
    }
  }
}

}  // namespace
