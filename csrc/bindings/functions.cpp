// Bindings of the free functions: padding, im2col, the GEMM, and the runtime
// settings and CPU report.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <initializer_list>
#include <string>

#include "arrays.hpp"
#include "gemm/blocking.hpp"
#include "gemm/macro_kernel.hpp"
#include "gil.hpp"

namespace convx_bindings {

namespace {

using std::int64_t;

convx::PatchOrder parse_order(const std::string& s) {
  if (s == "hwc") return convx::PatchOrder::HWC;
  if (s == "chw") return convx::PatchOrder::CHW;
  if (s == "seed") return convx::PatchOrder::Seed;
  throw std::invalid_argument("order must be 'hwc', 'chw' or 'seed', got '" + s + "'");
}

template <typename T>
void im2col_typed(const py::array& x, py::array& out, const convx::Dims4& d, Int2 kernel,
                  const convx::ConvParams& p, convx::PatchOrder order) {
  // The core's validation of the geometry, which also checks that every size
  // it implies fits in int64, comes first: `out` is checked against it.
  const convx::ConvShape s = convx::make_patch_shape(d.n, d.h, d.w, d.c, kernel[0], kernel[1], p);
  const T* xp = input_ptr<T>(x, s.input_size(), "x");
  T* op = output_ptr<T>(out, s.n * s.h_out * s.w_out * s.k_h * s.k_w * s.c_in, "out");
  without_gil([&] { convx::im2col<T>(xp, d, kernel[0], kernel[1], p, order, op); });
}

void im2col(const py::array& x, py::array& out, Int4 dims, Int2 kernel, Int2 stride,
            Int2 dilation, Int4 pad, int64_t groups, const std::string& layout,
            const std::string& order, const std::string& padding_mode) {
  const convx::Dims4 d{dims[0], dims[1], dims[2], dims[3]};
  const convx::ConvParams p = make_params(stride, dilation, pad, groups, layout, padding_mode);
  const convx::PatchOrder o = parse_order(order);
  if (dtype_of(x, "x") == DType::F32) {
    im2col_typed<float>(x, out, d, kernel, p, o);
  } else {
    im2col_typed<double>(x, out, d, kernel, p, o);
  }
}

template <typename T>
void pad_typed(const py::array& x, py::array& out, const convx::Dims4& d, const Int4& pad,
               convx::Layout layout, convx::PaddingMode mode) {
  const T* xp = input_ptr<T>(x, checked_count({d.n, d.h, d.w, d.c}, "x"), "x");
  const int64_t padded_h = checked_sum({d.h, pad[0], pad[1]}, "padding");
  const int64_t padded_w = checked_sum({d.w, pad[2], pad[3]}, "padding");
  T* op = output_ptr<T>(out, checked_count({d.n, padded_h, padded_w, d.c}, "padding"), "out");
  const convx::Padding2D p{pad[0], pad[1], pad[2], pad[3]};
  // Checked before out is written: the mode's limits for this input.
  convx::validate_padding_mode(mode, p, d.h, d.w);
  without_gil([&] { convx::pad<T>(xp, d, p, layout, op, mode); });
}

void pad(const py::array& x, py::array& out, Int4 dims, Int4 pad, const std::string& layout,
         const std::string& padding_mode) {
  const convx::Dims4 d{dims[0], dims[1], dims[2], dims[3]};
  const convx::Layout l = parse_layout(layout);
  const convx::PaddingMode mode = parse_padding_mode(padding_mode);
  if (dtype_of(x, "x") == DType::F32) {
    pad_typed<float>(x, out, d, pad, l, mode);
  } else {
    pad_typed<double>(x, out, d, pad, l, mode);
  }
}

// Element strides of a 2-D array; NumPy keeps them in bytes.
Int2 element_strides(const py::array& a, const char* name) {
  if (a.ndim() != 2) throw std::invalid_argument(std::string(name) + ": must be 2-D");
  Int2 st{};
  for (int d = 0; d < 2; ++d) {
    const py::ssize_t bytes = a.strides(d);
    if (bytes % static_cast<py::ssize_t>(a.itemsize()) != 0) {
      throw std::invalid_argument(std::string(name) + ": strides must be whole elements");
    }
    st[static_cast<std::size_t>(d)] = bytes / a.itemsize();
  }
  return st;
}

template <typename T>
void gemm_typed(const py::array& a, const py::array& b, py::array& c, bool accumulate) {
  const int64_t m = a.shape(0), k = a.shape(1), n = b.shape(1);
  if (b.shape(0) != k) throw std::invalid_argument("b: inner dimensions do not match");
  if (c.ndim() != 2 || c.shape(0) != m || c.shape(1) != n) {
    throw std::invalid_argument("out: must have shape (M, N)");
  }
  for (const py::array* arr : std::initializer_list<const py::array*>{&a, &b, &c}) {
    if (!has_dtype<T>(*arr)) throw py::type_error("gemm: dtypes differ");
  }
  if (!c.writeable()) throw std::invalid_argument("out: array is read-only");
  if (overlaps(c, a) || overlaps(c, b)) {
    throw std::invalid_argument("out must not overlap the input arrays");
  }
  const Int2 sa = element_strides(a, "a"), sb = element_strides(b, "b");
  const Int2 sc = element_strides(c, "out");
  const T* ap = static_cast<const T*>(a.data());
  const T* bp = static_cast<const T*>(b.data());
  T* cp = static_cast<T*>(c.mutable_data());
  without_gil([&] {
    convx::gemm<T>(m, n, k, ap, sa[0], sa[1], bp, sb[0], sb[1], cp, sc[0], sc[1], accumulate);
  });
}

void gemm(const py::array& a, const py::array& b, py::array& c, bool accumulate) {
  if (a.ndim() != 2 || b.ndim() != 2) throw std::invalid_argument("gemm: a and b must be 2-D");
  if (dtype_of(a, "a") == DType::F32) {
    gemm_typed<float>(a, b, c, accumulate);
  } else {
    gemm_typed<double>(a, b, c, accumulate);
  }
}

py::dict blocking_dict(const std::string& kernel, int mr, int nr,
                       const convx::detail::CacheBlocks& b) {
  py::dict d;
  d["kernel"] = kernel;
  d["mr"] = mr;
  d["nr"] = nr;
  d["mc"] = b.mc;
  d["kc"] = b.kc;
  d["nc"] = b.nc;
  d["packed_b_bytes"] = b.packed_b_bytes;
  return d;
}

py::dict gemm_blocking_dict(convx::Isa isa, bool float64) {
  const convx::GemmBlocking g = convx::gemm_blocking(isa, float64);
  return blocking_dict(g.kernel, g.mr, g.nr, {g.mc, g.kc, g.nc, g.packed_b_bytes});
}

py::dict cpu_info() {
  const convx::CpuInfo info = convx::cpu_info();
  py::list available;
  for (convx::Isa isa : {convx::Isa::Scalar, convx::Isa::AVX2, convx::Isa::AVX512}) {
    if (convx::isa_available(isa)) available.append(convx::isa_name(isa));
  }
  py::list compiled;
  compiled.append("scalar");
  if (info.compiled_avx2) compiled.append("avx2");
  if (info.compiled_avx512) compiled.append("avx512");
  py::dict d;
  d["vendor"] = info.vendor;
  d["avx2"] = info.avx2;
  d["avx512"] = info.avx512;
  d["compiled"] = compiled;
  d["available"] = available;
  d["best"] = convx::isa_name(info.best);
  d["active"] = convx::isa_name(info.active);
  d["num_threads"] = convx::num_threads();
  d["usable_cpus"] = convx::usable_cpus();
  d["flush_denormal"] = convx::flush_denormal();
  d["version"] = CONVX_VERSION_STRING;
  d["build_flags"] = CONVX_BUILD_FLAGS;
  const convx::CacheInfo caches = convx::cache_info();
  d["l1d"] = caches.l1d;
  d["l2"] = caches.l2;
  d["l3"] = caches.l3;
  d["l2_shared_by"] = caches.l2_shared_by;
  d["l3_shared_by"] = caches.l3_shared_by;
  d["cache_source"] = caches.source;
  py::dict blocking;
  blocking["float32"] = gemm_blocking_dict(info.active, false);
  blocking["float64"] = gemm_blocking_dict(info.active, true);
  d["gemm_blocking"] = blocking;
  return d;
}

}  // namespace

void bind_functions(py::module_& m) {
  m.def("im2col", &im2col, py::arg("x"), py::arg("out"), py::arg("dims"), py::arg("kernel"),
        py::arg("stride"), py::arg("dilation"), py::arg("pad"), py::arg("groups"),
        py::arg("layout"), py::arg("order"), py::arg("padding_mode") = "zeros");
  m.def("pad", &pad, py::arg("x"), py::arg("out"), py::arg("dims"), py::arg("pad"),
        py::arg("layout"), py::arg("padding_mode") = "zeros");
  m.def("gemm", &gemm, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("accumulate"));
  m.def("cpu_info", &cpu_info);
  m.def(
      "measure_peak_gflops",
      [](double seconds) {
        double gflops = 0;
        without_gil([&] { gflops = convx::measure_fma_peak_gflops(seconds); });
        return gflops;
      },
      py::arg("seconds") = 0.1);
  m.def("get_num_threads", &convx::num_threads);
  m.def("usable_cpus", &convx::usable_cpus);
  m.def("get_flush_denormal", &convx::flush_denormal);
  m.def("set_flush_denormal", &convx::set_flush_denormal, py::arg("enabled"));
  m.def("_config_warnings", &convx::config_warnings);
  m.def("set_num_threads", &convx::set_num_threads, py::arg("n"));
  m.def(
      "_gemm_panel_counts",
      [](bool reset) {
        // Test-only: the counters are internal to the core (gemm/macro_kernel.hpp).
        auto& c = convx::detail::gemm_counters();
        if (reset) return py::make_tuple(c.a_in_place.exchange(0), c.a_packed.exchange(0));
        return py::make_tuple(c.a_in_place.load(), c.a_packed.load());
      },
      py::arg("reset") = false);
  m.def(
      "_derive_blocking",
      [](int mr, int nr, int elem_bytes, std::int64_t l1d, std::int64_t l2, std::int64_t l3,
         int l3_shared_by) {
        // Test-only: the blocking rule of gemm/blocking.hpp for any caches.
        if (mr < 1 || nr < 1 || elem_bytes < 1) {
          throw std::invalid_argument("_derive_blocking: mr, nr and elem_bytes must be >= 1");
        }
        convx::CacheInfo caches;
        caches.l1d = l1d;
        caches.l2 = l2;
        caches.l3 = l3;
        caches.l3_shared_by = l3_shared_by;
        return blocking_dict("", mr, nr,
                             convx::detail::derive_gemm_blocking(mr, nr, elem_bytes, caches));
      },
      py::arg("mr"), py::arg("nr"), py::arg("elem_bytes"), py::arg("l1d"), py::arg("l2"),
      py::arg("l3"), py::arg("l3_shared_by") = 1);
  m.def("_set_isa", [](const std::string& name) { convx::set_active_isa(convx::parse_isa(name)); },
        py::arg("name"));
}

}  // namespace convx_bindings
