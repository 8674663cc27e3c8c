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
#include "kernels/ukernel.hpp"

namespace convx::detail {

// The left operand, (rows x K).
template <typename T>
class ASource {
 public:
  virtual ~ASource() = default;
  virtual std::int64_t k_block(const GemmKernel<T>& kern) const { return kern.kc; }
  // Copies rows [r0, r0+rows), K range [k0, k0+kc), row-major into dst with
  // row stride ld: element (r0 + i, k0 + p) goes to dst[i*ld + p].
  virtual void pack_rows(T* dst, std::int64_t ld, std::int64_t r0, std::int64_t rows,
                         std::int64_t k0, std::int64_t kc) const = 0;
  // Whether rows_in_place() can ever succeed; if not, the driver packs whole
  // blocks without asking.
  virtual bool reads_in_place() const { return false; }
  // Rows [r0, r0+rows) over K range [k0, k0+kc) as they already lie in
  // memory, when they do: returns p with element (r0 + i, k0 + q) at
  // p[i * *ld + (q / *run) * *run_step + q % *run] and sets *ld (rows may
  // overlap). The caller sets *run = kc and *run_step = 0 beforehand: one
  // contiguous run per row unless the source says otherwise. Returns nullptr
  // when the rows must be packed instead. The driver asks only for whole
  // micro-panels.
  virtual const T* rows_in_place(std::int64_t /*r0*/, std::int64_t /*rows*/,
                                 std::int64_t /*k0*/, std::int64_t /*kc*/, std::int64_t* /*ld*/,
                                 std::int64_t* /*run*/, std::int64_t* /*run_step*/) const {
    return nullptr;
  }
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
  bool reads_in_place() const override { return cs_ == 1; }
  // Rows of at least 1 KiB: shorter ones stream from memory better as the
  // packer's one contiguous copy than as MR interleaved reads.
  const T* rows_in_place(std::int64_t r0, std::int64_t /*rows*/, std::int64_t k0,
                         std::int64_t kc, std::int64_t* ld, std::int64_t* /*run*/,
                         std::int64_t* /*run_step*/) const override {
    if (cs_ != 1 || kc * std::int64_t(sizeof(T)) < 1024) return nullptr;
    *ld = rs_;
    return data_ + r0 * rs_ + k0;
  }
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
  // Packs the k x n matrix with element (p, j) at data[p*rs + j*cs] in K
  // blocks of kc (0: the kernel's own kc). The data must outlive this object.
  PrepackedB(const T* data, std::int64_t rs, std::int64_t cs, std::int64_t k, std::int64_t n,
             std::int64_t kc = 0);
  PrepackedB(const GemmKernel<T>&, const T* data, std::int64_t rs, std::int64_t cs,
             std::int64_t k, std::int64_t n, std::int64_t kc)
      : PrepackedB(data, rs, cs, k, n, kc) {}
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
// otherwise on a lease of the library's pool. kc sets the K block (0: the
// kernel's own); it fixes the order of the K sum, so it must not depend on
// the thread count.
template <typename T>
void gemm_blocked(std::int64_t m, std::int64_t n, std::int64_t k, const ASource<T>& a,
                  const BSource<T>& b, T* c, std::int64_t rs_c, std::int64_t cs_c,
                  bool accumulate, const Epilogue<T>& ep, Executor* exec = nullptr,
                  std::int64_t kc = 0);

// Scratch bytes gemm_blocked(m, n, k, ..., kc) holds at most, over all
// threads: each task's packed A block (plus a B panel when B is packed on the
// fly) and the shared packed B block. Independent of m beyond one M block.
template <typename T>
std::int64_t gemm_workspace_bytes(std::int64_t m, std::int64_t n, std::int64_t k,
                                  std::int64_t kc = 0);

// Channel runs shorter than this are cheaper to pack than to block K around.
constexpr std::int64_t kMinInPlaceRun = 32;
// Strips of a kernel row (k_w taps of few channels) shorter than this are
// packed rather than read in place run by run: below it the micro-kernel's
// per-run overhead outweighs the copy it saves.
constexpr std::int64_t kMinInPlaceStrip = 8;

// The K block an NHWC implicit-im2col GEMM uses: whole taps of one kernel row
// (or an equal part of one tap), so that a block of a patch is one run of the
// image and can be read in place. Falls back to the kernel's kc for short
// runs. Depends on the kernel and the filter shape only.
template <typename T>
std::int64_t nhwc_k_block(std::int64_t k_w, std::int64_t c_per_group);

template <typename T>
inline std::int64_t nhwc_k_block(const GemmKernel<T>&, std::int64_t k_w, std::int64_t c) {
  return nhwc_k_block<T>(k_w, c);
}
template <typename T>
inline void gemm_blocked(const GemmKernel<T>& kern, Executor& exec, std::int64_t m,
                         std::int64_t n, std::int64_t k, const ASource<T>& a,
                         const BSource<T>& b, T* c, std::int64_t rs_c, std::int64_t cs_c,
                         bool accumulate, const Epilogue<T>& ep) {
  gemm_blocked<T>(m, n, k, a, b, c, rs_c, cs_c, accumulate, ep, &exec, a.k_block(kern));
}
template <typename T>
inline std::int64_t gemm_workspace_bytes(const GemmKernel<T>&, int, std::int64_t m,
                                         std::int64_t n, std::int64_t k, std::int64_t kc) {
  return gemm_workspace_bytes<T>(m, n, k, kc);
}
}  // namespace convx::detail
