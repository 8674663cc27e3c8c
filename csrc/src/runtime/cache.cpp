// Data cache sizes of one core: from CONVX_CACHE_SIZES, else cpuid (leaf 4 on
// Intel, 0x8000001D on AMD with the topology extension), else Linux sysfs,
// else fixed defaults. The GEMM derives its blocking from them once per
// process (gemm/blocking.hpp, derive_gemm_blocking).
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "convx/runtime.hpp"
#include "runtime/config.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define CONVX_CACHE_X86 1
#endif

namespace convx::detail {
namespace {

// Sizes for a CPU that reports nothing: small enough for any x86-64 or
// aarch64 core of the last decade, so the blocks still fit.
constexpr std::int64_t kDefaultL1d = std::int64_t(32) << 10;
constexpr std::int64_t kDefaultL2 = std::int64_t(512) << 10;
constexpr std::int64_t kDefaultL3 = std::int64_t(8) << 20;
// Sizes outside [kMinCache, kMaxCache] are not believed, from any source.
constexpr std::int64_t kMinCache = std::int64_t(1) << 10;
constexpr std::int64_t kMaxCache = std::int64_t(1) << 40;

bool plausible(std::int64_t bytes) { return bytes >= kMinCache && bytes <= kMaxCache; }

// Keeps the first size seen for each level (lower cpuid subleaves and sysfs
// indices describe the caches nearest the core).
void record(CacheInfo* info, int level, std::int64_t bytes, int shared_by) {
  if (!plausible(bytes)) return;
  shared_by = shared_by < 1 ? 1 : shared_by;
  if (level == 1 && info->l1d == 0) info->l1d = bytes;
  if (level == 2 && info->l2 == 0) {
    info->l2 = bytes;
    info->l2_shared_by = shared_by;
  }
  if (level == 3 && info->l3 == 0) {
    info->l3 = bytes;
    info->l3_shared_by = shared_by;
  }
}

#if defined(CONVX_CACHE_X86)
// Walks the deterministic cache parameters of `leaf` (4 or 0x8000001D, which
// share one layout): type in EAX[4:0] (0 ends the list, 2 is instructions),
// level in EAX[7:5], sharing threads - 1 in EAX[25:14], and the size as
// ways * partitions * line size * sets from EBX and ECX.
void walk_cpuid_leaf(unsigned leaf, CacheInfo* info) {
  for (unsigned sub = 0; sub < 16; ++sub) {
    unsigned a = 0, b = 0, c = 0, d = 0;
    __cpuid_count(leaf, sub, a, b, c, d);
    const unsigned type = a & 0x1F;
    if (type == 0) break;
    if (type == 2) continue;
    const std::int64_t ways = ((b >> 22) & 0x3FF) + 1, parts = ((b >> 12) & 0x3FF) + 1;
    const std::int64_t line = (b & 0xFFF) + 1, sets = std::int64_t(c) + 1;
    record(info, static_cast<int>((a >> 5) & 7), ways * parts * line * sets,
           static_cast<int>(((a >> 14) & 0xFFF) + 1));
  }
}
#endif

}  // namespace

bool parse_cache_size(const std::string& text, std::int64_t* bytes) {
  std::size_t i = 0;
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  std::int64_t value = 0;
  const std::size_t digits = i;
  for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i) {
    if (value > kMaxCache) return false;
    value = value * 10 + (text[i] - '0');
  }
  if (i == digits) return false;
  std::string unit;
  for (; i < text.size(); ++i) {
    if (!std::isspace(static_cast<unsigned char>(text[i]))) {
      unit += static_cast<char>(std::toupper(static_cast<unsigned char>(text[i])));
    }
  }
  int shift = 0;
  if (unit == "K" || unit == "KB" || unit == "KIB") shift = 10;
  else if (unit == "M" || unit == "MB" || unit == "MIB") shift = 20;
  else if (unit == "G" || unit == "GB" || unit == "GIB") shift = 30;
  else if (!unit.empty() && unit != "B") return false;
  if (value > (kMaxCache >> shift)) return false;
  *bytes = value << shift;
  return true;
}

bool parse_cache_sizes(const std::string& text, CacheInfo* info) {
  std::int64_t sizes[3] = {0, 0, 0};
  int count = 0;
  std::istringstream in(text);
  std::string field;
  while (std::getline(in, field, ',')) {
    if (count == 3 || !parse_cache_size(field, &sizes[count])) return false;
    ++count;
  }
  // L1d and L2 are required; a third size of 0 (or none) says there is no L3.
  if (count < 2 || !plausible(sizes[0]) || !plausible(sizes[1]) || sizes[0] > sizes[1]) {
    return false;
  }
  if (sizes[2] != 0 && (!plausible(sizes[2]) || sizes[2] < sizes[1])) return false;
  *info = CacheInfo{};
  info->l1d = sizes[0];
  info->l2 = sizes[1];
  info->l3 = sizes[2];
  info->source = "env";
  return true;
}

bool cache_from_cpuid(CacheInfo* info) {
  CacheInfo found;
#if defined(CONVX_CACHE_X86)
  unsigned a = 0, b = 0, c = 0, d = 0;
  const unsigned max_ext = __get_cpuid(0x80000000u, &a, &b, &c, &d) ? a : 0;
  bool topology_ext = false;
  if (max_ext >= 0x80000001u && __get_cpuid(0x80000001u, &a, &b, &c, &d)) {
    topology_ext = (c >> 22) & 1;
  }
  if (topology_ext && max_ext >= 0x8000001Du) {
    walk_cpuid_leaf(0x8000001Du, &found);
  } else if (__get_cpuid(0, &a, &b, &c, &d) && a >= 4) {
    walk_cpuid_leaf(4, &found);
  }
#endif
  if (found.l1d == 0 || found.l2 == 0) return false;
  found.source = "cpuid";
  *info = found;
  return true;
}

namespace {

bool read_text(const std::string& path, std::string* text) {
  std::ifstream in(path);
  if (!in) return false;
  std::ostringstream s;
  s << in.rdbuf();
  *text = s.str();
  while (!text->empty() && std::isspace(static_cast<unsigned char>(text->back()))) {
    text->pop_back();
  }
  return true;
}

// CPUs in a sysfs list such as "0-3,8,10-11"; 1 when it cannot be read.
int count_cpu_list(const std::string& list) {
  int count = 0;
  std::istringstream in(list);
  std::string range;
  while (std::getline(in, range, ',')) {
    const auto dash = range.find('-');
    const long lo = std::atol(range.substr(0, dash).c_str());
    const long hi = dash == std::string::npos ? lo : std::atol(range.substr(dash + 1).c_str());
    if (hi >= lo && hi - lo < (1 << 20)) count += static_cast<int>(hi - lo + 1);
  }
  return count < 1 ? 1 : count;
}

}  // namespace

bool cache_from_sysfs(const std::string& cache_dir, CacheInfo* info) {
  CacheInfo found;
  for (int index = 0; index < 16; ++index) {
    const std::string dir = cache_dir + "/index" + std::to_string(index) + "/";
    std::string level, type, size, shared;
    if (!read_text(dir + "level", &level) || !read_text(dir + "type", &type) ||
        !read_text(dir + "size", &size)) {
      continue;
    }
    std::int64_t bytes = 0;
    if (type == "Instruction" || !parse_cache_size(size, &bytes)) continue;
    const int shared_by = read_text(dir + "shared_cpu_list", &shared) ? count_cpu_list(shared) : 1;
    record(&found, std::atoi(level.c_str()), bytes, shared_by);
  }
  if (found.l1d == 0 || found.l2 == 0) return false;
  found.source = "sysfs";
  *info = found;
  return true;
}

CacheInfo detect_cache_info() {
  CacheInfo info;
  const char* env = std::getenv("CONVX_CACHE_SIZES");
  if (env != nullptr && *env != '\0') {
    if (parse_cache_sizes(env, &info)) return info;
    add_config_warning("CONVX_CACHE_SIZES='" + std::string(env) +
                       "' is not L1d,L2[,L3] sizes such as 48K,1M,32M (L1d <= L2 <= L3, "
                       "each from 1K to 1T, L3 0 for none); using the detected sizes");
  }
  if (cache_from_cpuid(&info) || cache_from_sysfs("/sys/devices/system/cpu/cpu0/cache", &info)) {
    return info;
  }
  info = CacheInfo{};
  info.l1d = kDefaultL1d;
  info.l2 = kDefaultL2;
  info.l3 = kDefaultL3;
  info.source = "default";
  return info;
}

}  // namespace convx::detail

namespace convx {

CacheInfo cache_info() {
  static const CacheInfo info = detail::detect_cache_info();
  return info;
}

}  // namespace convx
