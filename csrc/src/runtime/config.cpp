#include "runtime/config.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "convx/runtime.hpp"

#if defined(__linux__)
#include <sched.h>
#endif

namespace convx::detail {
namespace {

struct Warnings {
  std::mutex mutex;
  std::vector<std::string> messages;
};

Warnings& warnings() {
  static Warnings* const w = new Warnings;  // never destroyed: usable during exit
  return *w;
}

bool read_file(const std::string& path, std::string* text) {
  std::ifstream in(path);
  if (!in) return false;
  std::ostringstream s;
  s << in.rdbuf();
  *text = s.str();
  return true;
}

// ceil(quota / period) for positive integers, else 0.
int cpus_of_quota(long long quota, long long period) {
  if (quota <= 0 || period <= 0) return 0;
  return static_cast<int>(std::min<long long>((quota + period - 1) / period, 1 << 20));
}

// The limit in one cgroup v2 directory: cpu.max reads "max <period>" or "<quota> <period>".
int v2_limit(const std::string& dir) {
  std::string text;
  if (!read_file(dir + "/cpu.max", &text)) return 0;
  std::istringstream in(text);
  std::string quota;
  long long period = 0;
  if (!(in >> quota >> period) || quota == "max") return 0;
  char* end = nullptr;
  const long long q = std::strtoll(quota.c_str(), &end, 10);
  return *end == '\0' ? cpus_of_quota(q, period) : 0;
}

int v1_limit(const std::string& dir) {
  std::string q, p;
  if (!read_file(dir + "/cpu.cfs_quota_us", &q) || !read_file(dir + "/cpu.cfs_period_us", &p)) {
    return 0;
  }
  return cpus_of_quota(std::atoll(q.c_str()), std::atoll(p.c_str()));
}

int tighter(int a, int b) { return a == 0 ? b : b == 0 ? a : std::min(a, b); }

}  // namespace

void add_config_warning(const std::string& message) {
  Warnings& w = warnings();
  std::lock_guard<std::mutex> lock(w.mutex);
  w.messages.push_back(message);
}

int cgroup_cpu_limit(const std::string& root, const std::string& self_cgroup) {
  int limit = 0;
  std::istringstream lines(self_cgroup);
  std::string line;
  while (std::getline(lines, line)) {
    // "hierarchy-id:controllers:path"; v2 is "0::path".
    const auto first = line.find(':');
    const auto second = first == std::string::npos ? first : line.find(':', first + 1);
    if (second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    std::string path = line.substr(second + 1);
    if (controllers.empty()) {
      // Every ancestor's quota applies too; the tightest one binds.
      for (;;) {
        limit = tighter(limit, v2_limit(root + path));
        if (path.empty() || path == "/") break;
        const auto slash = path.find_last_of('/');
        path = slash == std::string::npos || slash == 0 ? "" : path.substr(0, slash);
      }
    } else if (("," + controllers + ",").find(",cpu,") != std::string::npos) {
      for (const char* mount : {"/cpu", "/cpu,cpuacct", "/cpuacct,cpu"}) {
        limit = tighter(limit, v1_limit(root + mount + path));
        limit = tighter(limit, v1_limit(root + mount));
      }
    }
  }
  return limit;
}

int detect_usable_cpus() {
  int cpus = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cpus = std::max(1, CPU_COUNT(&set));
  std::string self;
  if (read_file("/proc/self/cgroup", &self)) {
    const int quota = cgroup_cpu_limit("/sys/fs/cgroup", self);
    if (quota > 0) cpus = std::min(cpus, quota);
  }
#endif
  return cpus;
}

}  // namespace convx::detail

namespace convx {

int usable_cpus() {
  static const int n = detail::detect_usable_cpus();
  return n;
}

std::vector<std::string> config_warnings() {
  // Each setting reads its variable on first use; make sure all have been read.
  (void)active_isa();
  (void)num_threads();
  (void)flush_denormal();
  (void)cache_info();
  detail::Warnings& w = detail::warnings();
  std::lock_guard<std::mutex> lock(w.mutex);
  return w.messages;
}

}  // namespace convx
