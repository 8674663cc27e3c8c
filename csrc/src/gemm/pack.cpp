#include "gemm/pack.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "common/checked.hpp"
#include "gemm/blocking.hpp"

namespace convx::detail {

namespace {

// Rows ahead that pack_panels() prefetches when it copies rows of B.
constexpr std::int64_t kPackAhead = 8;

}  // namespace

template <typename T>
void StridedMatrix<T>::pack_rows(T* dst, std::int64_t ld, std::int64_t r0, std::int64_t rows,
                                 std::int64_t k0, std::int64_t kc) const {
  const T* src = data_ + r0 * rs_ + k0 * cs_;
  if (cs_ == 1) {
    for (std::int64_t i = 0; i < rows; ++i) {
      std::memcpy(dst + i * ld, src + i * rs_, static_cast<std::size_t>(kc) * sizeof(T));
    }
    return;
  }
  // Transposing copy: read along the contiguous-ish axis in short row strips.
  constexpr std::int64_t kStrip = 8;
  for (std::int64_t i0 = 0; i0 < rows; i0 += kStrip) {
    const std::int64_t i1 = std::min(rows, i0 + kStrip);
    for (std::int64_t p = 0; p < kc; ++p) {
      for (std::int64_t i = i0; i < i1; ++i) dst[i * ld + p] = src[i * rs_ + p * cs_];
    }
  }
}

template <typename T>
void StridedMatrix<T>::pack_panels(const GemmKernel<T>& kern, T* dst, std::int64_t j0,
                                   std::int64_t cols, std::int64_t k0, std::int64_t kc) const {
  const int nr = kern.nr;
  if (cs_ == 1) {
    // Row by row across all the panels, so that each row of B is read as one
    // contiguous run rather than in nr-wide strips, one panel at a time.
    const std::int64_t full = cols / nr, tail = cols - full * nr;
    const std::int64_t run_bytes = cols * std::int64_t(sizeof(T));
    for (std::int64_t p = 0; p < kc; ++p) {
      const T* src = data_ + (k0 + p) * rs_ + j0;
      if (p + kPackAhead < kc) {
        // Rows are far apart: ask for a later row now, so that several are
        // in flight from memory while this one is copied.
        const char* ahead = reinterpret_cast<const char*>(src + kPackAhead * rs_);
        for (std::int64_t off = 0; off < run_bytes; off += 64) __builtin_prefetch(ahead + off);
      }
      T* out = dst + p * nr;
      for (std::int64_t q = 0; q < full; ++q) {
        std::memcpy(out + q * kc * nr, src + q * nr, static_cast<std::size_t>(nr) * sizeof(T));
      }
      if (tail > 0) {
        T* o = out + full * kc * nr;
        std::memcpy(o, src + full * nr, static_cast<std::size_t>(tail) * sizeof(T));
        std::fill(o + tail, o + nr, T(0));
      }
    }
    return;
  }
  if (rs_ == 1 && nr % 8 == 0 && kern.pack_columns != nullptr) {
    kern.pack_columns(dst, data_ + k0 + j0 * cs_, cs_, cols, kc, nr);
    return;
  }
  for (std::int64_t q = 0; q * nr < cols; ++q) {
    const std::int64_t live = std::min<std::int64_t>(nr, cols - q * nr);
    const T* src = data_ + k0 * rs_ + (j0 + q * nr) * cs_;
    T* out = dst + q * kc * nr;
    // Columns of B are rows in memory (B is a transposed view): read each
    // along K and scatter into the panel, which stays in L1 meanwhile.
    for (std::int64_t j = 0; j < live; ++j) {
      const T* s = src + j * cs_;
      for (std::int64_t p = 0; p < kc; ++p) out[p * nr + j] = s[p * rs_];
    }
    if (live < nr) {
      for (std::int64_t p = 0; p < kc; ++p) std::fill(out + p * nr + live, out + (p + 1) * nr, T(0));
    }
  }
}

template <typename T>
PrepackedB<T>::PrepackedB(const GemmKernel<T>& kern, const T* data, std::int64_t rs,
                          std::int64_t cs, std::int64_t k, std::int64_t n, std::int64_t kc)
    : raw_(data, rs, cs) {
  nr_ = kern.nr;
  kc_ = kc > 0 ? kc : kern.kc;
  n_pad_ = round_up(std::max<std::int64_t>(n, 1), nr_);
  const std::int64_t k_alloc = std::max<std::int64_t>(k, 1);
  bytes_ = checked_product("gemm: packed B", k_alloc, n_pad_, std::int64_t(sizeof(T)));
  packed_ = static_cast<T*>(std::aligned_alloc(64, static_cast<std::size_t>(round_up(bytes_, 64))));
  if (packed_ == nullptr) throw std::bad_alloc();
  for (std::int64_t pc = 0; pc < k; pc += kc_) {
    raw_.pack_panels(kern, packed_ + pc * n_pad_, 0, n, pc, std::min(kc_, k - pc));
  }
}

template <typename T>
PrepackedB<T>::~PrepackedB() {
  std::free(packed_);
}

template <typename T>
const T* PrepackedB<T>::prepacked(int nr, std::int64_t kc, std::int64_t* n_pad) const {
  if (nr != nr_ || kc != kc_) return nullptr;  // packed for another kernel or K block
  *n_pad = n_pad_;
  return packed_;
}

template class StridedMatrix<float>;
template class StridedMatrix<double>;
template class PrepackedB<float>;
template class PrepackedB<double>;

}  // namespace convx::detail
