// The two operand interfaces of the blocked GEMM.
//
// The driver never reads A or B itself: it asks an ASource for rows of A and
// a BSource for micro-panels of B, in the layouts of kernels/ukernel.hpp. A
// source may hold a plain matrix (gemm/pack.hpp) or compute its elements from
// some other layout as it packs them, so that the full operand never has to
// exist in memory.
#pragma once

#include <cstdint>

#include "kernels/ukernel.hpp"

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
  // The K block the GEMM uses with this operand and kernel: K is summed in
  // blocks of this length, in order, so it fixes the rounding of the result.
  // A source whose rows lie in memory in runs chooses blocks that match its
  // runs, so that rows_in_place() can succeed. It must depend on the kernel
  // and the operand's shape only, never on the thread count.
  virtual std::int64_t k_block(const GemmKernel<T>& kern) const { return kern.kc; }
};

// The right operand, (K x cols), seen through its columns.
template <typename T>
class BSource {
 public:
  virtual ~BSource() = default;
  // Packs columns [j0, j0+cols), K range [k0, k0+kc) into ceil(cols/nr)
  // micro-panels of kc*nr values for kern.nr = nr: element (k0 + p, j0 + q*nr + j)
  // goes to dst[q*kc*nr + p*nr + j]. Columns past `cols` in the last panel are
  // zeroed. kern.pack_columns, when set, may be used to transpose.
  virtual void pack_panels(const GemmKernel<T>& kern, T* dst, std::int64_t j0,
                           std::int64_t cols, std::int64_t k0, std::int64_t kc) const = 0;
  // An operand packed ahead of time for this (nr, kc) returns the packed data,
  // laid out as pack_panels() of every column for each K block in turn (the
  // block starting at K index pc begins at pc * n_pad), and sets *n_pad.
  virtual const T* prepacked(int /*nr*/, std::int64_t /*kc*/, std::int64_t* /*n_pad*/) const {
    return nullptr;
  }
};

// Rows [first, first + rows) of another left operand, as a matrix of its own:
// a GEMM over part of A's rows (one task's share of a larger product). Reads
// and the K block are the underlying source's, so each row's values and K
// order are the same as in the whole product.
template <typename T>
class RowWindow final : public ASource<T> {
 public:
  RowWindow(const ASource<T>& a, std::int64_t first) : a_(a), first_(first) {}

  void pack_rows(T* dst, std::int64_t ld, std::int64_t r0, std::int64_t rows, std::int64_t k0,
                 std::int64_t kc) const override {
    a_.pack_rows(dst, ld, first_ + r0, rows, k0, kc);
  }
  bool reads_in_place() const override { return a_.reads_in_place(); }
  const T* rows_in_place(std::int64_t r0, std::int64_t rows, std::int64_t k0, std::int64_t kc,
                         std::int64_t* ld, std::int64_t* run,
                         std::int64_t* run_step) const override {
    return a_.rows_in_place(first_ + r0, rows, k0, kc, ld, run, run_step);
  }
  std::int64_t k_block(const GemmKernel<T>& kern) const override { return a_.k_block(kern); }

 private:
  const ASource<T>& a_;
  std::int64_t first_;
};

// Columns [first, first + cols) of another right operand, as a matrix of its
// own (one task's share of a larger product). Packed from the underlying
// source; a B packed ahead of time is not offered, its panels being laid out
// for the whole width.
template <typename T>
class ColumnWindow final : public BSource<T> {
 public:
  ColumnWindow(const BSource<T>& b, std::int64_t first) : b_(b), first_(first) {}

  void pack_panels(const GemmKernel<T>& kern, T* dst, std::int64_t j0, std::int64_t cols,
                   std::int64_t k0, std::int64_t kc) const override {
    b_.pack_panels(kern, dst, first_ + j0, cols, k0, kc);
  }

 private:
  const BSource<T>& b_;
  std::int64_t first_;
};

}  // namespace convx::detail
