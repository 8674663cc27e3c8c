// Run-time configuration: CPU detection is consistent, the active path can be
// switched, the CONVX_ISA / CONVX_NUM_THREADS environment overrides work (ctest
// runs this binary a second time with them set) and the version is set.
#include <cstdlib>
#include <cstring>
#include <string>

#include "check.hpp"
#include "convx/convx.hpp"

namespace {

TEST_CASE("runtime: cpu_info agrees with isa_available") {
  const convx::CpuInfo info = convx::cpu_info();
  CHECK(convx::isa_available(convx::Isa::Scalar));
  CHECK_EQ(convx::isa_available(convx::Isa::AVX2), info.avx2 && info.compiled_avx2);
  CHECK_EQ(convx::isa_available(convx::Isa::AVX512), info.avx512 && info.compiled_avx512);
  CHECK(convx::isa_available(info.best));
  CHECK(convx::isa_available(info.active));
  CHECK(info.active == convx::active_isa());
  if (info.avx512) CHECK(info.avx2);
}

TEST_CASE("runtime: set_active_isa switches and reports the path") {
  const convx::Isa saved = convx::active_isa();
  for (convx::Isa isa : {convx::Isa::Scalar, convx::Isa::AVX2, convx::Isa::AVX512}) {
    if (!convx::isa_available(isa)) continue;
    convx::set_active_isa(isa);
    CHECK(convx::active_isa() == isa);
    CHECK(convx::cpu_info().active == isa);
    CHECK_EQ(convx::parse_isa(convx::isa_name(isa)) == isa, true);
  }
  convx::set_active_isa(saved);
}

TEST_CASE("runtime: the environment overrides the defaults") {
  const char* isa = std::getenv("CONVX_ISA");
  const char* threads = std::getenv("CONVX_NUM_THREADS");
  if ((isa == nullptr || *isa == '\0') && (threads == nullptr || *threads == '\0')) {
    SKIP("run with CONVX_ISA / CONVX_NUM_THREADS set (ctest does)");
  }
  if (isa != nullptr && *isa != '\0') CHECK(convx::active_isa() == convx::parse_isa(isa));
  if (threads != nullptr && *threads != '\0') CHECK_EQ(convx::num_threads(), std::atoi(threads));
}

TEST_CASE("runtime: set_num_threads") {
  const int saved = convx::num_threads();
  CHECK(saved >= 1);
  convx::set_num_threads(3);
  CHECK_EQ(convx::num_threads(), 3);
  convx::set_num_threads(1);
  CHECK_EQ(convx::num_threads(), 1);
  convx::set_num_threads(saved);
}

TEST_CASE("runtime: version macros") {
  CHECK(std::strlen(CONVX_VERSION_STRING) >= 5);
  CHECK_EQ(std::string(CONVX_VERSION_STRING),
           std::to_string(CONVX_VERSION_MAJOR) + "." + std::to_string(CONVX_VERSION_MINOR) + "." +
               std::to_string(CONVX_VERSION_PATCH));
  CHECK(std::string(CONVX_BUILD_FLAGS).find("scalar") != std::string::npos);
}

}  // namespace
