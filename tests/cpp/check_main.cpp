// The runner behind check.hpp.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "check.hpp"

namespace check {
namespace {

std::vector<std::string>& context_stack() {
  static std::vector<std::string> stack;
  return stack;
}

int g_failures = 0;              // in the running case
constexpr int kMaxPrinted = 12;  // per case; the rest are only counted

}  // namespace

std::vector<TestCase>& registry() {
  static std::vector<TestCase> cases;
  return cases;
}

Context::Context(std::string text) { context_stack().push_back(std::move(text)); }
Context::~Context() { context_stack().pop_back(); }

void fail(const char* file, int line, const std::string& what) {
  ++g_failures;
  if (g_failures > kMaxPrinted) return;
  std::fprintf(stderr, "%s:%d: FAILED %s\n", file, line, what.c_str());
  for (const std::string& c : context_stack()) std::fprintf(stderr, "    with %s\n", c.c_str());
  if (g_failures == kMaxPrinted) std::fprintf(stderr, "    (further failures not printed)\n");
}

}  // namespace check

namespace {

enum class Outcome { Passed, Failed, Skipped };

const convx::Isa kAllIsas[] = {convx::Isa::Scalar, convx::Isa::AVX2, convx::Isa::AVX512};

Outcome run_one(const check::TestCase& tc, convx::Isa isa, const std::string& label) {
  check::g_failures = 0;
  std::string skip_reason;
  const auto t0 = std::chrono::steady_clock::now();
  const convx::Isa saved = convx::active_isa();
  try {
    if (tc.per_isa != nullptr) {
      if (!convx::isa_available(isa)) {
        throw check::Skipped{std::string(convx::isa_name(isa)) +
                             " kernels are not compiled in or not supported by this CPU"};
      }
      convx::set_active_isa(isa);
      const check::Context ctx(std::string("isa=") + convx::isa_name(isa));
      tc.per_isa(isa);
    } else {
      tc.plain();
    }
  } catch (const check::Skipped& s) {
    skip_reason = s.reason.empty() ? "skipped" : s.reason;
  } catch (const check::Aborted&) {
    // Already reported by REQUIRE.
  } catch (const std::exception& e) {
    check::fail(__FILE__, __LINE__, std::string("unexpected exception: ") + e.what());
  } catch (...) {
    check::fail(__FILE__, __LINE__, "unexpected non-standard exception");
  }
  convx::set_active_isa(saved);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (check::g_failures > 0) {
    std::printf("[FAIL] %s: %d failed check(s) (%.1f ms)\n", label.c_str(), check::g_failures, ms);
    return Outcome::Failed;
  }
  if (!skip_reason.empty()) {
    std::printf("[skip] %s: %s\n", label.c_str(), skip_reason.c_str());
    return Outcome::Skipped;
  }
  std::printf("[ ok ] %s (%.1f ms)\n", label.c_str(), ms);
  return Outcome::Passed;
}

int usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s [--list] [CASE-NAME [--isa scalar|avx2|avx512]]\n", argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string only;
  std::string isa_arg;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--list") == 0) {
      for (const check::TestCase& tc : check::registry()) {
        std::printf("%s%s\n", tc.name, tc.per_isa != nullptr ? " [per ISA]" : "");
      }
      return 0;
    }
    if (std::strcmp(argv[i], "--isa") == 0 && i + 1 < argc) {
      isa_arg = argv[++i];
      try {
        isa_arg = convx::isa_name(convx::parse_isa(isa_arg));
      } catch (const std::invalid_argument& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return usage(argv[0]);
      }
    } else if (argv[i][0] == '-' || !only.empty()) {
      return usage(argv[0]);
    } else {
      only = argv[i];
    }
  }

  int passed = 0, failed = 0, skipped = 0, matched = 0;
  auto tally = [&](Outcome o) {
    if (o == Outcome::Passed) ++passed;
    if (o == Outcome::Failed) ++failed;
    if (o == Outcome::Skipped) ++skipped;
  };
  for (const check::TestCase& tc : check::registry()) {
    if (!only.empty() && only != tc.name) continue;
    ++matched;
    if (tc.per_isa == nullptr) {
      tally(run_one(tc, convx::Isa::Scalar, tc.name));
      continue;
    }
    for (convx::Isa isa : kAllIsas) {
      if (!isa_arg.empty() && isa_arg != convx::isa_name(isa)) continue;
      if (isa_arg.empty() && !convx::isa_available(isa)) continue;  // running all: quietly
      tally(run_one(tc, isa, std::string(tc.name) + " [" + convx::isa_name(isa) + "]"));
    }
  }
  if (matched == 0) {
    std::fprintf(stderr, "no test case named '%s' (see --list)\n", only.c_str());
    return 2;
  }
  std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  if (failed > 0) return 1;
  // A single case that skipped tells ctest so (SKIP_RETURN_CODE).
  if (passed == 0 && skipped > 0) return check::kSkipCode;
  return 0;
}
