// Run-time configuration: which instruction set the kernels use, and how many
// threads the library's pool runs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace convx {

// Kernel paths, from always-available to fastest. A path is usable when its
// kernels were compiled into this binary and the CPU (and OS) support it.
enum class Isa { Scalar = 0, AVX2 = 1, AVX512 = 2 };

const char* isa_name(Isa isa);
// Parses "scalar", "avx2" or "avx512" (case-insensitive). Throws
// std::invalid_argument on anything else.
Isa parse_isa(const std::string& name);

struct CpuInfo {
  std::string vendor;       // cpuid vendor string, "" off x86
  bool avx2 = false;        // AVX2 and FMA3, with OS-saved ymm state
  bool avx512 = false;      // AVX-512 F/DQ/VL/BW, with OS-saved zmm state
  bool compiled_avx2 = false;    // kernels for the path exist in this binary
  bool compiled_avx512 = false;
  Isa best = Isa::Scalar;   // best path both compiled and supported
  Isa active = Isa::Scalar; // path in use now (best, or the CONVX_ISA override)
};

// Detected once per process; `active` reflects the current selection.
CpuInfo cpu_info();

// The data caches of one core, in bytes, as the GEMM sizes its blocks by them
// (docs/runtime.md). Read once per process from CONVX_CACHE_SIZES
// ("L1d,L2[,L3]", e.g. "48K,1M,32M"; an invalid value is ignored and reported
// by config_warnings()), else cpuid (leaf 4, or 0x8000001D on AMD), else Linux
// sysfs, else 32 KiB / 512 KiB / 8 MiB.
struct CacheInfo {
  std::int64_t l1d = 0;
  std::int64_t l2 = 0;
  std::int64_t l3 = 0;     // 0: no L3
  int l2_shared_by = 1;    // logical CPUs that share the L2 (1 when not reported)
  int l3_shared_by = 1;    // ... and the L3
  std::string source;      // "env", "cpuid", "sysfs" or "default"
};
CacheInfo cache_info();

// The cache blocking of the GEMM kernel of one path and element type
// (float64 false: float32), derived from cache_info(). Throws
// std::invalid_argument when the path is not available (isa_available()).
struct GemmBlocking {
  std::string kernel;      // dtype, MR x NR and ISA, e.g. "f32 12x32 avx512"
  int mr = 0, nr = 0;
  std::int64_t mc = 0, kc = 0, nc = 0;
  std::int64_t packed_b_bytes = 0;  // the K x N block of B packed at once, at most
};
GemmBlocking gemm_blocking(Isa isa, bool float64 = false);

// The path the kernels use now. Initially the best one, unless the CONVX_ISA
// environment variable names another.
Isa active_isa();
bool isa_available(Isa isa);
// Selects the path of the default context: operators (and the free functions'
// calls) created from now on bind its kernels; existing operators keep theirs.
// Throws std::invalid_argument when the path is not compiled in or not
// supported by this CPU. An invalid CONVX_ISA is ignored (the best path is
// used) and reported by config_warnings().
void set_active_isa(Isa isa);

// Measures the f32 multiply-add peak of one core on the active path, in
// billions of operations a second, with a register-only loop that runs for
// about `seconds`. For benchmarks that quote "% of peak" from the same run;
// 0 on the scalar path.
double measure_fma_peak_gflops(double seconds = 0.1);

// The CPUs this process may run on: its affinity mask, bounded by a cgroup
// CPU quota (a container's --cpus). Read once per process.
int usable_cpus();

// Threads of the library's persistent pool. The default is usable_cpus(), or
// CONVX_NUM_THREADS when it is an integer in [1, 1024] (anything else is
// ignored and reported by config_warnings()). More threads than usable CPUs
// are allowed, but they then compete for the same cores.
int num_threads();
// n in [1, 1024]; throws std::invalid_argument otherwise. The pool starts the
// threads at the next call. If some cannot be started (no memory, a thread
// limit), that call throws std::system_error naming the cause, and the pool,
// and num_threads(), keep the threads that did start.
void set_num_threads(int n);

// Whether calls compute with denormal (subnormal) numbers flushed to zero:
// inputs below the smallest normal number (about 1.2e-38 in float32, 2.2e-308
// in float64) are read as 0, and results that small are written as 0. This
// avoids the 10-100x slowdown that denormal arithmetic costs on x86 CPUs. The
// mode is set on each thread that computes, for the duration of the call, and
// the caller's own floating-point state is restored afterwards. Default on;
// CONVX_FLUSH_DENORMAL=0 turns it off at start-up. Off, convx uses the
// calling thread's mode as it finds it (gradual underflow by default).
bool flush_denormal();
void set_flush_denormal(bool on);

// Problems found in the CONVX_* environment variables, one message each: every
// such variable was ignored and its default used. Empty when all were valid.
std::vector<std::string> config_warnings();

// Processes and threads. The pool notices when it is in a child made by
// fork() and starts new workers there on first use (the parent's are not
// copied by fork); the parent is unaffected. Every entry point may be called
// from several threads at once: a call that finds the pool busy computes on
// its own thread.

}  // namespace convx
