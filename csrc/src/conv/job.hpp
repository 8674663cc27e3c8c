// What an algorithm is given for one run of an operator besides the data: the
// problem, the kernels the operator bound, and where to run.
#pragma once

#include "convx/shape.hpp"
#include "convx/types.hpp"
#include "kernels/kernel_table.hpp"
#include "runtime/thread_pool.hpp"

namespace convx::detail {

template <typename T>
struct ConvJob {
  const ConvShape& s;
  const KernelSet<T>& kernels;
  Executor& exec;  // a lease on the operator's context for the whole run
  Activation activation;

  bool relu() const { return activation == Activation::ReLU; }
  // Threads for `work` units when one thread should get at least
  // `work_per_thread` of them.
  int threads_for(double work, double work_per_thread) const {
    const double by_work = work / work_per_thread;
    const double most = double(exec.threads());
    return static_cast<int>(by_work < 1.0 ? 1.0 : (by_work > most ? most : by_work));
  }
};

}  // namespace convx::detail
