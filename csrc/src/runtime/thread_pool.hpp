// A persistent pool of worker threads plus the scratch memory they own.
//
// Threads are created once (and again only when the size changes) and take
// tasks from a shared counter. Between jobs a worker spins for about a
// quarter of a millisecond (back-to-back jobs, such as the phases of one GEMM
// or a caller's loop of calls, then start without a futex
// wake-up, which on a VM can take longer than a small job) and then sleeps on
// a condition variable, so an idle pool costs no CPU. The calling thread
// works too, as worker 0; once every task is claimed it closes the job and
// waits only for the workers inside it, so a worker that wakes late (its vCPU
// taken by another process) does not hold up the call. Which worker runs a
// task never
// changes what the task computes, so results do not depend on thread count:
// each job runs on every thread with the caller's floating-point mode.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "common/aligned_buffer.hpp"
#include "runtime/float_mode.hpp"

namespace convx::detail {

// Scratch handed to one task. The runtime guarantees that it is private to
// the worker running the task, and that it persists from job to job (so a
// buffer grows to the largest size asked of it and is then reused); what a
// task keeps in `primary` and `secondary` is the task's own affair. `nested`
// is reserved for a SerialExecutor made over this scratch, which hands it out
// as its job's shared memory.
struct WorkerScratch {
  AlignedBuffer primary;
  AlignedBuffer secondary;
  AlignedBuffer nested;
};

using TaskFn = std::function<void(std::int64_t task, WorkerScratch& scratch)>;

class ThreadPool {
 public:
  // Starts threads - 1 workers. Never throws for a worker that cannot be
  // started: the pool then has the workers that did start (size() says how
  // many) and start_error() says why the next one failed.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  const std::error_code& start_error() const { return start_error_; }

  // Runs fn(t, scratch) for every t in [0, tasks) on at most `max_threads`
  // threads including the caller, and returns when all are done. The first
  // exception thrown by a task is rethrown here. Not re-entrant on one pool:
  // callers serialise through PoolLease below.
  void run(std::int64_t tasks, int max_threads, const TaskFn& fn);

  WorkerScratch& caller_scratch() { return scratch_[0]; }
  // Memory shared by all tasks of one job (e.g. data prepared once for every
  // task), owned by the job's caller while it holds the pool.
  AlignedBuffer& shared_scratch() { return shared_; }

 private:
  void worker_loop(int index);
  void work(int index);

  std::vector<std::thread> workers_;
  std::error_code start_error_;
  std::unique_ptr<WorkerScratch[]> scratch_;
  AlignedBuffer shared_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  // Written under mutex_ (so sleepers cannot miss a job) but atomic, so that
  // a worker still spinning after its last job can see the next one at once.
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  std::atomic<int> active_limit_{0};  // workers with index < active_limit_ join this job
  // Whether workers may still enter the current job (tasks may be unclaimed),
  // and how many are inside it or deciding whether to enter: the caller waits
  // for inside_ to reach 0 after closing the job, never for a worker that has
  // not woken.
  std::atomic<bool> open_{false};
  std::atomic<int> inside_{0};

  const TaskFn* fn_ = nullptr;
  std::int64_t tasks_ = 0;
  FloatMode mode_ = 0;  // the caller's floating-point mode, for the workers
  // On a cache line of its own: every claim writes it, and the fields above
  // are read by every worker on every task.
  alignas(64) std::atomic<std::int64_t> next_{0};
  char next_pad_[64 - sizeof(std::atomic<std::int64_t>)] = {};
  std::exception_ptr error_;
  std::mutex error_mutex_;
};

// Fault injection for tests: pools made from now on start at most `workers`
// worker threads and report the rest as failed to start (EAGAIN), as under an
// address-space or thread limit. A negative value removes the limit.
void limit_worker_starts_for_testing(int workers);

// Where a job's parallel phases run: the library's pool (PoolLease) or the
// calling thread alone (SerialExecutor), e.g. inside a task of an outer job.
class Executor {
 public:
  virtual ~Executor() = default;
  // Runs fn(t, scratch) for t in [0, tasks) on at most max_threads threads.
  // fn is passed on by reference: a lambda that captures several references
  // would otherwise be copied to the heap by std::function for every job.
  template <typename Fn>
  void run(std::int64_t tasks, int max_threads, const Fn& fn) {
    run_job(tasks, max_threads, TaskFn(std::cref(fn)));
  }
  // Memory shared by all phases and tasks of this job.
  virtual AlignedBuffer& shared() = 0;
  // The most threads run() may use, whatever max_threads it is given.
  virtual int threads() const = 0;

  // Runs fn(i, scratch) for i in [0, items), grouped into tasks of consecutive
  // items, about kTasksPerThread per thread. For small items claiming each from
  // the shared counter would cost more than computing it.
  template <typename Fn>
  void run_items(std::int64_t items, int max_threads, Fn&& fn) {
    constexpr std::int64_t kTasksPerThread = 8;
    const std::int64_t threads = std::max(max_threads, 1);
    const std::int64_t per = std::max<std::int64_t>(1, items / (threads * kTasksPerThread));
    run((items + per - 1) / per, max_threads, [&](std::int64_t t, WorkerScratch& scratch) {
      const std::int64_t end = std::min(items, (t + 1) * per);
      for (std::int64_t i = t * per; i < end; ++i) fn(i, scratch);
    });
  }

 protected:
  virtual void run_job(std::int64_t tasks, int max_threads, const TaskFn& fn) = 0;
};

// Runs every task on the calling thread with one worker's scratch.
class SerialExecutor final : public Executor {
 public:
  explicit SerialExecutor(WorkerScratch& scratch) : scratch_(scratch) {}
  AlignedBuffer& shared() override { return scratch_.nested; }
  int threads() const override { return 1; }

 private:
  void run_job(std::int64_t tasks, int, const TaskFn& fn) override {
    for (std::int64_t t = 0; t < tasks; ++t) fn(t, scratch_);
  }

  WorkerScratch& scratch_;
};

struct ContextState;

// A lease on a context's pool (sized by its thread count) for one job,
// which may run several parallel phases that share scratch. If another
// caller holds the pool, the lease runs every phase on the calling thread
// alone with private scratch, so concurrent callers never share memory.
class PoolLease final : public Executor {
 public:
  explicit PoolLease(ContextState& context);
  ~PoolLease();
  PoolLease(const PoolLease&) = delete;
  PoolLease& operator=(const PoolLease&) = delete;

  AlignedBuffer& shared() override;
  // The pool's size (its context's thread count), or 1 when the pool was busy.
  int threads() const override;

 private:
  void run_job(std::int64_t tasks, int max_threads, const TaskFn& fn) override;

  std::unique_lock<std::mutex> lock_;
  ThreadPool* pool_ = nullptr;
  std::unique_ptr<AlignedBuffer> own_shared_;
  std::unique_ptr<WorkerScratch> own_scratch_;
};

}  // namespace convx::detail
