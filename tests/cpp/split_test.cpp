// Layers whose work the pool shares out other than by the GEMM's M blocks:
// several groups in one job (parts of each group's rows, or of its weight
// gradient's columns), depthwise channel blocks of the weight gradient, and a
// small map with many channels (N split). Each is large enough to be split at
// two and three threads; the results must match the formula and be bitwise
// identical at 1, 2 and 3 threads. Built under ThreadSanitizer in CI.
#include <cstring>
#include <vector>

#include "check.hpp"
#include "reference.hpp"

namespace {

using std::int64_t;
using convx::ConvShape;
using convx::Layout;

struct Case {
  int64_t n, h, w, c_in, c_out, k, stride, pad, groups;
};

// A grouped 1x1 and 3x3 (ShuffleNet-like), depthwise at stride 1 and 2, a
// 7x7 map of 256 channels, one-channel images (a weight gradient of 9
// columns, split below one micro-panel), and 48 filters over 160 channels
// (NCHW: several of the long K blocks of nchw_k_block, N split).
const Case kCases[] = {
    {1, 28, 28, 48, 48, 1, 1, 0, 3}, {2, 20, 20, 24, 40, 3, 1, 1, 4},
    {1, 30, 30, 80, 80, 3, 1, 1, 80}, {2, 21, 21, 48, 48, 3, 2, 1, 48},
    {1, 7, 7, 256, 256, 3, 1, 1, 1}, {8, 28, 28, 1, 32, 3, 1, 0, 1},
    {1, 9, 9, 160, 48, 3, 1, 1, 1},
};

ConvShape shape_of(const Case& c, Layout layout) {
  convx::ConvParams p;
  p.layout = layout;
  p.stride_h = p.stride_w = c.stride;
  p.pad = {c.pad, c.pad, c.pad, c.pad};
  p.groups = c.groups;
  return convx::make_conv_shape(c.n, c.h, c.w, c.c_in, c.c_out, c.k, c.k, p);
}

// Restores the thread count the test started with.
struct ThreadsRestored {
  int saved = convx::num_threads();
  ~ThreadsRestored() { convx::set_num_threads(saved); }
};

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Calls term(y_i, x_i, w_i) with the indices of every product x * w of the
// forward sums (zero padding): the gradients are sums of these terms.
template <typename Fn>
void each_term(const ConvShape& s, Fn term) {
  const int64_t cg = s.c_in_per_group(), mg = s.c_out_per_group();
  for (int64_t b = 0; b < s.n; ++b) {
    for (int64_t i = 0; i < s.h_out; ++i) {
      for (int64_t j = 0; j < s.w_out; ++j) {
        for (int64_t m = 0; m < s.c_out; ++m) {
          for (int64_t u = 0; u < s.k_h; ++u) {
            for (int64_t v = 0; v < s.k_w; ++v) {
              const int64_t r = i * s.p.stride_h + u - s.p.pad.top;
              const int64_t col = j * s.p.stride_w + v - s.p.pad.left;
              if (r < 0 || r >= s.h || col < 0 || col >= s.w) continue;
              for (int64_t q = 0; q < cg; ++q) {
                term(static_cast<std::size_t>(ref::y_index(s, b, i, j, m)),
                     static_cast<std::size_t>(ref::x_index(s, b, r, col, m / mg * cg + q)),
                     static_cast<std::size_t>(ref::w_index(s, m, u, v, q)));
              }
            }
          }
        }
      }
    }
  }
}

}  // namespace

TEST_CASE_ISA("threads: grouped, depthwise and small-map layers equal one thread bit for bit") {
  ThreadsRestored restore;
  for (const Case& c : kCases) {
    for (Layout layout : {Layout::NHWC, Layout::NCHW}) {
      const ConvShape s = shape_of(c, layout);
      CONTEXT(ref::describe(s));
      const std::vector<float> x = ref::uniform<float>(s.input_size(), 1);
      const std::vector<float> w = ref::uniform<float>(s.weight_size(), 2);
      const std::vector<float> bias = ref::uniform<float>(s.c_out, 3);
      std::vector<std::vector<float>> runs;
      for (int threads : {1, 2, 3, 1}) {
        convx::set_num_threads(threads);
        std::vector<float> y(static_cast<std::size_t>(s.output_size()));
        convx::conv2d<float>(s, x.data(), w.data(), bias.data(), y.data(),
                             convx::Activation::ReLU);
        runs.push_back(y);
      }
      const std::vector<double> want = ref::conv2d_direct(s, x.data(), w.data(), bias.data(), true);
      CHECK_EQ(ref::first_mismatch(runs[0].data(), want, 1e-4, 1e-4), int64_t{-1});
      for (const auto& r : runs) CHECK(same_bits(r, runs[0]));
    }
  }
}

TEST_CASE("threads: grouped and depthwise weight gradients equal one thread bit for bit") {
  ThreadsRestored restore;
  for (const Case& c : kCases) {
    for (Layout layout : {Layout::NHWC, Layout::NCHW}) {
      const ConvShape s = shape_of(c, layout);
      CONTEXT(ref::describe(s));
      const std::vector<float> x = ref::uniform<float>(s.input_size(), 4);
      const std::vector<float> dy = ref::uniform<float>(s.output_size(), 5);
      std::vector<std::vector<float>> runs;
      for (int threads : {1, 2, 3, 1}) {
        convx::set_num_threads(threads);
        std::vector<float> dw(static_cast<std::size_t>(s.weight_size()));
        convx::conv2d_backward_weights<float>(s, x.data(), dy.data(), dw.data(), nullptr);
        runs.push_back(dw);
      }
      // dw[m, u, v, q] = the sum of dy * x over the terms it multiplies.
      std::vector<double> want(runs[0].size(), 0.0);
      each_term(s, [&](std::size_t yi, std::size_t xi, std::size_t wi) {
        want[wi] += double(dy[yi]) * double(x[xi]);
      });
      CHECK_EQ(ref::first_mismatch(runs[0].data(), want, 1e-3, 1e-3), int64_t{-1});
      for (const auto& r : runs) CHECK(same_bits(r, runs[0]));
    }
  }
}

TEST_CASE("threads: input gradients by col2im equal one thread bit for bit") {
  ThreadsRestored restore;
  // A stem on one image (its accumulation split into bands of rows), and a
  // grouped batch (one task per image and group).
  const Case cases[] = {{1, 112, 112, 3, 16, 7, 2, 3, 1}, {3, 20, 20, 8, 12, 3, 1, 1, 2}};
  for (const Case& c : cases) {
    for (Layout layout : {Layout::NHWC, Layout::NCHW}) {
      const ConvShape s = shape_of(c, layout);
      CONTEXT(ref::describe(s));
      const std::vector<float> w = ref::uniform<float>(s.weight_size(), 6);
      const std::vector<float> dy = ref::uniform<float>(s.output_size(), 7);
      std::vector<std::vector<float>> runs;
      for (int threads : {1, 2, 3, 1}) {
        convx::set_num_threads(threads);
        std::vector<float> dx(static_cast<std::size_t>(s.input_size()));
        convx::conv2d_backward_data<float>(s, dy.data(), w.data(), dx.data());
        runs.push_back(dx);
      }
      // dx[b, r, col, c] = the sum of dy * w over the terms it multiplies.
      std::vector<double> want(runs[0].size(), 0.0);
      each_term(s, [&](std::size_t yi, std::size_t xi, std::size_t wi) {
        want[xi] += double(dy[yi]) * double(w[wi]);
      });
      CHECK_EQ(ref::first_mismatch(runs[0].data(), want, 1e-4, 1e-4), int64_t{-1});
      for (const auto& r : runs) CHECK(same_bits(r, runs[0]));
    }
  }
}
