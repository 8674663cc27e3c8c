// The pool inside real processes: a child made by fork() after pooled work,
// workers that cannot start, the floating-point mode of the calling thread
// and of the workers, and the cgroup CPU quota behind the default thread
// count. Run under ThreadSanitizer in CI (with TSAN_OPTIONS=die_after_fork=0,
// since the forked child starts threads of its own).
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <system_error>
#include <vector>

#include "check.hpp"
#include "convx/convx.hpp"
#include "runtime/config.hpp"
#include "runtime/float_mode.hpp"
#include "runtime/thread_pool.hpp"

namespace {

// A layer that the pool splits over two threads, with its inputs.
struct Problem {
  convx::ConvShape s = convx::make_conv_shape(1, 24, 24, 32, 32, 3, 3, [] {
    convx::ConvParams p;
    p.pad = {1, 1, 1, 1};
    return p;
  }());
  std::vector<float> x, w, y;
  Problem() : x(s.input_size()), w(s.weight_size()), y(s.output_size()) {
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(int(i % 17) - 8) / 8;
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = float(int(i % 13) - 6) / 16;
  }
  std::vector<float> run() {
    convx::conv2d<float>(s, x.data(), w.data(), nullptr, y.data());
    return y;
  }
};

// Restores the thread count on exit.
struct ThreadsRestored {
  int saved = convx::num_threads();
  ~ThreadsRestored() { convx::set_num_threads(saved); }
};

TEST_CASE("threads: a forked child computes after pooled work in the parent") {
  ThreadsRestored restore;
  Problem p;
  convx::set_num_threads(1);
  const std::vector<float> expected = p.run();
  convx::set_num_threads(2);
  CHECK(p.run() == expected);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // Exit codes say which step failed; a hang is caught by ctest's timeout.
    if (p.run() != expected) _exit(3);
    convx::set_num_threads(1);
    if (p.run() != expected) _exit(4);
    convx::set_num_threads(2);
    if (p.run() != expected) _exit(5);
    _exit(0);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK_EQ(WEXITSTATUS(status), 0);
  CHECK(p.run() == expected);
}

TEST_CASE("threads: workers that cannot start give an error and a usable pool") {
  ThreadsRestored restore;
  Problem p;
  convx::set_num_threads(1);
  const std::vector<float> expected = p.run();
  convx::detail::limit_worker_starts_for_testing(1);
  convx::set_num_threads(4);
  bool threw = false;
  try {
    p.run();
  } catch (const std::system_error& e) {
    threw = true;
    CHECK(e.code() == std::errc::resource_unavailable_try_again);
    CHECK(std::string(e.what()).find("only 2 of 4 threads") != std::string::npos);
  }
  CHECK(threw);
  CHECK_EQ(convx::num_threads(), 2);  // the threads that started
  CHECK(p.run() == expected);
  CHECK(p.run() == expected);
  convx::detail::limit_worker_starts_for_testing(-1);
  convx::set_num_threads(3);
  CHECK(p.run() == expected);
  CHECK_EQ(convx::num_threads(), 3);
}

TEST_CASE("threads: denormals flush on every thread, and the caller's mode is restored") {
  ThreadsRestored restore;
  Problem p;
  // Products of 1e-21 * 1e-21 are denormal in float32.
  std::fill(p.x.begin(), p.x.end(), 1e-21f);
  std::fill(p.w.begin(), p.w.end(), 1e-21f);
  const bool saved = convx::flush_denormal();
  const convx::detail::FloatMode caller = convx::detail::float_mode();
  for (int threads : {1, 2}) {
    CONTEXT("threads ", threads);
    convx::set_num_threads(threads);
    convx::set_flush_denormal(true);
    for (float v : p.run()) CHECK_EQ(v, 0.0f);
    CHECK(convx::detail::float_mode() == caller);
    convx::set_flush_denormal(false);
    for (float v : p.run()) CHECK(v > 0.0f);
    CHECK(convx::detail::float_mode() == caller);
  }
  convx::set_flush_denormal(saved);
}

TEST_CASE("threads: the pool's workers take the caller's floating-point mode") {
  // A caller that flushes denormals itself gets flushed results from every
  // thread, even with convx's own flushing off.
  ThreadsRestored restore;
  Problem p;
  std::fill(p.x.begin(), p.x.end(), 1e-21f);
  std::fill(p.w.begin(), p.w.end(), 1e-21f);
  const bool saved = convx::flush_denormal();
  convx::set_flush_denormal(false);
  convx::set_num_threads(2);
  {
    const convx::detail::FloatModeScope flush(true);
    if (convx::detail::kFlushBits == 0) SKIP("no denormal control on this architecture");
    for (float v : p.run()) CHECK_EQ(v, 0.0f);
  }
  for (float v : p.run()) CHECK(v > 0.0f);
  convx::set_flush_denormal(saved);
}

void write(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

TEST_CASE("runtime: a cgroup CPU quota bounds the usable CPUs") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("convx-cgroup-" + std::to_string(getpid()));
  const std::string r = dir.string();
  using convx::detail::cgroup_cpu_limit;
  // cgroup v2: the process's cgroup and its ancestors; the tightest quota binds.
  fs::create_directories(dir / "app" / "worker");
  CHECK_EQ(cgroup_cpu_limit(r, "0::/app/worker\n"), 0);  // no cpu.max anywhere
  write(r + "/app/worker/cpu.max", "max 100000\n");
  CHECK_EQ(cgroup_cpu_limit(r, "0::/app/worker\n"), 0);
  write(r + "/app/cpu.max", "250000 100000\n");  // 2.5 CPUs -> 3 threads
  CHECK_EQ(cgroup_cpu_limit(r, "0::/app/worker\n"), 3);
  write(r + "/app/worker/cpu.max", "50000 100000\n");  // half a CPU -> 1
  CHECK_EQ(cgroup_cpu_limit(r, "0::/app/worker\n"), 1);
  write(r + "/cpu.max", "garbage\n");
  CHECK_EQ(cgroup_cpu_limit(r, "0::/app/worker\n"), 1);
  CHECK_EQ(cgroup_cpu_limit(r, "0::/\n"), 0);
  // cgroup v1: cpu.cfs_quota_us / cpu.cfs_period_us, -1 for no quota.
  fs::create_directories(dir / "cpu,cpuacct" / "docker" / "c1");
  write(r + "/cpu,cpuacct/docker/c1/cpu.cfs_quota_us", "400000\n");
  write(r + "/cpu,cpuacct/docker/c1/cpu.cfs_period_us", "100000\n");
  CHECK_EQ(cgroup_cpu_limit(r, "4:cpu,cpuacct:/docker/c1\n"), 4);
  write(r + "/cpu,cpuacct/docker/c1/cpu.cfs_quota_us", "-1\n");
  CHECK_EQ(cgroup_cpu_limit(r, "4:cpu,cpuacct:/docker/c1\n"), 0);
  CHECK_EQ(cgroup_cpu_limit(r, "4:memory:/docker/c1\n"), 0);
  CHECK_EQ(cgroup_cpu_limit(r, "not a cgroup line\n"), 0);
  fs::remove_all(dir);
  CHECK(convx::usable_cpus() >= 1);
  CHECK(convx::num_threads() >= 1);
}

}  // namespace
