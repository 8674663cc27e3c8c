// Operands held as plain strided matrices: packed on the fly (StridedMatrix)
// or packed once for many GEMMs (PrepackedB).
#pragma once

#include <cstdint>

#include "gemm/source.hpp"

namespace convx::detail {

// A matrix with element (i, j) at data[i*rs + j*cs], usable as either operand.
template <typename T>
class StridedMatrix final : public ASource<T>, public BSource<T> {
 public:
  // k_block > 0 is the K block the owner wants as the A operand (see
  // ASource::k_block), e.g. to match a matrix that was packed ahead of time
  // for the other operand; 0 leaves it to the kernel.
  StridedMatrix(const T* data, std::int64_t rs, std::int64_t cs, std::int64_t k_block = 0)
      : data_(data), rs_(rs), cs_(cs), k_block_(k_block) {}

  void pack_rows(T* dst, std::int64_t ld, std::int64_t r0, std::int64_t rows, std::int64_t k0,
                 std::int64_t kc) const override;
  bool reads_in_place() const override { return cs_ == 1; }
  // Rows of at least 128 bytes. Reading A in place saves a copy of every
  // row per column block, which costs most where K and N are short (a grouped
  // 1x1 of 160 -> 40 channels); rows of a few values are cheaper to read
  // packed than as MR lines each.
  const T* rows_in_place(std::int64_t r0, std::int64_t /*rows*/, std::int64_t k0,
                         std::int64_t kc, std::int64_t* ld, std::int64_t* /*run*/,
                         std::int64_t* /*run_step*/) const override {
    if (cs_ != 1 || kc * std::int64_t(sizeof(T)) < 128) return nullptr;
    *ld = rs_;
    return data_ + r0 * rs_ + k0;
  }
  std::int64_t k_block(const GemmKernel<T>& kern) const override {
    return k_block_ > 0 ? k_block_ : kern.kc;
  }

  void pack_panels(const GemmKernel<T>& kern, T* dst, std::int64_t j0, std::int64_t cols,
                   std::int64_t k0, std::int64_t kc) const override;

 private:
  const T* data_;
  std::int64_t rs_, cs_, k_block_;
};

// B packed once for one kernel, so that the GEMMs that share it (a constant
// right operand) skip packing it. A GEMM whose kernel or K block differs from the ones it
// was packed for packs from the original matrix instead, which it keeps a
// view of.
template <typename T>
class PrepackedB final : public BSource<T> {
 public:
  // Packs the k x n matrix with element (p, j) at data[p*rs + j*cs] for
  // `kern` in K blocks of kc (0: kern.kc). kc must be the K block of the
  // GEMMs that are to use it (their ASource::k_block), or they cannot. The
  // data must outlive this object.
  PrepackedB(const GemmKernel<T>& kern, const T* data, std::int64_t rs, std::int64_t cs,
             std::int64_t k, std::int64_t n, std::int64_t kc);
  ~PrepackedB() override;
  PrepackedB(const PrepackedB&) = delete;
  PrepackedB& operator=(const PrepackedB&) = delete;

  void pack_panels(const GemmKernel<T>& kern, T* dst, std::int64_t j0, std::int64_t cols,
                   std::int64_t k0, std::int64_t kc) const override {
    raw_.pack_panels(kern, dst, j0, cols, k0, kc);
  }
  const T* prepacked(int nr, std::int64_t kc, std::int64_t* n_pad) const override;
  std::int64_t bytes() const { return bytes_; }

 private:
  StridedMatrix<T> raw_;
  T* packed_ = nullptr;
  std::int64_t bytes_ = 0, n_pad_ = 0, kc_ = 0;
  int nr_ = 0;
};

}  // namespace convx::detail
