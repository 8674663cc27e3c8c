// The calling thread's floating-point control state: rounding and the
// treatment of denormals (x86: MXCSR's RC, FTZ and DAZ bits; AArch64: FPCR's
// RMode and FZ). convx computes each call with denormals flushed to zero
// unless set_flush_denormal(false) (see runtime.hpp), and its pool's workers
// take the calling thread's mode for every job, so a result never depends on
// which thread computed it. Only control bits are copied: exception masks and
// status flags stay as each thread has them.
#pragma once

#include <cstdint>

namespace convx::detail {

using FloatMode = std::uint32_t;

#if defined(__x86_64__) || defined(__i386__)
constexpr FloatMode kFlushBits = (1u << 15) | (1u << 6);  // FTZ, DAZ
constexpr FloatMode kModeBits = kFlushBits | (3u << 13);  // and the rounding control
inline FloatMode read_float_control() { return __builtin_ia32_stmxcsr(); }
inline void write_float_control(FloatMode v) { __builtin_ia32_ldmxcsr(v); }
#elif defined(__aarch64__)
constexpr FloatMode kFlushBits = 1u << 24;               // FZ
constexpr FloatMode kModeBits = kFlushBits | (3u << 22);  // and RMode
inline FloatMode read_float_control() {
  std::uint64_t v;
  asm volatile("mrs %0, fpcr" : "=r"(v));
  return static_cast<FloatMode>(v);
}
inline void write_float_control(FloatMode v) {
  asm volatile("msr fpcr, %0" : : "r"(static_cast<std::uint64_t>(v)));
}
#else
constexpr FloatMode kFlushBits = 0;
constexpr FloatMode kModeBits = 0;
inline FloatMode read_float_control() { return 0; }
inline void write_float_control(FloatMode) {}
#endif

// The mode bits of this thread.
inline FloatMode float_mode() { return read_float_control() & kModeBits; }

// Gives this thread the mode bits `mode`, keeping its other control bits.
inline void set_float_mode(FloatMode mode) {
  const FloatMode now = read_float_control();
  const FloatMode want = (now & ~kModeBits) | (mode & kModeBits);
  if (want != now) write_float_control(want);
}

// For the duration of one call: denormals flushed to zero on the calling
// thread when `flush` (the caller's other bits untouched), and the caller's
// control word restored on exit. With `flush` false the caller's mode is used
// as it is.
class FloatModeScope {
 public:
  explicit FloatModeScope(bool flush) {
    if (!flush) return;
    saved_ = read_float_control();
    if ((saved_ & kFlushBits) != kFlushBits) {
      write_float_control(saved_ | kFlushBits);
      changed_ = true;
    }
  }
  ~FloatModeScope() {
    if (changed_) write_float_control(saved_);
  }
  FloatModeScope(const FloatModeScope&) = delete;
  FloatModeScope& operator=(const FloatModeScope&) = delete;

 private:
  FloatMode saved_ = 0;
  bool changed_ = false;
};

}  // namespace convx::detail
