// A tiny test harness for the C++ tests: registration, checks that keep going,
// checks that stop the case, exception checks, skips and a context stack that
// is printed with every failure. No dependencies beyond the standard library.
//
//   TEST_CASE("gemm: tiny sizes") { CHECK(x == 1); }
//   TEST_CASE_ISA("gemm: edges") { ... }   // body sees `convx::Isa isa`, already active
//
// A test binary runs every case (ISA cases once per available ISA), or the one
// case named on its command line: `test_gemm "gemm: edges" --isa avx2`. A case
// that skips (SKIP(), or an ISA this CPU lacks) exits with kSkipCode so ctest
// reports it as skipped, not failed. tests/cpp/CMakeLists.txt registers each
// case with ctest by reading the TEST_CASE lines, so names must be plain
// string literals on one line.
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "convx/runtime.hpp"

namespace check {

constexpr int kSkipCode = 77;

using PlainFn = void (*)();
using IsaFn = void (*)(convx::Isa);

struct TestCase {
  const char* name;
  PlainFn plain;  // exactly one of plain / per_isa is set
  IsaFn per_isa;
};

std::vector<TestCase>& registry();

struct Registrar {
  Registrar(const char* name, PlainFn fn) { registry().push_back({name, fn, nullptr}); }
  Registrar(const char* name, IsaFn fn) { registry().push_back({name, nullptr, fn}); }
};

// Thrown by SKIP() and REQUIRE(); caught by the runner.
struct Skipped {
  std::string reason;
};
struct Aborted {};

void fail(const char* file, int line, const std::string& what);

// While alive, `text` is printed under every failure (innermost last).
class Context {
 public:
  explicit Context(std::string text);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
};

template <typename... Args>
std::string str(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

}  // namespace check

#define CHECK_CAT2(a, b) a##b
#define CHECK_CAT(a, b) CHECK_CAT2(a, b)

#define TEST_CASE(name)                                                                     \
  static void CHECK_CAT(check_case_, __LINE__)();                                           \
  static const ::check::Registrar CHECK_CAT(check_reg_, __LINE__)(                          \
      name, static_cast<::check::PlainFn>(&CHECK_CAT(check_case_, __LINE__)));              \
  static void CHECK_CAT(check_case_, __LINE__)()

#define TEST_CASE_ISA(name)                                                                 \
  static void CHECK_CAT(check_case_, __LINE__)(convx::Isa);                                 \
  static const ::check::Registrar CHECK_CAT(check_reg_, __LINE__)(                          \
      name, static_cast<::check::IsaFn>(&CHECK_CAT(check_case_, __LINE__)));                \
  static void CHECK_CAT(check_case_, __LINE__)([[maybe_unused]] convx::Isa isa)

// CONTEXT("m=", m, " n=", n): describes the current iteration in failure output.
#define CONTEXT(...) const ::check::Context CHECK_CAT(check_ctx_, __LINE__)(::check::str(__VA_ARGS__))

#define CHECK(cond)                                                     \
  do {                                                                  \
    if (!(cond)) ::check::fail(__FILE__, __LINE__, "CHECK(" #cond ")"); \
  } while (0)

#define REQUIRE(cond)                                                     \
  do {                                                                    \
    if (!(cond)) {                                                        \
      ::check::fail(__FILE__, __LINE__, "REQUIRE(" #cond ")");            \
      throw ::check::Aborted{};                                           \
    }                                                                     \
  } while (0)

#define CHECK_EQ(a, b)                                                                   \
  do {                                                                                   \
    const auto check_a_ = (a);                                                           \
    const auto check_b_ = (b);                                                           \
    if (!(check_a_ == check_b_)) {                                                       \
      ::check::fail(__FILE__, __LINE__,                                                  \
                    ::check::str("CHECK_EQ(" #a ", " #b "): ", check_a_, " != ", check_b_)); \
    }                                                                                    \
  } while (0)

// Passes when `expr` throws `Exc` whose what() contains `needle`.
#define CHECK_THROWS_WITH(expr, Exc, needle)                                                \
  do {                                                                                      \
    try {                                                                                   \
      static_cast<void>(expr);                                                              \
      ::check::fail(__FILE__, __LINE__, "CHECK_THROWS_WITH(" #expr "): nothing was thrown"); \
    } catch (const Exc& check_e_) {                                                         \
      if (std::string(check_e_.what()).find(needle) == std::string::npos) {                 \
        ::check::fail(__FILE__, __LINE__,                                                   \
                      ::check::str("CHECK_THROWS_WITH(" #expr "): message '", check_e_.what(), \
                                   "' does not contain '", needle, "'"));                   \
      }                                                                                     \
    } catch (const std::exception& check_e_) {                                              \
      ::check::fail(__FILE__, __LINE__,                                                     \
                    ::check::str("CHECK_THROWS_WITH(" #expr "): threw another type: ",      \
                                 check_e_.what()));                                         \
    }                                                                                       \
  } while (0)

#define SKIP(reason) throw ::check::Skipped{reason}
