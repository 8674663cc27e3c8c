// Cache detection (CONVX_CACHE_SIZES, sysfs, cpuid) and the GEMM blocking
// derived from it: the rule of gemm/blocking.hpp holds for small, usual and
// huge caches, and the kernel table uses it.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "check.hpp"
#include "convx/convx.hpp"
#include "gemm/blocking.hpp"
#include "kernels/kernel_table.hpp"
#include "runtime/config.hpp"

namespace {

using convx::CacheInfo;
using convx::detail::CacheBlocks;
constexpr std::int64_t KiB = 1024, MiB = KiB * KiB;

TEST_CASE("cache: sizes parse as sysfs and CONVX_CACHE_SIZES write them") {
  std::int64_t b = 0;
  CHECK(convx::detail::parse_cache_size("48K", &b) && b == 48 * KiB);
  CHECK(convx::detail::parse_cache_size(" 32768K\n", &b) && b == 32 * MiB);
  CHECK(convx::detail::parse_cache_size("1MiB", &b) && b == MiB);
  CHECK(convx::detail::parse_cache_size("2m", &b) && b == 2 * MiB);
  CHECK(convx::detail::parse_cache_size("1G", &b) && b == 1024 * MiB);
  CHECK(convx::detail::parse_cache_size("4096", &b) && b == 4096);
  for (const char* bad : {"", "K", "-1K", "1.5M", "12Q", "99999999999999999999", "4096T"}) {
    CONTEXT("size '", bad, "'");
    CHECK(!convx::detail::parse_cache_size(bad, &b));
  }
  CacheInfo info;
  REQUIRE(convx::detail::parse_cache_sizes("48K,1M,32M", &info));
  CHECK(info.l1d == 48 * KiB && info.l2 == MiB && info.l3 == 32 * MiB && info.source == "env");
  REQUIRE(convx::detail::parse_cache_sizes("32K,512K", &info));
  CHECK(info.l3 == 0);
  REQUIRE(convx::detail::parse_cache_sizes("32K,512K,0", &info));
  CHECK(info.l3 == 0);
  for (const char* bad : {"", "48K", "1M,48K", "48K,1M,512K", "48K,1M,32M,64M", "0,1M",
                          "48K,,32M", "512,1M", "48K,1M,x"}) {
    CONTEXT("sizes '", bad, "'");
    info.l1d = 7;
    CHECK(!convx::detail::parse_cache_sizes(bad, &info));
    CHECK(info.l1d == 7);  // untouched on failure
  }
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path) << text << "\n";
}

void write_index(const std::string& root, int index, const char* level, const char* type,
                 const char* size, const char* shared) {
  const std::string dir = root + "/index" + std::to_string(index);
  REQUIRE(mkdir(dir.c_str(), 0755) == 0);
  write_file(dir + "/level", level);
  write_file(dir + "/type", type);
  write_file(dir + "/size", size);
  write_file(dir + "/shared_cpu_list", shared);
}

TEST_CASE("cache: sysfs index directories") {
  char tmpl[] = "/tmp/convx_cache_XXXXXX";
  const char* root = mkdtemp(tmpl);
  REQUIRE(root != nullptr);
  CacheInfo info;
  CHECK(!convx::detail::cache_from_sysfs(root, &info));  // nothing there
  write_index(root, 0, "1", "Instruction", "64K", "0");
  write_index(root, 1, "1", "Data", "48K", "0");
  CHECK(!convx::detail::cache_from_sysfs(root, &info));  // no L2 yet
  write_index(root, 2, "2", "Unified", "2048K", "0,8");
  write_index(root, 3, "3", "Unified", "307200K", "0-59,120-179");
  REQUIRE(convx::detail::cache_from_sysfs(root, &info));
  CHECK_EQ(info.l1d, 48 * KiB);
  CHECK_EQ(info.l2, 2 * MiB);
  CHECK_EQ(info.l3, 300 * MiB);
  CHECK_EQ(info.l2_shared_by, 2);
  CHECK_EQ(info.l3_shared_by, 120);
  CHECK(info.source == "sysfs");
  for (int index = 0; index < 4; ++index) {
    const std::string dir = std::string(root) + "/index" + std::to_string(index);
    for (const char* f : {"/level", "/type", "/size", "/shared_cpu_list"}) {
      std::remove((dir + f).c_str());
    }
    rmdir(dir.c_str());
  }
  rmdir(root);
}

TEST_CASE("cache: cache_info is plausible and the kernel table follows it") {
  const CacheInfo info = convx::cache_info();
  CONTEXT("source ", info.source, " l1d ", info.l1d, " l2 ", info.l2, " l3 ", info.l3);
  CHECK(info.source == "env" || info.source == "cpuid" || info.source == "sysfs" ||
        info.source == "default");
  CHECK(info.l1d >= KiB && info.l1d <= info.l2);
  CHECK(info.l3 == 0 || info.l3 >= info.l2);
  CHECK(info.l2_shared_by >= 1 && info.l3_shared_by >= 1);
  CacheInfo cpuid;
  if (convx::detail::cache_from_cpuid(&cpuid) && info.source == "cpuid") {
    CHECK_EQ(cpuid.l1d, info.l1d);
    CHECK_EQ(cpuid.l2, info.l2);
  }
  for (convx::Isa isa : {convx::Isa::Scalar, convx::Isa::AVX2, convx::Isa::AVX512}) {
    if (!convx::isa_available(isa)) continue;
    const auto& kern = convx::detail::kernels_for<float>(isa).gemm;
    const CacheBlocks b = convx::detail::derive_gemm_blocking(kern.mr, kern.nr, 4, info);
    CONTEXT(kern.name);
    CHECK_EQ(kern.kc, b.kc);
    CHECK_EQ(kern.mc, b.mc);
    CHECK_EQ(kern.nc, b.nc);
    CHECK_EQ(kern.packed_b_bytes, b.packed_b_bytes);
    const convx::GemmBlocking pub = convx::gemm_blocking(isa);
    CHECK(pub.kernel == kern.name && pub.kc == kern.kc && pub.mc == kern.mc);
  }
}

// The constraints that the rule of gemm/blocking.hpp promises.
void check_rule(int mr, int nr, int size, const CacheInfo& c) {
  const CacheBlocks b = convx::detail::derive_gemm_blocking(mr, nr, size, c);
  CONTEXT(mr, "x", nr, " size ", size, " caches ", c.l1d, "/", c.l2, "/", c.l3, " -> mc ", b.mc,
          " kc ", b.kc, " nc ", b.nc, " packed_b ", b.packed_b_bytes);
  CHECK(b.kc >= convx::detail::kMinKc && b.kc <= convx::detail::kMaxKc);
  CHECK(b.kc % (64 / size) == 0);
  if (b.kc > convx::detail::kMinKc) CHECK(b.kc * (mr + nr) * size <= c.l1d - c.l1d / 16);
  CHECK(b.mc % mr == 0 && b.mc >= mr && b.mc <= convx::detail::kMaxPanelsPerBlock * mr);
  if (b.mc > mr) CHECK(b.mc * b.kc * size <= c.l2 / 4);
  CHECK(b.packed_b_bytes >= MiB && b.packed_b_bytes <= 16 * MiB);
  CHECK(b.nc % nr == 0 && b.nc >= nr && b.nc <= convx::detail::kMaxNc);
  if (b.nc > nr) CHECK(b.nc * b.kc * size <= b.packed_b_bytes);
}

TEST_CASE("cache: the derived blocking satisfies its rule for any caches") {
  const std::int64_t configs[][3] = {
      {32 * KiB, 512 * KiB, 8 * MiB},    {48 * KiB, MiB, 32 * MiB},
      {48 * KiB, 2 * MiB, 300 * MiB},    {4 * KiB, 16 * KiB, 0},
      {KiB, KiB, 0},                     {MiB, 64 * MiB, 1024 * MiB},
      {64 * KiB, 256 * KiB, 2 * MiB},
  };
  const int tiles[][3] = {{4, 8, 4}, {4, 4, 8}, {6, 16, 4}, {6, 8, 8}, {12, 32, 4}, {12, 16, 8}};
  for (const auto& cfg : configs) {
    CacheInfo c;
    c.l1d = cfg[0];
    c.l2 = cfg[1];
    c.l3 = cfg[2];
    for (const auto& t : tiles) check_rule(t[0], t[1], t[2], c);
    c.l3_shared_by = 16;
    for (const auto& t : tiles) check_rule(t[0], t[1], t[2], c);
  }
}

TEST_CASE("cache: the rule gives the tuned blocks on a Zen 5 core") {
  CacheInfo zen5;
  zen5.l1d = 48 * KiB;
  zen5.l2 = MiB;
  zen5.l3 = 32 * MiB;
  zen5.l3_shared_by = 2;
  const CacheBlocks b = convx::detail::derive_gemm_blocking(12, 32, 4, zen5);
  CHECK_EQ(b.kc, 256);
  CHECK_EQ(b.mc, 252);
  CHECK_EQ(b.nc, 4096);
  CHECK_EQ(b.packed_b_bytes, 8 * MiB);
  // A smaller L1 gives a shorter K block; more L2 a taller A block.
  CacheInfo zen3 = zen5;
  zen3.l1d = 32 * KiB;
  zen3.l2 = 512 * KiB;
  CHECK(convx::detail::derive_gemm_blocking(12, 32, 4, zen3).kc < b.kc);
  CacheInfo emr = zen5;
  emr.l2 = 2 * MiB;
  CHECK(convx::detail::derive_gemm_blocking(12, 32, 4, emr).mc > b.mc);
}

}  // namespace
