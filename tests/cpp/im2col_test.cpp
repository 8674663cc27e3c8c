// pad() and im2col() in every patch order and layout against the reference
// im2col, and im2col followed by gemm against conv2d.
#include <vector>

#include "check.hpp"
#include "reference.hpp"

namespace {

using std::int64_t;
using convx::Layout;
using convx::PatchOrder;

const char* order_name(PatchOrder o) {
  return o == PatchOrder::HWC ? "hwc" : o == PatchOrder::CHW ? "chw" : "seed";
}

template <typename T>
void im2col_orders(Layout layout) {
  int failures = 0;
  for (const convx::ConvShape& s : ref::random_shapes(150, layout == Layout::NHWC ? 1 : 2, layout)) {
    const std::vector<T> x = ref::uniform<T>(s.input_size(), 9);
    const convx::Dims4 dims{s.n, s.h, s.w, s.c_in};
    for (PatchOrder order : {PatchOrder::HWC, PatchOrder::CHW, PatchOrder::Seed}) {
      const std::vector<T> want = ref::im2col_direct<T>(s, x.data(), order);
      std::vector<T> got(want.size() + 1, T(-99));  // one sentinel past the end
      convx::im2col<T>(x.data(), dims, s.k_h, s.k_w, s.p, order, got.data());
      CONTEXT(ref::describe(s), " order=", order_name(order));
      CHECK_EQ(got.back(), T(-99));
      got.pop_back();
      if (got != want) {
        ::check::fail(__FILE__, __LINE__, "im2col differs from the reference");
        if (++failures > 5) return;
      }
    }
  }
}

TEST_CASE("im2col: hwc, chw and seed orders, NHWC input") {
  im2col_orders<float>(Layout::NHWC);
  im2col_orders<double>(Layout::NHWC);
}

TEST_CASE("im2col: hwc, chw and seed orders, NCHW input") {
  im2col_orders<float>(Layout::NCHW);
  im2col_orders<double>(Layout::NCHW);
}

TEST_CASE("im2col: the seed order is column-major per channel") {
  // One 3x3 single-channel image, 2x2 kernel: the first patch is
  // [[x00, x01], [x10, x11]], flattened column by column.
  const float x[9] = {0, 1, 2, 3, 4, 5, 6, 7, 8};
  convx::ConvParams p;
  float cols[4 * 4];
  convx::im2col<float>(x, {1, 3, 3, 1}, 2, 2, p, PatchOrder::Seed, cols);
  CHECK_EQ(cols[0], 0.0f);
  CHECK_EQ(cols[1], 3.0f);
  CHECK_EQ(cols[2], 1.0f);
  CHECK_EQ(cols[3], 4.0f);
  convx::im2col<float>(x, {1, 3, 3, 1}, 2, 2, p, PatchOrder::HWC, cols);
  CHECK_EQ(cols[1], 1.0f);
  CHECK_EQ(cols[2], 3.0f);
}

template <typename T>
void pad_matches(Layout layout) {
  const convx::Dims4 d{2, 3, 4, 3};
  const convx::Padding2D pads[] = {{0, 0, 0, 0}, {1, 0, 0, 2}, {0, 3, 1, 0}, {2, 1, 3, 1}};
  const std::vector<T> x = ref::uniform<T>(d.n * d.h * d.w * d.c, 3);
  for (const convx::Padding2D& p : pads) {
    const int64_t hp = d.h + p.top + p.bottom, wp = d.w + p.left + p.right;
    std::vector<T> got(static_cast<std::size_t>(d.n * hp * wp * d.c), T(-1));
    convx::pad<T>(x.data(), d, p, layout, got.data());
    CONTEXT(layout == Layout::NHWC ? "NHWC" : "NCHW", " pad(t,b,l,r)=", p.top, ",", p.bottom, ",",
            p.left, ",", p.right);
    for (int64_t b = 0; b < d.n; ++b) {
      for (int64_t r = 0; r < hp; ++r) {
        for (int64_t c = 0; c < wp; ++c) {
          for (int64_t ch = 0; ch < d.c; ++ch) {
            const int64_t ir = r - p.top, ic = c - p.left;
            const bool inside = ir >= 0 && ir < d.h && ic >= 0 && ic < d.w;
            const int64_t src = layout == Layout::NHWC ? ((b * d.h + ir) * d.w + ic) * d.c + ch
                                                       : ((b * d.c + ch) * d.h + ir) * d.w + ic;
            const int64_t dst = layout == Layout::NHWC ? ((b * hp + r) * wp + c) * d.c + ch
                                                       : ((b * d.c + ch) * hp + r) * wp + c;
            const T want = inside ? x[static_cast<std::size_t>(src)] : T(0);
            if (got[static_cast<std::size_t>(dst)] != want) {
              ::check::fail(__FILE__, __LINE__, ::check::str("padded element ", dst, " is wrong"));
              return;
            }
          }
        }
      }
    }
  }
}

TEST_CASE("pad: asymmetric zero padding in both layouts") {
  pad_matches<float>(Layout::NHWC);
  pad_matches<float>(Layout::NCHW);
  pad_matches<double>(Layout::NHWC);
  pad_matches<double>(Layout::NCHW);
}

TEST_CASE_ISA("im2col + gemm with OHWI weights equals conv2d (NHWC)") {
  for (const convx::ConvShape& s : ref::random_shapes(40, 5, Layout::NHWC)) {
    if (s.groups() != 1) continue;
    const std::vector<float> x = ref::small_ints<float>(s.input_size(), 1);
    const std::vector<float> w = ref::small_ints<float>(s.weight_size(), 2);
    const int64_t rows = s.n * s.h_out * s.w_out, K = s.patch_size();
    std::vector<float> cols(static_cast<std::size_t>(rows * K));
    convx::im2col<float>(x.data(), {s.n, s.h, s.w, s.c_in}, s.k_h, s.k_w, s.p, PatchOrder::HWC,
                         cols.data());
    std::vector<float> via_gemm(static_cast<std::size_t>(s.output_size()));
    // Y[rows x c_out] = cols[rows x K] * W^T, W being (c_out x K) row-major.
    convx::gemm<float>(rows, s.c_out, K, cols.data(), K, 1, w.data(), 1, K, via_gemm.data(),
                       s.c_out, 1);
    std::vector<float> direct(via_gemm.size());
    convx::conv2d<float>(s, x.data(), w.data(), nullptr, direct.data());
    CONTEXT(ref::describe(s));
    CHECK(via_gemm == direct);
  }
}

}  // namespace
