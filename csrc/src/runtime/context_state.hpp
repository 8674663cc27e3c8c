// What a convx::Context holds. Internal: the public face is convx/context.hpp.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

#include "convx/context.hpp"

namespace convx::detail {

class ThreadPool;

// A context's pool, guarded by its mutex: whoever holds the mutex owns the
// pool and all its scratch for one job (see PoolLease). A holder belongs to
// the process that made it: fork_generation says which (see fork_generation()).
struct PoolHolder {
  PoolHolder();
  ~PoolHolder();
  std::mutex mutex;
  std::unique_ptr<ThreadPool> pool;
  int threads = 0;
  std::uint64_t fork_generation = 0;
};

// The most threads a pool may have.
constexpr int kMaxThreads = 1024;

struct ContextState {
  ContextState() = default;
  ~ContextState();
  ContextState(const ContextState&) = delete;
  ContextState& operator=(const ContextState&) = delete;

  std::atomic<int> threads{1};
  std::atomic<int> isa{0};  // an Isa
  std::atomic<bool> flush{true};
  // Replaced, never freed, in a child made by fork(): the parent's workers do
  // not exist there and its mutex may be held (see PoolLease).
  std::atomic<PoolHolder*> holder{nullptr};
};

// How many fork() children deep this process is; a holder made in an
// ancestor process is abandoned. Incremented by an atfork handler.
std::uint64_t fork_generation();

// The settings the default context starts with, from the environment; an
// invalid variable is reported through add_config_warning().
int threads_from_environment();
Isa isa_from_environment();
bool flush_from_environment();

// n in [1, 1024], or throws std::invalid_argument naming `what`.
void check_thread_count(int n, const char* what);

}  // namespace convx::detail
