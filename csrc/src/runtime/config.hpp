// Process-wide settings that come from the environment, and the CPUs the
// process may use. Internal: the public face is convx/runtime.hpp.
#pragma once

#include <cstdint>
#include <string>

#include "convx/runtime.hpp"

namespace convx::detail {

// Records that a CONVX_* environment variable was ignored, and why; the
// messages are reported by convx::config_warnings().
void add_config_warning(const std::string& message);

// The CPU limit that a cgroup quota sets for this process: ceil(quota / period)
// of the tightest cpu.max (cgroup v2, on the process's cgroup and each of its
// ancestors) or cpu.cfs_quota_us / cpu.cfs_period_us (v1) under `root`, for a
// process whose /proc/self/cgroup reads `self_cgroup`. 0 when no quota is set
// or nothing can be read.
int cgroup_cpu_limit(const std::string& root, const std::string& self_cgroup);

// The CPUs this process may run on (its affinity mask, or the hardware count),
// bounded by the cgroup quota. At least 1.
int detect_usable_cpus();

// The best ISA path both compiled in and supported by this CPU.
Isa best_available_isa();

// Cache sizes (runtime/cache.cpp). parse_cache_size reads "48K", "1M", "1MiB",
// "32768K" or a plain byte count; parse_cache_sizes reads the CONVX_CACHE_SIZES
// form "L1d,L2[,L3]" (L1d <= L2 <= L3, each in [1 KiB, 1 TiB], L3 0 or absent
// for none) with source "env". cache_from_cpuid and cache_from_sysfs (the
// index*/ directories under cache_dir) fill *info and return true when they
// find at least L1d and L2. None of them writes *info on failure.
bool parse_cache_size(const std::string& text, std::int64_t* bytes);
bool parse_cache_sizes(const std::string& text, CacheInfo* info);
bool cache_from_cpuid(CacheInfo* info);
bool cache_from_sysfs(const std::string& cache_dir, CacheInfo* info);
// CONVX_CACHE_SIZES, else cpuid, else sysfs, else the defaults.
CacheInfo detect_cache_info();

}  // namespace convx::detail
