// convx::gemm: checks its arguments, then runs the blocked driver with its
// context's kernel on its context's pool.
#include "common/checked.hpp"
#include "convx/gemm.hpp"
#include "convx/runtime.hpp"
#include "gemm/driver.hpp"
#include "runtime/context_state.hpp"
#include "runtime/float_mode.hpp"
#include "kernels/kernel_table.hpp"
#include "runtime/thread_pool.hpp"

namespace convx {

template <typename T>
void gemm(std::int64_t m, std::int64_t n, std::int64_t k, const T* a, std::int64_t rs_a,
          std::int64_t cs_a, const T* b, std::int64_t rs_b, std::int64_t cs_b, T* c,
          std::int64_t rs_c, std::int64_t cs_c, bool accumulate, const Epilogue<T>& epilogue,
          Context& context) {
  detail::require(m >= 0 && n >= 0 && k >= 0, "gemm: sizes must be >= 0");
  detail::checked_product("gemm: m*k", m, k);
  detail::checked_product("gemm: k*n", k, n);
  detail::checked_product("gemm: m*n", m, n);
  if (m == 0 || n == 0) return;
  detail::require(c != nullptr, "gemm: c is null");
  detail::require(k == 0 || (a != nullptr && b != nullptr), "gemm: a or b is null");
  detail::require(epilogue.bias_mode == BiasMode::None || epilogue.bias != nullptr,
                  "gemm: epilogue bias is null");
  const detail::StridedMatrix<T> ma(a, rs_a, cs_a);
  const detail::StridedMatrix<T> mb(b, rs_b, cs_b);
  const detail::FloatModeScope float_mode(context.flush_denormal());
  detail::PoolLease lease(*context.state());
  detail::gemm_blocked<T>(detail::kernels_for<T>(context.isa()).gemm, lease, m, n, k, ma, mb, c,
                          rs_c, cs_c, accumulate, epilogue);
}

template void gemm<float>(std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t,
                          std::int64_t, const float*, std::int64_t, std::int64_t, float*,
                          std::int64_t, std::int64_t, bool, const Epilogue<float>&, Context&);
template void gemm<double>(std::int64_t, std::int64_t, std::int64_t, const double*, std::int64_t,
                           std::int64_t, const double*, std::int64_t, std::int64_t, double*,
                           std::int64_t, std::int64_t, bool, const Epilogue<double>&, Context&);

}  // namespace convx
