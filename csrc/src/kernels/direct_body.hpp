// Body of the small-K direct convolution kernel (contract in direct.hpp),
// written against vector traits S (simd_scalar.hpp, simd_avx2.hpp,
// simd_avx512.hpp) and instantiated by each path's kernel file. Anonymous
// namespace: one copy per file.
#pragma once

#include "kernels/direct.hpp"

namespace convx::detail {
namespace {

// Stores P pixels' NV vectors of output channels (count of them: a row's last
// block may be short); the last vector holds `tail` channels, TAIL of them when
// known at compile time, which makes its partial store a single masked
// instruction instead of a loop over the channels.
template <typename S, typename T, int NV, int P, int TAIL>
inline __attribute__((always_inline)) void store_pixels(T* out0, std::int64_t y_step,
                                                        const typename S::V (&acc)[P][NV],
                                                        int count, bool relu, int tail) {
  constexpr int L = S::kLanes;
  const int n_last = TAIL > 0 ? TAIL : tail;
#pragma GCC unroll 4
  for (int p = 0; p < P; ++p) {  // constant bounds keep acc in registers
    if (p >= count) break;
    T* out = out0 + p * y_step;
    for (int j = 0; j < NV; ++j) {
      typename S::V val = acc[p][j];
      if (relu) val = S::relu(val);
      if (j + 1 < NV || n_last == L) {
        S::storeu(out + j * L, val);
      } else {
        S::storeu_n(out + j * L, val, n_last);
      }
    }
  }
}

// Adds the patches of P pixels lying wholly inside the image into acc: xp0 is
// the first pixel's patch, x_step the step to the next; one flat loop over the
// K patch values at the offsets off gives (pixels past the row's end are
// computed too, and then not stored). The geometry comes as the caller's
// locals rather than through r so the unrolled loop keeps it in registers.
template <typename S, typename T, int NV, int P, bool kKeepWeights>
inline __attribute__((always_inline)) void accumulate_interior(
    typename S::V (&acc)[P][NV], const T* xp0, std::int64_t x_step, const std::int64_t* off,
    std::int64_t K, const T* wbase, std::int64_t ld, const typename S::V* w_kept) {
  using V = typename S::V;
  constexpr int L = S::kLanes;
  const T* xp[P];  // each pixel's patch
  xp[0] = xp0;
  for (int p = 1; p < P; ++p) xp[p] = xp[p - 1] + x_step;
  // wk steps by ld rather than being wbase + t*ld: unrolled, the products
  // would be hoisted out of the pixel loop as K pointers and spilled.
  const T* wk = wbase;
#pragma GCC unroll 16
  for (std::int64_t t = 0; t < K; ++t, wk += ld) {
    const std::int64_t o = off[t];
    V a[P];
    for (int p = 0; p < P; ++p) a[p] = S::bcast(xp[p] + o);
    for (int j = 0; j < NV; ++j) {
      const V wv = kKeepWeights ? w_kept[t * NV + j] : S::loadu(wk + j * L);
      for (int p = 0; p < P; ++p) acc[p][j] = S::fma(a[p], wv, acc[p][j]);
    }
  }
}

// Adds the patches of the first `count` of P pixels into acc when some taps
// fall outside the image: those taps are skipped, the rest summed in the same
// order as accumulate_interior sums them.
template <typename S, typename T, int NV, int P>
inline __attribute__((always_inline)) void accumulate_edge(typename S::V (&acc)[P][NV],
                                                           const DirectRow<T>& r, const T* wbase,
                                                           std::int64_t ih0, std::int64_t iw0,
                                                           int count) {
  using V = typename S::V;
  constexpr int L = S::kLanes;
  const std::int64_t c_in = r.c_in, w_in = r.w_in, ld = r.ld, s_w = r.s_w, d_w = r.d_w;
  for (std::int64_t u = 0; u < r.k_h; ++u) {
    const std::int64_t ih = ih0 + u * r.d_h;
    if (ih < 0 || ih >= r.h) continue;
    const T* xrow = r.x + ih * w_in * c_in;
    for (std::int64_t v = 0; v < r.k_w; ++v) {
      const T* wk = wbase + ((u * r.k_w + v) * c_in) * ld;
      for (std::int64_t c = 0; c < c_in; ++c, wk += ld) {
        V wv[NV];
        for (int j = 0; j < NV; ++j) wv[j] = S::loadu(wk + j * L);
#pragma GCC unroll 4
        for (int p = 0; p < P; ++p) {  // constant bounds keep acc in registers
          const std::int64_t iw = iw0 + p * s_w + v * d_w;
          if (p >= count) break;
          if (iw < 0 || iw >= w_in) continue;
          const V a = S::bcast(xrow + iw * c_in + c);
          for (int j = 0; j < NV; ++j) acc[p][j] = S::fma(a, wv[j], acc[p][j]);
        }
      }
    }
  }
}

// Output channels [m0, m0 + NV*kLanes) of P neighbouring output pixels at a
// time, so every weight vector loaded serves P multiply-adds and P chains of
// FMAs overlap their latency. Each pixel's sum runs over the patch in the
// same order whatever P is.
// KC: the patch length when known at compile time (a 3x3 filter over one
// channel, the common case, is unrolled), or 0 to read it from r.
template <typename S, typename T, int NV, int P, int KC>
void direct_row_block(const DirectRow<T>& r, std::int64_t m0) {
  static_assert(P <= kDirectPixels, "the callers' staged rows allow kDirectPixels");
  using V = typename S::V;
  constexpr int L = S::kLanes;
  const std::int64_t live = r.c_out - m0;  // may be < NV*L in the last block
  // Output channels in the last of the NV vectors, in [1, L]: the callers'
  // NV never exceeds ld - m0 = (c_out rounded up to L) - m0 in vectors.
  const int tail = live >= NV * L ? L : static_cast<int>(live - (NV - 1) * L);
  const bool relu = r.relu;
  V bias[NV];
  for (int j = 0; j < NV; ++j) bias[j] = S::loadu(r.bias + m0 + j * L);
  // Geometry in locals: an interior pixel then runs one flat loop over the
  // patch, at the offsets r.off gives.
  const std::int64_t K = KC > 0 ? KC : r.k_h * r.k_w * r.c_in;
  const std::int64_t c_in = r.c_in, w_in = r.w_in, ld = r.ld, s_w = r.s_w;
  // Columns the P pixels' patches cover, minus one.
  const std::int64_t span_w = (r.k_w - 1) * r.d_w + (P - 1) * s_w;
  const std::int64_t* off = r.off;
  const T* wbase = r.wt + m0;
  // A short patch of known length keeps its weight vectors in registers for
  // the whole call (a 3x3 filter over one channel into one vector of output
  // channels: 9 vectors, next to the P = 4 accumulators) instead of loading
  // them per block.
  constexpr bool kKeepWeights = KC > 0 && NV * KC <= 9;
  V w_kept[kKeepWeights ? NV * KC : 1];
  if constexpr (kKeepWeights) {
    for (int t = 0; t < KC; ++t) {
      for (int j = 0; j < NV; ++j) w_kept[t * NV + j] = S::loadu(wbase + t * r.ld + j * L);
    }
  }
  // Pointer steps from one pixel of a block to the next, in the image and the output.
  const std::int64_t x_step = s_w * c_in, y_step = r.c_out;
  for (std::int64_t row = 0; row < r.rows; ++row) {
    const std::int64_t ih0 = (r.oh + row) * r.s_h - r.pad_top;
    const bool rows_inside = ih0 >= 0 && ih0 + (r.k_h - 1) * r.d_h < r.h;
    T* const y_row = r.y + row * r.w_out * r.c_out;
    for (std::int64_t ow = 0; ow < r.w_out; ow += P) {
      // No std::min: ISA files instantiate no std templates (see kernels.hpp).
      const int count = r.w_out - ow < P ? static_cast<int>(r.w_out - ow) : P;
      V acc[P][NV];
      for (int p = 0; p < P; ++p) {
        for (int j = 0; j < NV; ++j) acc[p][j] = bias[j];
      }
      const std::int64_t iw0 = ow * s_w - r.pad_left;
      if (rows_inside && iw0 >= 0 && iw0 + span_w < w_in) {
        accumulate_interior<S, T, NV, P, kKeepWeights>(acc, r.x + (ih0 * w_in + iw0) * c_in,
                                                       x_step, off, K, wbase, ld, w_kept);
      } else {
        accumulate_edge<S, T, NV, P>(acc, r, wbase, ih0, iw0, count);
      }
      T* const out0 = y_row + ow * y_step + m0;
      if (tail == L) {
        store_pixels<S, T, NV, P, L>(out0, y_step, acc, count, relu, tail);
      } else if (tail == L / 2) {
        store_pixels<S, T, NV, P, L / 2>(out0, y_step, acc, count, relu, tail);
      } else {
        store_pixels<S, T, NV, P, 0>(out0, y_step, acc, count, relu, tail);
      }
    }
  }
}

// Output channels in blocks of up to four vectors.
template <typename S, typename T, int KC>
void direct_row_k(const DirectRow<T>& r) {
  constexpr int L = S::kLanes;
  std::int64_t m0 = 0;
  // Pixels per step: as many as the registers hold (P*NV accumulators).
  for (; m0 + 4 * L <= r.ld; m0 += 4 * L) direct_row_block<S, T, 4, 2, KC>(r, m0);
  switch ((r.ld - m0) / L) {
    case 3: direct_row_block<S, T, 3, 2, KC>(r, m0); break;
    case 2: direct_row_block<S, T, 2, 4, KC>(r, m0); break;
    case 1: direct_row_block<S, T, 1, 4, KC>(r, m0); break;
    default: break;
  }
}

template <typename S, typename T>
void direct_row(const DirectRow<T>& r) {
  if (r.k_h * r.k_w * r.c_in == 9) {
    direct_row_k<S, T, 9>(r);
  } else {
    direct_row_k<S, T, 0>(r);
  }
}

}  // namespace
}  // namespace convx::detail
