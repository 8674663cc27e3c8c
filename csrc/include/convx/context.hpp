// The execution context: what a convolution runs on.
#pragma once

#include <memory>

#include "convx/runtime.hpp"

namespace convx {

namespace detail {
struct ContextState;
}  // namespace detail

// A context owns a thread pool (with the scratch memory of its workers), the
// kernel path (ISA) that operators created on it bind, and the floating-point
// mode of its calls. Contexts are independent: two of them never share
// threads or scratch, so two libraries in one process can each have their
// own. Most programs need only the default context, which the free functions
// (convx::conv2d, convx::gemm) and operators created without a context use.
//
// Settings may change at any time from any thread. A new thread count or
// flush mode applies to the next run; a new ISA applies to operators created
// afterwards (an existing operator keeps the kernels it bound).
//
// Operators and prepared weights share the context's state, so a Context
// object may be destroyed while they live: its threads stop when the last of
// them is gone. In a child made by fork(), a context starts new workers on
// first use.
class Context {
 public:
  // A context of `threads` threads (0: usable_cpus()) on the best available
  // kernel path, flushing denormals. Threads start on first use.
  explicit Context(int threads = 0);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // The process's default context. Its initial settings come from the
  // environment (CONVX_NUM_THREADS, CONVX_ISA, CONVX_FLUSH_DENORMAL); the
  // functions of convx/runtime.hpp (set_num_threads() and the others) read and
  // change it. It is never destroyed.
  static Context& default_context();

  // n in [1, 1024]; throws std::invalid_argument otherwise. See
  // convx::set_num_threads() for what happens when threads cannot start.
  int num_threads() const;
  void set_num_threads(int n);

  // Throws std::invalid_argument when `isa` is not available here.
  Isa isa() const;
  void set_isa(Isa isa);

  // See convx::flush_denormal().
  bool flush_denormal() const;
  void set_flush_denormal(bool on);

  // What operators keep of their context (internal).
  const std::shared_ptr<detail::ContextState>& state() const { return state_; }

 private:
  struct DefaultTag {};
  explicit Context(DefaultTag);
  std::shared_ptr<detail::ContextState> state_;
};

}  // namespace convx
