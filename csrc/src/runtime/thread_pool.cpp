#include "runtime/thread_pool.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>

#include "convx/runtime.hpp"
#include "runtime/config.hpp"
#include "runtime/context_state.hpp"


namespace convx::detail {

namespace {
std::atomic<int> g_worker_start_limit{-1};
}  // namespace

void limit_worker_starts_for_testing(int workers) { g_worker_start_limit.store(workers); }

ThreadPool::ThreadPool(int threads) : scratch_(new WorkerScratch[std::max(threads, 1)]) {
  workers_.reserve(static_cast<std::size_t>(std::max(threads - 1, 0)));
  const int limit = g_worker_start_limit.load();
  for (int i = 1; i < threads; ++i) {
    if (limit >= 0 && i > limit) {
      start_error_ = std::make_error_code(std::errc::resource_unavailable_try_again);
      break;
    }
    try {
      workers_.emplace_back([this, i] { worker_loop(i); });
    } catch (const std::system_error& e) {  // EAGAIN: no memory for a stack, or a thread limit
      start_error_ = e.code();
      break;
    } catch (const std::bad_alloc&) {
      start_error_ = std::make_error_code(std::errc::not_enough_memory);
      break;
    }
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

namespace {


// How long a worker (or a waiting caller) spins before it sleeps. Waking a
// sleeping worker costs tens to hundreds of microseconds on a VM; the spin is
// long enough to bridge the gaps between back-to-back calls from a caller's
// loop, and short enough that an idle pool soon costs no CPU.
constexpr auto kSpinTime = std::chrono::microseconds(250);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Spins until pred() holds or kSpinTime has passed; true if it holds. The
// clock is read only every 64 pauses, and the CPU is offered to other
// threads at the same time: when the vCPUs are shared with other processes
// the scheduler may put a worker on the caller's CPU, and a spinner that
// never yields would then hold up the very thread it waits for.
template <typename Pred>
bool spin_until(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + kSpinTime;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (pred()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    std::this_thread::yield();
  }
}

}  // namespace

void ThreadPool::work(int index) {
  WorkerScratch& scratch = scratch_[index];
  for (;;) {
    const std::int64_t t = next_.fetch_add(1, std::memory_order_relaxed);
    if (t >= tasks_) return;
    try {
      (*fn_)(t, scratch);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
      next_.store(tasks_, std::memory_order_relaxed);  // stop handing out tasks
    }
  }
}

void ThreadPool::worker_loop(int index) {
  std::uint64_t seen = 0;
  auto has_job = [&] {
    return stop_.load(std::memory_order_acquire) ||
           (generation_.load(std::memory_order_acquire) != seen &&
            index < active_limit_.load(std::memory_order_acquire));
  };
  for (;;) {
    if (!spin_until(has_job)) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, has_job);
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen = generation_.load(std::memory_order_acquire);
    // Enter the open job, if any: a worker that wakes after the caller has
    // closed it (every task claimed) leaves without touching it.
    inside_.fetch_add(1, std::memory_order_seq_cst);
    if (open_.load(std::memory_order_seq_cst) &&
        index < active_limit_.load(std::memory_order_relaxed)) {
      set_float_mode(mode_);
      work(index);
    }
    if (inside_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      // Taking the lock orders this notify after the caller's predicate check.
      std::lock_guard<std::mutex> lock(mutex_);
      done_.notify_one();
    }
  }
}

void ThreadPool::run(std::int64_t tasks, int max_threads, const TaskFn& fn) {
  if (tasks <= 0) return;
  const int threads =
      static_cast<int>(std::min<std::int64_t>({tasks, max_threads, static_cast<std::int64_t>(size())}));
  fn_ = &fn;
  tasks_ = tasks;
  mode_ = float_mode();
  next_.store(0, std::memory_order_relaxed);
  error_ = nullptr;
  if (threads > 1) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      active_limit_.store(threads, std::memory_order_relaxed);
      open_.store(true, std::memory_order_seq_cst);
      generation_.fetch_add(1, std::memory_order_release);  // publishes the job
    }
    wake_.notify_all();
  }
  work(0);
  if (threads > 1) {
    // Every task is claimed. Close the job so that a worker not yet inside
    // (descheduled by a neighbour on a shared machine, say) never enters it,
    // and wait only for those inside: they may still be computing a task.
    open_.store(false, std::memory_order_seq_cst);
    auto finished = [&] { return inside_.load(std::memory_order_seq_cst) == 0; };
    if (!spin_until(finished)) {
      std::unique_lock<std::mutex> lock(mutex_);
      done_.wait(lock, finished);
    }
  }
  fn_ = nullptr;
  if (error_) std::rethrow_exception(error_);
}

PoolLease::PoolLease(ContextState& context) {
  PoolHolder* h = context.holder.load(std::memory_order_acquire);
  const std::uint64_t generation = fork_generation();
  while (h->fork_generation != generation) {
    // Made by an ancestor process: abandon it (see ContextState::holder).
    auto* fresh = new PoolHolder;
    if (context.holder.compare_exchange_strong(h, fresh, std::memory_order_acq_rel)) {
      h = fresh;
    } else {
      delete fresh;  // another thread replaced it first; h is now its holder
    }
  }
  lock_ = std::unique_lock<std::mutex>(h->mutex, std::try_to_lock);
  if (!lock_.owns_lock()) {
    own_shared_ = std::make_unique<AlignedBuffer>();
    own_scratch_ = std::make_unique<WorkerScratch>();
    return;
  }
  const int want = context.threads.load();
  if (!h->pool || h->threads != want) {
    h->pool.reset();
    h->threads = 0;
    h->pool = std::make_unique<ThreadPool>(want);
    const int started = h->pool->size();
    h->threads = started;
    if (started < want) {
      // The pool keeps the threads that started; this call reports the failure
      // once, and set_num_threads() tries again.
      context.threads.store(started);
      throw std::system_error(h->pool->start_error(),
                              "convx: could start only " + std::to_string(started) + " of " +
                                  std::to_string(want) + " threads, and runs with " +
                                  std::to_string(started) +
                                  " until set_num_threads() is called again");
    }
  }
  pool_ = h->pool.get();
}

PoolLease::~PoolLease() = default;

void PoolLease::run_job(std::int64_t tasks, int max_threads, const TaskFn& fn) {
  if (pool_ != nullptr) {
    pool_->run(tasks, max_threads, fn);
    return;
  }
  for (std::int64_t t = 0; t < tasks; ++t) fn(t, *own_scratch_);
}

AlignedBuffer& PoolLease::shared() {
  return pool_ != nullptr ? pool_->shared_scratch() : *own_shared_;
}

int PoolLease::threads() const { return pool_ != nullptr ? pool_->size() : 1; }

}  // namespace convx::detail
