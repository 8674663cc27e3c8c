// convx::Context, the default context, and the runtime settings of
// convx/runtime.hpp, which act on the default context.
#include "convx/context.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "runtime/config.hpp"
#include "runtime/context_state.hpp"
#include "runtime/thread_pool.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

namespace convx::detail {

namespace {

std::atomic<std::uint64_t> g_fork_generation{0};

void after_fork_in_child() { g_fork_generation.fetch_add(1, std::memory_order_relaxed); }

}  // namespace

std::uint64_t fork_generation() {
  // Registered once, before any pool exists: a pool's workers start only
  // after the first holder, and so this function, has been made.
  static const bool registered = [] {
#if defined(__unix__) || defined(__APPLE__)
    pthread_atfork(nullptr, nullptr, &after_fork_in_child);
#endif
    return true;
  }();
  (void)registered;
  return g_fork_generation.load(std::memory_order_relaxed);
}

PoolHolder::PoolHolder() : fork_generation(detail::fork_generation()) {}
PoolHolder::~PoolHolder() = default;

ContextState::~ContextState() {
  // A holder made in this process is joined and freed; one inherited through
  // fork() refers to workers that do not exist here and is left alone.
  PoolHolder* h = holder.load();
  if (h != nullptr && h->fork_generation == detail::fork_generation()) delete h;
}

void check_thread_count(int n, const char* what) {
  if (n < 1 || n > kMaxThreads) {
    throw std::invalid_argument(std::string(what) + ": n must be in [1, 1024], got " +
                                std::to_string(n));
  }
}

int threads_from_environment() {
  const char* env = std::getenv("CONVX_NUM_THREADS");
  if (env != nullptr && *env != '\0') {  // empty means unset, as for CONVX_ISA
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && errno == 0 && v >= 1 && v <= kMaxThreads) {
      return static_cast<int>(v);
    }
    add_config_warning("CONVX_NUM_THREADS='" + std::string(env) +
                       "' is not an integer in [1, 1024]; using the default, " +
                       std::to_string(usable_cpus()) + " (the CPUs this process may use)");
  }
  return usable_cpus();
}

bool flush_from_environment() {
  const char* env = std::getenv("CONVX_FLUSH_DENORMAL");
  if (env == nullptr || *env == '\0') return true;
  const std::string v(env);
  if (v == "1") return true;
  if (v == "0") return false;
  add_config_warning("CONVX_FLUSH_DENORMAL='" + v +
                     "' is not 0 or 1; using the default, 1 (flush)");
  return true;
}

}  // namespace convx::detail

namespace convx {

Context::Context(int threads) : state_(std::make_shared<detail::ContextState>()) {
  if (threads != 0) detail::check_thread_count(threads, "Context");
  state_->threads.store(threads == 0 ? std::min(usable_cpus(), detail::kMaxThreads) : threads);
  state_->isa.store(static_cast<int>(detail::best_available_isa()));
  state_->holder.store(new detail::PoolHolder);
}

Context::Context(DefaultTag) : state_(std::make_shared<detail::ContextState>()) {
  state_->threads.store(detail::threads_from_environment());
  state_->isa.store(static_cast<int>(detail::isa_from_environment()));
  state_->flush.store(detail::flush_from_environment());
  state_->holder.store(new detail::PoolHolder);
}

Context::~Context() = default;

Context& Context::default_context() {
  // Never destroyed: a thread still inside a call while the process exits (a
  // daemon thread at interpreter shutdown) finds its pool intact.
  static Context* const context = new Context(DefaultTag{});
  return *context;
}

int Context::num_threads() const { return state_->threads.load(std::memory_order_relaxed); }

void Context::set_num_threads(int n) {
  detail::check_thread_count(n, "set_num_threads");
  state_->threads.store(n);
}

Isa Context::isa() const { return static_cast<Isa>(state_->isa.load(std::memory_order_relaxed)); }

void Context::set_isa(Isa isa) {
  if (!isa_available(isa)) {
    throw std::invalid_argument(std::string("isa: the ") + isa_name(isa) +
                                " path is not available here (best available: " +
                                isa_name(detail::best_available_isa()) + ")");
  }
  state_->isa.store(static_cast<int>(isa));
}

bool Context::flush_denormal() const { return state_->flush.load(std::memory_order_relaxed); }

void Context::set_flush_denormal(bool on) { state_->flush.store(on); }

int num_threads() { return Context::default_context().num_threads(); }
void set_num_threads(int n) { Context::default_context().set_num_threads(n); }
Isa active_isa() { return Context::default_context().isa(); }
void set_active_isa(Isa isa) { Context::default_context().set_isa(isa); }
bool flush_denormal() { return Context::default_context().flush_denormal(); }
void set_flush_denormal(bool on) { Context::default_context().set_flush_denormal(on); }

}  // namespace convx
