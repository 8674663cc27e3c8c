// The portable blocked GEMM driver (BLIS-style loops around a micro-kernel).
//
// Operands reach the driver through two small interfaces that pack a block of
// themselves into the layouts of kernels/ukernel.hpp: an ASource copies rows
// of A, a BSource fills B micro-panels. A strided matrix implements both;
// convolution supplies sources that gather im2col patches straight from the
// image, so the full im2col matrix never exists.
#pragma once

#include <cstdint>

#include "convx/gemm.hpp"

namespace convx::detail {

// The left operand, (rows x K).
template <typename T>
class ASource {
 public:
  virtual ~ASource() = default;
  // Copies rows [r0, r0+rows), K range [k0, k0+kc), row-major into dst with
  // row stride ld: element (r0 + i, k0 + p) goes to dst[i*ld + p].
  virtual void pack_rows(T* dst, std::int64_t ld, std::int64_t r0, std::int64_t rows,
                         std::int64_t k0, std::int64_t kc) const = 0;
};

// The right operand, (K x cols), seen through its columns.
template <typename T>
class BSource {
 public:
  virtual ~BSource() = default;
  // Packs columns [j0, j0+cols), K range [k0, k0+kc) into ceil(cols/nr)
  // micro-panels of kc*nr values: element (k0 + p, j0 + q*nr + j) goes to
  // dst[q*kc*nr + p*nr + j]. Columns past `cols` in the last panel are zeroed.
  virtual void pack_panels(T* dst, std::int64_t j0, std::int64_t cols, std::int64_t k0,
                           std::int64_t kc, int nr) const = 0;
  // An operand packed ahead of time for this (nr, kc) returns the packed data,
  // laid out as pack_panels() of every column for each K block in turn (the
  // block starting at K index pc begins at pc * n_pad), and sets *n_pad.
  virtual const T* prepacked(int /*nr*/, std::int64_t /*kc*/, std::int64_t* /*n_pad*/) const {
    return nullptr;
  }
};

// A matrix with element (i, j) at data[i*rs + j*cs], usable as either operand.
template <typename T>
class StridedMatrix final : public ASource<T>, public BSource<T> {
 public:
  StridedMatrix(const T* data, std::int64_t rs, std::int64_t cs) : data_(data), rs_(rs), cs_(cs) {}
  void pack_rows(T* dst, std::int64_t ld, std::int64_t r0, std::int64_t rows, std::int64_t k0,
                 std::int64_t kc) const override;
  void pack_panels(T* dst, std::int64_t j0, std::int64_t cols, std::int64_t k0, std::int64_t kc,
                   int nr) const override;

 private:
  const T* data_;
  std::int64_t rs_, cs_;
};

class Executor;

// B packed once (e.g. a layer's weights) for the kernel active at packing
// time, so repeated GEMMs skip phase 1. If the kernel path changes later, it
// falls back to packing from the original matrix, which it keeps a view of.
template <typename T>
class PrepackedB final : public BSource<T> {
 public:
  // Packs the k x n matrix with element (p, j) at data[p*rs + j*cs]. The data
  // must outlive this object.
  PrepackedB(const T* data, std::int64_t rs, std::int64_t cs, std::int64_t k, std::int64_t n);
  ~PrepackedB() override;
  PrepackedB(const PrepackedB&) = delete;
  PrepackedB& operator=(const PrepackedB&) = delete;

  void pack_panels(T* dst, std::int64_t j0, std::int64_t cols, std::int64_t k0, std::int64_t kc,
                   int nr) const override {
    raw_.pack_panels(dst, j0, cols, k0, kc, nr);
  }
  const T* prepacked(int nr, std::int64_t kc, std::int64_t* n_pad) const override;
  std::int64_t bytes() const { return bytes_; }

 private:
  StridedMatrix<T> raw_;
  T* packed_ = nullptr;
  std::int64_t bytes_ = 0, n_pad_ = 0, kc_ = 0;
  int nr_ = 0;
};

// C[m x n] (=|+=) A[m x k] * B[k x n], then the epilogue; see gemm.hpp.
// Runs on `exec` when given (e.g. serially inside an outer parallel job),
// otherwise on a lease of the library's pool.
template <typename T>
void gemm_blocked(std::int64_t m, std::int64_t n, std::int64_t k, const ASource<T>& a,
                  const BSource<T>& b, T* c, std::int64_t rs_c, std::int64_t cs_c,
                  bool accumulate, const Epilogue<T>& ep, Executor* exec = nullptr);

// Scratch bytes gemm_blocked(m, n, k, ...) holds at most, over all threads:
// each task's packed A block (plus a B panel when B is packed on the fly) and
// the shared packed B block. Independent of m beyond one M block.
template <typename T>
std::int64_t gemm_workspace_bytes(std::int64_t m, std::int64_t n, std::int64_t k);

}  // namespace convx::detail
