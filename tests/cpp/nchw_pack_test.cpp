// The NCHW patch source (conv/nchw_patches.hpp) and the patch-row kernels
// behind it (kernels/patch_pack.hpp), on every path this CPU has: B
// micro-panels packed at random positions (panels crossing one to many output
// rows, the last one partial, K blocks starting and ending inside a channel)
// must equal, value for value, the patch matrix written here from the padding
// modes' definitions, for image widths 1-70, filters of 1-7, strides 1-3,
// dilations 1-3, paddings 0-3 on each side and all four padding modes, f32
// and f64. Lanes past the last column must be zero.
#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include "check.hpp"
#include "conv/blocking.hpp"
#include "conv/nchw_patches.hpp"
#include "gemm/blocking.hpp"
#include "kernels/kernel_table.hpp"

namespace {

using std::int64_t;
using convx::ConvParams;
using convx::ConvShape;
using convx::PaddingMode;

// Where padded coordinate i of an axis of extent n reads, or -1 for a zero,
// written from the definitions in docs/math.md.
int64_t source(int64_t i, int64_t n, PaddingMode mode) {
  if (i >= 0 && i < n) return i;
  switch (mode) {
    case PaddingMode::Zeros: return -1;
    case PaddingMode::Reflect: return i < 0 ? -i : 2 * (n - 1) - i;
    case PaddingMode::Replicate: return i < 0 ? 0 : n - 1;
    case PaddingMode::Circular: return ((i % n) + n) % n;
  }
  return -1;
}

// The real kernel behind a counting one, so that a case can show it ran.
template <typename T>
struct Counted {
  static inline convx::detail::PatchRowsFn<T> real = nullptr;
  static inline int64_t calls = 0;
  static void fn(const convx::detail::PatchRows<T>& job) {
    ++calls;
    real(job);
  }
};

template <typename T>
void check_panels(convx::Isa isa, std::mt19937& rng) {
  const auto& ks = convx::detail::kernels_for<T>(isa);
  const int nr = ks.gemm.nr;
  Counted<T>::real = ks.patch.fn;
  const convx::detail::PatchPackKernel<T> counting{&Counted<T>::fn, ks.patch.lanes,
                                                    ks.patch.name};
  auto pick = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  const PaddingMode modes[] = {PaddingMode::Zeros, PaddingMode::Reflect, PaddingMode::Replicate,
                               PaddingMode::Circular};
  int cases = 0;
  for (int attempt = 0; cases < 160 && attempt < 2000; ++attempt) {
    ConvParams p;
    p.stride_h = pick(1, 3);
    p.stride_w = pick(1, 3);
    p.dilation_h = pick(1, 3);
    p.dilation_w = pick(1, 3);
    p.pad = {pick(0, 3), pick(0, 3), pick(0, 3), pick(0, 3)};
    p.padding_mode = modes[pick(0, 3)];
    p.layout = convx::Layout::NCHW;
    const int64_t k_h = pick(1, 7), k_w = pick(1, 7), c = pick(1, 5);
    const int64_t h = pick(1, 12), w = pick(1, 70);
    ConvShape s;
    try {
      s = convx::make_conv_shape(1, h, w, c, 1, k_h, k_w, p);
    } catch (const std::invalid_argument&) {
      continue;  // no output, or a padding the mode does not allow
    }
    ++cases;
    CONTEXT("h=", h, " w=", w, " c=", c, " k=", k_h, "x", k_w, " stride=", p.stride_h, ",",
            p.stride_w, " dilation=", p.dilation_h, ",", p.dilation_w, " pad=", p.pad.top, ",",
            p.pad.bottom, ",", p.pad.left, ",", p.pad.right, " mode=",
            static_cast<int>(p.padding_mode));
    std::vector<T> x(static_cast<std::size_t>(c * h * w));
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = T(1 + int64_t(i) % 97);
    const int64_t pixels = s.h_out * s.w_out, K = s.patch_size();
    const convx::detail::NchwPatchColumns<T> source_(s, x.data(), counting);
    for (int pos = 0; pos < 4; ++pos) {
      const int64_t j0 = pick(0, pixels - 1), cols = pick(1, std::min<int64_t>(3 * nr, pixels - j0));
      const int64_t k0 = pick(0, K - 1), kc = pick(1, K - k0);
      CONTEXT("j0=", j0, " cols=", cols, " k0=", k0, " kc=", kc);
      const int64_t panels = (cols + nr - 1) / nr;
      std::vector<T> dst(static_cast<std::size_t>(panels * kc * nr), T(NAN));
      const int64_t before = Counted<T>::calls;
      source_.pack_panels(ks.gemm, dst.data(), j0, cols, k0, kc);
      CHECK(Counted<T>::calls > before);
      int64_t wrong = 0;
      for (int64_t jj = 0; jj < panels * nr; ++jj) {
        for (int64_t pp = 0; pp < kc; ++pp) {
          T want = T(0);
          if (jj < cols) {
            const int64_t col = j0 + jj, kk = k0 + pp;
            const int64_t ch = kk / (k_h * k_w), u = kk / k_w % k_h, v = kk % k_w;
            const int64_t oh = col / s.w_out, ow = col % s.w_out;
            const int64_t ih = source(oh * p.stride_h - p.pad.top + u * p.dilation_h, h,
                                      p.padding_mode);
            const int64_t iw = source(ow * p.stride_w - p.pad.left + v * p.dilation_w, w,
                                      p.padding_mode);
            if (ih >= 0 && iw >= 0) want = x[static_cast<std::size_t>((ch * h + ih) * w + iw)];
          }
          const T got = dst[static_cast<std::size_t>((jj / nr) * kc * nr + pp * nr + jj % nr)];
          if (!(got == want)) ++wrong;
        }
      }
      CHECK_EQ(wrong, int64_t(0));
    }
  }
  CHECK(cases >= 100);
}

}  // namespace

TEST_CASE_ISA("nchw patches: panels from the patch-row kernel equal the patch matrix") {
  std::mt19937 rng(1234);
  check_panels<float>(isa, rng);
  check_panels<double>(isa, rng);
}

// The NCHW K block: for filters of one M block, whole channels within the
// limit (a B micro-panel of half the kernel's A block, or kc) in the fewest
// blocks that fit, so ResNet's 64-channel 3x3 is one block on a kernel whose
// limit allows it; more filters than an M block, or a filter whose taps
// exceed the limit, keep the kernel's kc.
template <typename T>
void check_nchw_k_block(convx::Isa isa) {
  const auto& kern = convx::detail::kernels_for<T>(isa).gemm;
  const int64_t limit = std::max(kern.kc, kern.mc * kern.kc / (2 * int64_t(kern.nr)));
  for (int64_t taps : {1, 4, 9, 25, 49}) {
    for (int64_t c = 1; c <= 600; ++c) {
      CONTEXT("taps=", taps, " channels=", c);
      const int64_t kc = convx::detail::nchw_k_block(kern, kern.mc, taps, c);
      const int64_t blocks = (taps * c + kc - 1) / kc;
      CHECK_EQ(kc % taps, int64_t{0});
      CHECK(kc <= limit);
      CHECK(kc >= taps);
      CHECK_EQ(blocks, (c + limit / taps - 1) / (limit / taps));  // the fewest that fit
    }
  }
  if (9 * 64 <= limit) CHECK_EQ(convx::detail::nchw_k_block(kern, 64, 9, 64), int64_t{576});
  CHECK_EQ(convx::detail::nchw_k_block(kern, 64, limit + 1, 3), kern.kc);
  CHECK_EQ(convx::detail::nchw_k_block(kern, kern.mc + 1, 9, 64), kern.kc);
}

TEST_CASE_ISA("nchw patches: the K block of one M block of filters is whole channels, as few as fit") {
  check_nchw_k_block<float>(isa);
  check_nchw_k_block<double>(isa);
}

TEST_CASE("gemm: streamed B packs at most kStreamBytes of panels, and at least one") {
  using convx::detail::kStreamBytes;
  using convx::detail::kStreamPanels;
  using convx::detail::stream_panels;
  CHECK_EQ(stream_panels(256, 32, 4), kStreamPanels);  // the L1-sized kc of f32 12x32
  CHECK_EQ(stream_panels(576, 32, 4), kStreamBytes / (576 * 32 * 4));
  CHECK_EQ(stream_panels(100000, 32, 8), int64_t{1});
  for (int64_t kc = 1; kc <= 4096; kc += 37) {
    const int64_t panels = stream_panels(kc, 16, 4);
    CHECK(panels >= 1 && panels <= kStreamPanels);
    CHECK(panels == 1 || panels * kc * 16 * 4 <= kStreamBytes);
  }
}
