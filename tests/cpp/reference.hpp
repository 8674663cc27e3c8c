// Test oracles and helpers: deterministic data, the direct convolution formula,
// a reference im2col and a naive GEMM. Everything here is written for clarity,
// not speed, and shares no code with the library.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "convx/convx.hpp"

namespace ref {

using std::int64_t;

// Small integers in [-r, r] as T: sums of a few thousand such products are
// exact in float32, so results can be compared for exact equality.
template <typename T>
std::vector<T> small_ints(int64_t count, std::uint32_t seed, int r = 4) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> dist(-r, r);
  std::vector<T> v(static_cast<std::size_t>(count));
  for (T& e : v) e = static_cast<T>(dist(gen));
  return v;
}

template <typename T>
std::vector<T> uniform(int64_t count, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  std::vector<T> v(static_cast<std::size_t>(count));
  for (T& e : v) e = static_cast<T>(dist(gen));
  return v;
}

// C(i,j) = [accumulate ? C(i,j) : 0] + sum_p A(i,p) B(p,j), then bias and ReLU,
// in double; X(i,j) at x[i*rs + j*cs].
template <typename T>
void gemm_naive(int64_t m, int64_t n, int64_t k, const T* a, int64_t rs_a, int64_t cs_a,
                const T* b, int64_t rs_b, int64_t cs_b, T* c, int64_t rs_c, int64_t cs_c,
                bool accumulate, const convx::Epilogue<T>& ep = {}) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double acc = accumulate ? static_cast<double>(c[i * rs_c + j * cs_c]) : 0.0;
      for (int64_t p = 0; p < k; ++p) {
        acc += static_cast<double>(a[i * rs_a + p * cs_a]) * static_cast<double>(b[p * rs_b + j * cs_b]);
      }
      if (ep.bias_mode == convx::BiasMode::PerRow) acc += static_cast<double>(ep.bias[i]);
      if (ep.bias_mode == convx::BiasMode::PerColumn) acc += static_cast<double>(ep.bias[j]);
      if (ep.activation == convx::Activation::ReLU && !(acc > 0.0)) acc = 0.0;
      c[i * rs_c + j * cs_c] = static_cast<T>(acc);
    }
  }
}

// Element offsets of the 4-D tensors, per layout.
inline int64_t x_index(const convx::ConvShape& s, int64_t b, int64_t r, int64_t c, int64_t ch) {
  return s.p.layout == convx::Layout::NHWC ? ((b * s.h + r) * s.w + c) * s.c_in + ch
                                           : ((b * s.c_in + ch) * s.h + r) * s.w + c;
}
inline int64_t w_index(const convx::ConvShape& s, int64_t m, int64_t u, int64_t v, int64_t q) {
  const int64_t cg = s.c_in_per_group();
  return s.p.layout == convx::Layout::NHWC ? ((m * s.k_h + u) * s.k_w + v) * cg + q   // OHWI
                                           : ((m * cg + q) * s.k_h + u) * s.k_w + v;  // OIHW
}
inline int64_t y_index(const convx::ConvShape& s, int64_t b, int64_t i, int64_t j, int64_t m) {
  return s.p.layout == convx::Layout::NHWC ? ((b * s.h_out + i) * s.w_out + j) * s.c_out + m
                                           : ((b * s.c_out + m) * s.h_out + i) * s.w_out + j;
}

// The defining formula, summed directly in double:
//   y[b,i,j,m] = act(bias[m] + sum_u sum_v sum_q x_pad[b, i*s_h + u*d_h, j*s_w + v*d_w, g*cg + q]
//                                                  * w[m, u, v, q]),  g = m / (c_out/groups).
template <typename T>
std::vector<double> conv2d_direct(const convx::ConvShape& s, const T* x, const T* w,
                                  const T* bias, bool relu) {
  std::vector<double> y(static_cast<std::size_t>(s.output_size()));
  const int64_t cg = s.c_in_per_group(), mg = s.c_out_per_group();
  for (int64_t b = 0; b < s.n; ++b) {
    for (int64_t i = 0; i < s.h_out; ++i) {
      for (int64_t j = 0; j < s.w_out; ++j) {
        for (int64_t m = 0; m < s.c_out; ++m) {
          const int64_t g = m / mg;
          double acc = bias != nullptr ? static_cast<double>(bias[m]) : 0.0;
          for (int64_t u = 0; u < s.k_h; ++u) {
            for (int64_t v = 0; v < s.k_w; ++v) {
              for (int64_t q = 0; q < cg; ++q) {
                const int64_t r = i * s.p.stride_h + u * s.p.dilation_h - s.p.pad.top;
                const int64_t c = j * s.p.stride_w + v * s.p.dilation_w - s.p.pad.left;
                if (r < 0 || r >= s.h || c < 0 || c >= s.w) continue;  // zero padding
                acc += static_cast<double>(x[x_index(s, b, r, c, g * cg + q)]) *
                       static_cast<double>(w[w_index(s, m, u, v, q)]);
              }
            }
          }
          if (relu && !(acc > 0.0)) acc = 0.0;
          y[static_cast<std::size_t>(y_index(s, b, i, j, m))] = acc;
        }
      }
    }
  }
  return y;
}

// Offset of patch element (u, v, q) within one flattened patch, per the
// PatchOrder definitions in types.hpp.
inline int64_t patch_offset(convx::PatchOrder order, int64_t k_h, int64_t k_w, int64_t cg,
                            int64_t u, int64_t v, int64_t q) {
  switch (order) {
    case convx::PatchOrder::HWC: return (u * k_w + v) * cg + q;
    case convx::PatchOrder::CHW: return (q * k_h + u) * k_w + v;
    case convx::PatchOrder::Seed: return q * k_h * k_w + v * k_h + u;
  }
  return -1;
}

// cols: (n, h_out, w_out, groups, k_h*k_w*cg), zeros where the patch hangs over the padding.
template <typename T>
std::vector<T> im2col_direct(const convx::ConvShape& s, const T* x, convx::PatchOrder order) {
  const int64_t G = s.groups(), cg = s.c_in_per_group(), K = s.patch_size();
  std::vector<T> cols(static_cast<std::size_t>(s.n * s.h_out * s.w_out * G * K), T(0));
  for (int64_t b = 0; b < s.n; ++b) {
    for (int64_t i = 0; i < s.h_out; ++i) {
      for (int64_t j = 0; j < s.w_out; ++j) {
        for (int64_t g = 0; g < G; ++g) {
          T* patch = cols.data() + (((b * s.h_out + i) * s.w_out + j) * G + g) * K;
          for (int64_t u = 0; u < s.k_h; ++u) {
            for (int64_t v = 0; v < s.k_w; ++v) {
              for (int64_t q = 0; q < cg; ++q) {
                const int64_t r = i * s.p.stride_h + u * s.p.dilation_h - s.p.pad.top;
                const int64_t c = j * s.p.stride_w + v * s.p.dilation_w - s.p.pad.left;
                if (r < 0 || r >= s.h || c < 0 || c >= s.w) continue;
                patch[patch_offset(order, s.k_h, s.k_w, cg, u, v, q)] =
                    x[x_index(s, b, r, c, g * cg + q)];
              }
            }
          }
        }
      }
    }
  }
  return cols;
}

// `count` valid, varied geometries: batch 1-2, spatial 1-9, 1-3 groups, kernel
// 1-4, stride 1-3, dilation 1-2, independent padding 0-2 on each side, in
// `layout`. Deterministic for a seed.
inline std::vector<convx::ConvShape> random_shapes(int count, std::uint32_t seed,
                                                   convx::Layout layout) {
  std::mt19937 gen(seed);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(gen); };
  std::vector<convx::ConvShape> out;
  while (static_cast<int>(out.size()) < count) {
    convx::ConvParams p;
    p.layout = layout;
    p.groups = pick(1, 3);
    p.stride_h = pick(1, 3);
    p.stride_w = pick(1, 3);
    p.dilation_h = pick(1, 2);
    p.dilation_w = pick(1, 2);
    p.pad = {pick(0, 2), pick(0, 2), pick(0, 2), pick(0, 2)};
    const int64_t n = pick(1, 2), h = pick(1, 9), w = pick(1, 9);
    const int64_t c_in = p.groups * pick(1, 4), c_out = p.groups * pick(1, 5);
    const int64_t k_h = pick(1, 4), k_w = pick(1, 4);
    // Keep only geometries whose dilated kernel fits the padded input.
    if ((k_h - 1) * p.dilation_h + 1 > h + p.pad.top + p.pad.bottom) continue;
    if ((k_w - 1) * p.dilation_w + 1 > w + p.pad.left + p.pad.right) continue;
    out.push_back(convx::make_conv_shape(n, h, w, c_in, c_out, k_h, k_w, p));
  }
  return out;
}

inline std::string describe(const convx::ConvShape& s) {
  std::ostringstream o;
  o << (s.p.layout == convx::Layout::NHWC ? "NHWC" : "NCHW") << " n=" << s.n << " h=" << s.h
    << " w=" << s.w << " c_in=" << s.c_in << " c_out=" << s.c_out << " k=" << s.k_h << "x"
    << s.k_w << " stride=" << s.p.stride_h << "," << s.p.stride_w << " dilation="
    << s.p.dilation_h << "," << s.p.dilation_w << " pad(t,b,l,r)=" << s.p.pad.top << ","
    << s.p.pad.bottom << "," << s.p.pad.left << "," << s.p.pad.right << " groups=" << s.p.groups
    << " out=" << s.h_out << "x" << s.w_out;
  return o.str();
}

// 64-byte aligned storage, as the micro-kernel contract requires of packed panels.
template <typename T>
class AlignedArray {
 public:
  explicit AlignedArray(std::size_t count)
      : data_(static_cast<T*>(std::aligned_alloc(64, (count * sizeof(T) + 63) / 64 * 64 + 64))) {
    if (data_ == nullptr) throw std::bad_alloc();
  }
  ~AlignedArray() { std::free(data_); }
  AlignedArray(const AlignedArray&) = delete;
  AlignedArray& operator=(const AlignedArray&) = delete;
  T* data() { return data_; }
  T& operator[](std::size_t i) { return data_[i]; }

 private:
  T* data_;
};

// |got - want| <= atol + rtol*|want| for every element; returns the first bad index or -1.
template <typename T>
int64_t first_mismatch(const T* got, const std::vector<double>& want, double rtol, double atol) {
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double g = static_cast<double>(got[i]);
    if (!(std::fabs(g - want[i]) <= atol + rtol * std::fabs(want[i]))) return static_cast<int64_t>(i);
  }
  return -1;
}

}  // namespace ref
