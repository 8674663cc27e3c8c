// Overflow-checked size arithmetic and argument checks that name the argument.
#pragma once

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

namespace convx::detail {

[[noreturn]] inline void fail_arg(const std::string& what) { throw std::invalid_argument(what); }

// The message is a literal in almost every check: taking it as const char*
// keeps a passing check free of string construction (and of a heap
// allocation for messages past the small-string size) on hot paths.
inline void require(bool ok, const char* what) {
  if (!ok) fail_arg(what);
}

inline void require(bool ok, const std::string& what) {
  if (!ok) fail_arg(what);
}

// a*b for non-negative sizes; throws when the product does not fit in int64.
inline std::int64_t checked_mul(std::int64_t a, std::int64_t b, const char* what) {
  std::int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) {
    fail_arg(std::string(what) + ": size overflows int64");
  }
  return r;
}

inline std::int64_t checked_add(std::int64_t a, std::int64_t b, const char* what) {
  std::int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) {
    fail_arg(std::string(what) + ": size overflows int64");
  }
  return r;
}

template <typename... Ts>
std::int64_t checked_product(const char* what, std::int64_t first, Ts... rest) {
  std::int64_t r = first;
  ((r = checked_mul(r, rest, what)), ...);
  return r;
}

}  // namespace convx::detail
