// CPU feature detection (cpuid + xgetbv), the ISA paths available, and the
// CONVX_ISA setting of the default context.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "convx/runtime.hpp"
#include "kernels/kernels.hpp"
#include "runtime/config.hpp"
#include "runtime/context_state.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define CONVX_X86 1
#endif

namespace convx {
namespace {

struct Detected {
  std::string vendor;
  bool avx2 = false;
  bool avx512 = false;
};

#if defined(CONVX_X86)
// The OS must save the wide registers on context switch, or using them would
// corrupt state: XCR0 tells which state components it saves.
std::uint64_t read_xcr0() {
  std::uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<std::uint64_t>(hi) << 32) | lo;
}
#endif

Detected detect() {
  Detected d;
#if defined(CONVX_X86)
  unsigned a = 0, b = 0, c = 0, dx = 0;
  if (!__get_cpuid(0, &a, &b, &c, &dx)) return d;
  char vendor[13];
  std::memcpy(vendor + 0, &b, 4);
  std::memcpy(vendor + 4, &dx, 4);
  std::memcpy(vendor + 8, &c, 4);
  vendor[12] = '\0';
  d.vendor = vendor;
  const unsigned max_leaf = a;
  __get_cpuid(1, &a, &b, &c, &dx);
  const bool osxsave = (c >> 27) & 1;
  const bool fma = (c >> 12) & 1;
  if (!osxsave || max_leaf < 7) return d;
  const std::uint64_t xcr0 = read_xcr0();
  const bool ymm_saved = (xcr0 & 0x6) == 0x6;     // SSE + AVX state
  const bool zmm_saved = (xcr0 & 0xE6) == 0xE6;   // + opmask, ZMM_Hi256, Hi16_ZMM
  __cpuid_count(7, 0, a, b, c, dx);
  const bool avx2 = (b >> 5) & 1;
  const bool avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1;
  const bool avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
  d.avx2 = avx2 && fma && ymm_saved;
  d.avx512 = d.avx2 && avx512f && avx512dq && avx512bw && avx512vl && zmm_saved;
#endif
  return d;
}

const Detected& detected() {
  static const Detected d = detect();
  return d;
}

constexpr bool compiled(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return true;
#if defined(CONVX_HAVE_AVX2_KERNELS)
    case Isa::AVX2: return true;
#endif
#if defined(CONVX_HAVE_AVX512_KERNELS)
    case Isa::AVX512: return true;
#endif
    default: return false;
  }
}

bool supported(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return true;
    case Isa::AVX2: return detected().avx2;
    case Isa::AVX512: return detected().avx512;
  }
  return false;
}

Isa best_isa() {
  for (Isa isa : {Isa::AVX512, Isa::AVX2}) {
    if (compiled(isa) && supported(isa)) return isa;
  }
  return Isa::Scalar;
}

}  // namespace

namespace detail {

Isa best_available_isa() { return best_isa(); }

Isa isa_from_environment() {
  const char* env = std::getenv("CONVX_ISA");
  if (env == nullptr || *env == '\0') return best_isa();
  // An unusable value falls back to the best path, so that the rest of the
  // API (set_active_isa() included) keeps working; the warning says why.
  const std::string best = isa_name(best_isa());
  Isa want;
  try {
    want = parse_isa(env);
  } catch (const std::invalid_argument&) {
    detail::add_config_warning("CONVX_ISA='" + std::string(env) +
                       "' is not a kernel path (scalar, avx2 or avx512); using the best "
                       "available, " + best);
    return best_isa();
  }
  if (!isa_available(want)) {
    detail::add_config_warning("CONVX_ISA=" + std::string(env) +
                       " is not available on this CPU or in this build; using the best "
                       "available, " + best);
    return best_isa();
  }
  return want;
}

}  // namespace detail

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::AVX2: return "avx2";
    case Isa::AVX512: return "avx512";
  }
  return "unknown";
}

Isa parse_isa(const std::string& name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  for (Isa isa : {Isa::Scalar, Isa::AVX2, Isa::AVX512}) {
    if (lower == isa_name(isa)) return isa;
  }
  throw std::invalid_argument("isa: unknown kernel path '" + name +
                              "'; expected scalar, avx2 or avx512");
}

bool isa_available(Isa isa) { return compiled(isa) && supported(isa); }

CpuInfo cpu_info() {
  CpuInfo info;
  info.vendor = detected().vendor;
  info.avx2 = detected().avx2;
  info.avx512 = detected().avx512;
  info.compiled_avx2 = compiled(Isa::AVX2);
  info.compiled_avx512 = compiled(Isa::AVX512);
  info.best = best_isa();
  info.active = active_isa();
  return info;
}

double measure_fma_peak_gflops(double seconds) {
  using Loop = float (*)(std::int64_t);
  Loop loop = nullptr;
  double flops_per_iter = 0;
#if defined(CONVX_HAVE_AVX2_KERNELS)
  if (active_isa() == Isa::AVX2) {
    loop = &detail::fma_peak_loop_avx2;
    flops_per_iter = 2.0 * 8 * 12;
  }
#endif
#if defined(CONVX_HAVE_AVX512_KERNELS)
  if (active_isa() == Isa::AVX512) {
    loop = &detail::fma_peak_loop_avx512;
    flops_per_iter = 2.0 * 16 * 24;
  }
#endif
  if (loop == nullptr) return 0.0;
  auto timed = [&](std::int64_t iters) {
    const auto t0 = std::chrono::steady_clock::now();
    volatile float sink = loop(iters);
    (void)sink;
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  // Double the iteration count until one run takes a third of the budget,
  // then keep the best rate of three runs at that count.
  std::int64_t iters = 1 << 14;
  while (timed(iters) < seconds / 3 && iters < (std::int64_t(1) << 36)) iters *= 2;
  double best = 0;
  for (int r = 0; r < 3; ++r) best = std::max(best, flops_per_iter * double(iters) / timed(iters));
  return best / 1e9;
}

}  // namespace convx
