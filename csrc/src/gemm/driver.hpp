// The portable blocked GEMM driver (BLIS-style loops around a micro-kernel).
//
// Operands reach the driver through the interfaces of gemm/source.hpp; the
// caller chooses the micro-kernel and where the parallel phases run.
#pragma once

#include <cstdint>

#include "convx/gemm.hpp"
#include "gemm/pack.hpp"
#include "gemm/source.hpp"
#include "kernels/ukernel.hpp"

namespace convx::detail {

class Executor;

// C[m x n] (=|+=) A[m x k] * B[k x n], then the epilogue (see convx/gemm.hpp
// for C's layout and the accumulate rule), with micro-kernel `kern` on at
// most min(exec.threads(), what the size warrants) threads of `exec`. K is
// summed in blocks of a.k_block(kern), in order, so the result is the same
// for every executor and thread count. C must not overlap A or B.
template <typename T>
void gemm_blocked(const GemmKernel<T>& kern, Executor& exec, std::int64_t m, std::int64_t n,
                  std::int64_t k, const ASource<T>& a, const BSource<T>& b, T* c,
                  std::int64_t rs_c, std::int64_t cs_c, bool accumulate, const Epilogue<T>& ep);

// Scratch bytes gemm_blocked(kern, exec, m, n, k, ...) holds at most, over
// all threads, for an executor of `threads` threads and an A operand whose
// k_block(kern) is kc: each task's packed A block (plus B panels when B is
// packed on the fly) and the shared packed B block, which a B packed ahead of
// time (b_prepacked) does not need. Independent of m beyond one M block.
template <typename T>
std::int64_t gemm_workspace_bytes(const GemmKernel<T>& kern, int threads, std::int64_t m,
                                  std::int64_t n, std::int64_t k, std::int64_t kc,
                                  bool b_prepacked = false);

}  // namespace convx::detail
