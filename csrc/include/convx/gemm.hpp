// General matrix multiply on strided matrices, with a fused epilogue.
#pragma once

#include <cstdint>

#include "convx/context.hpp"
#include "convx/types.hpp"

namespace convx {

// Where the epilogue's bias vector is indexed: by the row i of C (length m)
// or by its column j (length n).
enum class BiasMode { None, PerRow, PerColumn };

// Applied to each element of C once its full K-sum is known:
//   C(i,j) = act(C(i,j) + bias[i or j]).
template <typename T>
struct Epilogue {
  const T* bias = nullptr;
  BiasMode bias_mode = BiasMode::None;
  Activation activation = Activation::None;
};

// Computes C[m x n] = A[m x k] * B[k x n]            (accumulate == false)
//       or C[m x n] = C[m x n] + A[m x k] * B[k x n] (accumulate == true),
// then applies `epilogue`. Element (i, j) of X lives at x[i*rs_x + j*cs_x], so
// row-major, column-major and transposed views all work without copies.
// With accumulate == false, C is never read: garbage or NaN there cannot leak.
// C must not overlap A or B. Sizes may be zero. Runs on the context's pool
// with the kernel of its ISA; results are bitwise identical for any thread
// count.
// Throws std::invalid_argument on negative sizes or null pointers.
template <typename T>
void gemm(std::int64_t m, std::int64_t n, std::int64_t k,
          const T* a, std::int64_t rs_a, std::int64_t cs_a,
          const T* b, std::int64_t rs_b, std::int64_t cs_b,
          T* c, std::int64_t rs_c, std::int64_t cs_c,
          bool accumulate = false, const Epilogue<T>& epilogue = {},
          Context& context = Context::default_context());

extern template void gemm<float>(std::int64_t, std::int64_t, std::int64_t, const float*,
                                 std::int64_t, std::int64_t, const float*, std::int64_t,
                                 std::int64_t, float*, std::int64_t, std::int64_t, bool,
                                 const Epilogue<float>&, Context&);
extern template void gemm<double>(std::int64_t, std::int64_t, std::int64_t, const double*,
                                  std::int64_t, std::int64_t, const double*, std::int64_t,
                                  std::int64_t, double*, std::int64_t, std::int64_t, bool,
                                  const Epilogue<double>&, Context&);

}  // namespace convx
