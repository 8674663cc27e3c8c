// The portable blocked GEMM driver (BLIS-style loops around a micro-kernel).
//
// Operands reach the driver as PanelSources: objects that know how to pack a
// block of themselves into the micro-panel layout of kernels/ukernel.hpp. A
// plain strided matrix is one source; convolution supplies another that
// gathers im2col patches straight from the image, so the driver never needs
// the full im2col matrix.
#pragma once

#include <cstdint>

#include "convx/gemm.hpp"
#include "kernels/ukernel.hpp"

namespace convx::detail {

// An operand viewed as a (rows x K) matrix. For A that is A itself; for B it
// is B transposed, so both pack into the same format.
template <typename T>
class PanelSource {
 public:
  virtual ~PanelSource() = default;
  // Packs rows [r0, r0+rows) and K range [k0, k0+kc) into ceil(rows/mr)
  // micro-panels of kc*mr values: element (r0 + q*mr + i, k0 + p) goes to
  // dst[q*kc*mr + p*mr + i]. Rows past `rows` in the last panel are zeroed.
  virtual void pack(T* dst, std::int64_t r0, std::int64_t rows, std::int64_t k0, std::int64_t kc,
                    int mr) const = 0;
};

// Element (r, p) at data[r*rs + p*cs].
template <typename T>
class StridedSource final : public PanelSource<T> {
 public:
  StridedSource(const T* data, std::int64_t rs, std::int64_t cs) : data_(data), rs_(rs), cs_(cs) {}
  void pack(T* dst, std::int64_t r0, std::int64_t rows, std::int64_t k0, std::int64_t kc,
            int mr) const override;

 private:
  const T* data_;
  std::int64_t rs_, cs_;
};

// C[m x n] (=|+=) A[m x k] * B[k x n], then the epilogue; see gemm.hpp.
// `a` yields rows of A; `b` yields rows of B^T (columns of B).
template <typename T>
void gemm_blocked(std::int64_t m, std::int64_t n, std::int64_t k, const PanelSource<T>& a,
                  const PanelSource<T>& b, T* c, std::int64_t rs_c, std::int64_t cs_c,
                  bool accumulate, const Epilogue<T>& ep);

}  // namespace convx::detail
