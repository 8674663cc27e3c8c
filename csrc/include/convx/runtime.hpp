// Run-time configuration: which instruction set the kernels use, and how many
// threads the library's pool runs.
#pragma once

#include <string>

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

// The path the kernels use now. Initially the best one, unless the CONVX_ISA
// environment variable names another.
Isa active_isa();
bool isa_available(Isa isa);
// Selects a path for all later calls. Throws std::invalid_argument when the
// path is not compiled in or not supported by this CPU.
void set_active_isa(Isa isa);

// Measures the f32 multiply-add peak of one core on the active path, in
// GFLOP/s, with a register-only loop that runs for about `seconds`. For
// benchmarks that quote "% of peak" from the same run; 0 on the scalar path.
double measure_fma_peak_gflops(double seconds = 0.1);

// Threads of the library's persistent pool. The default is the number of
// CPUs this process may run on, or CONVX_NUM_THREADS when set.
int num_threads();
// n >= 1; throws std::invalid_argument otherwise.
void set_num_threads(int n);

}  // namespace convx
