// The kernel table: every kernel of each ISA path, built once per process.
#include "kernels/kernel_table.hpp"

#include <stdexcept>
#include <string>

#include "gemm/blocking.hpp"
#include "kernels/kernels.hpp"
#include "runtime/config.hpp"

namespace convx {
namespace detail {
namespace {

// One KernelSet per path, indexed by Isa. A path that is not compiled in
// keeps an empty slot: kernels_for() refuses it before reading the slot.
template <typename T>
struct KernelTable {
  KernelSet<T> path[3];
};

// Every GEMM kernel of the table with its blocking derived from this CPU's
// caches (the empty slots of paths not compiled in are left alone).
template <typename T>
KernelTable<T> with_cache_blocking(KernelTable<T> t) {
  const CacheInfo caches = cache_info();
  for (KernelSet<T>& set : t.path) {
    if (set.gemm.fn != nullptr) set.gemm = with_cache_blocking(set.gemm, caches);
  }
  return t;
}

template <typename T>
KernelTable<T> make_kernel_table();

template <>
KernelTable<float> make_kernel_table<float>() {
  KernelTable<float> t{};
  t.path[0] = {Isa::Scalar, gemm_f32_4x8_scalar(), dwconv_f32_scalar(), direct_f32_scalar(), winograd_f32_scalar(),
             patch_pack_f32_scalar()};
#if defined(CONVX_HAVE_AVX2_KERNELS)
  t.path[1] = {Isa::AVX2, gemm_f32_6x16_avx2(), dwconv_f32_avx2(), direct_f32_avx2(), winograd_f32_avx2(),
             patch_pack_f32_avx2()};
#endif
#if defined(CONVX_HAVE_AVX512_KERNELS)
  t.path[2] = {Isa::AVX512, gemm_f32_12x32_avx512(), dwconv_f32_avx512(), direct_f32_avx512(), winograd_f32_avx512(),
             patch_pack_f32_avx512()};
#if defined(CONVX_HAVE_AVX2_KERNELS)
  t.path[2].gemm.pack_columns = &pack_columns_f32_avx2;  // every AVX-512 CPU has AVX2
#endif
#endif
  return with_cache_blocking(t);
}

template <>
KernelTable<double> make_kernel_table<double>() {
  KernelTable<double> t{};
  t.path[0] = {Isa::Scalar, gemm_f64_4x4_scalar(), dwconv_f64_scalar(), direct_f64_scalar(), winograd_f64_scalar(),
             patch_pack_f64_scalar()};
#if defined(CONVX_HAVE_AVX2_KERNELS)
  t.path[1] = {Isa::AVX2, gemm_f64_6x8_avx2(), dwconv_f64_avx2(), direct_f64_avx2(), winograd_f64_avx2(),
             patch_pack_f64_avx2()};
#endif
#if defined(CONVX_HAVE_AVX512_KERNELS)
  t.path[2] = {Isa::AVX512, gemm_f64_12x16_avx512(), dwconv_f64_avx512(), direct_f64_avx512(), winograd_f64_avx512(),
             patch_pack_f64_avx512()};
#endif
  return with_cache_blocking(t);
}

}  // namespace

template <typename T>
const KernelSet<T>& kernels_for(Isa isa) {
  static const KernelTable<T> table = make_kernel_table<T>();
  if (!isa_available(isa)) {
    throw std::invalid_argument(std::string("kernels: the ") + isa_name(isa) +
                                " path is not available here (best available: " +
                                isa_name(best_available_isa()) + ")");
  }
  return table.path[static_cast<int>(isa)];
}

template const KernelSet<float>& kernels_for<float>(Isa);
template const KernelSet<double>& kernels_for<double>(Isa);

}  // namespace detail

GemmBlocking gemm_blocking(Isa isa, bool float64) {
  auto describe = [](const auto& kern) {
    return GemmBlocking{kern.name, kern.mr, kern.nr, kern.mc, kern.kc, kern.nc,
                        kern.packed_b_bytes};
  };
  return float64 ? describe(detail::kernels_for<double>(isa).gemm)
                 : describe(detail::kernels_for<float>(isa).gemm);
}

}  // namespace convx
