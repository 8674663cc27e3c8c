#include "arrays.hpp"

#include <algorithm>
#include <system_error>
#include <utility>

namespace convx_bindings {

convx::Layout parse_layout(const std::string& s) {
  if (s == "NHWC") return convx::Layout::NHWC;
  if (s == "NCHW") return convx::Layout::NCHW;
  throw std::invalid_argument("layout must be 'NHWC' or 'NCHW', got '" + s + "'");
}

convx::Activation parse_activation(const std::string& s) {
  if (s == "none") return convx::Activation::None;
  if (s == "relu") return convx::Activation::ReLU;
  throw std::invalid_argument("activation must be None or 'relu', got '" + s + "'");
}

convx::PaddingMode parse_padding_mode(const std::string& s) {
  if (s == "zeros") return convx::PaddingMode::Zeros;
  if (s == "reflect") return convx::PaddingMode::Reflect;
  if (s == "replicate") return convx::PaddingMode::Replicate;
  if (s == "circular") return convx::PaddingMode::Circular;
  throw std::invalid_argument(
      "padding_mode must be 'zeros', 'reflect', 'replicate' or 'circular', got '" + s + "'");
}

convx::Algorithm parse_algorithm(const std::string& s) {
  if (s == "auto") return convx::Algorithm::Auto;
  if (s == "fast") return convx::Algorithm::Fast;
  if (s == "gemm") return convx::Algorithm::Gemm;
  if (s == "winograd") return convx::Algorithm::Winograd;
  if (s == "direct") return convx::Algorithm::Direct;
  if (s == "depthwise") return convx::Algorithm::Depthwise;
  if (s == "pointwise") return convx::Algorithm::Pointwise;
  throw std::invalid_argument("algorithm must be 'auto', 'fast', 'gemm', 'winograd', "
                              "'direct', 'depthwise' or 'pointwise', got '" + s + "'");
}

convx::ConvParams make_params(Int2 stride, Int2 dilation, Int4 pad, std::int64_t groups,
                              const std::string& layout, const std::string& padding_mode,
                              const std::string& algorithm) {
  convx::ConvParams p;
  p.stride_h = stride[0];
  p.stride_w = stride[1];
  p.dilation_h = dilation[0];
  p.dilation_w = dilation[1];
  p.pad = {pad[0], pad[1], pad[2], pad[3]};
  p.groups = groups;
  p.layout = parse_layout(layout);
  p.padding_mode = parse_padding_mode(padding_mode);
  p.algorithm = parse_algorithm(algorithm);
  return p;
}

DType dtype_of(const py::array& a, const char* name) {
  if (has_dtype<float>(a)) return DType::F32;
  if (has_dtype<double>(a)) return DType::F64;
  throw py::type_error(std::string(name) + ": dtype must be float32 or float64, got " +
                       py::str(a.dtype()).cast<std::string>());
}

namespace {

// The bytes [lo, hi) an array's elements span; empty arrays span nothing.
std::pair<const char*, const char*> byte_extent(const py::array& a) {
  const char* base = static_cast<const char*>(a.data());
  py::ssize_t lo = 0, hi = 0;
  for (py::ssize_t d = 0; d < a.ndim(); ++d) {
    if (a.shape(d) == 0) return {base, base};
    const py::ssize_t reach = (a.shape(d) - 1) * a.strides(d);
    (reach < 0 ? lo : hi) += reach;
  }
  return {base + lo, base + hi + a.itemsize()};
}

}  // namespace

std::int64_t checked_count(std::initializer_list<std::int64_t> sizes, const char* what) {
  std::int64_t total = 1;
  for (std::int64_t v : sizes) {
    if (v < 0 || __builtin_mul_overflow(total, v, &total)) {
      throw std::invalid_argument(std::string(what) + ": sizes must be >= 0 and their product "
                                  "must fit in int64");
    }
  }
  return total;
}

std::int64_t checked_sum(std::initializer_list<std::int64_t> sizes, const char* what) {
  std::int64_t total = 0;
  for (std::int64_t v : sizes) {
    if (v < 0 || __builtin_add_overflow(total, v, &total)) {
      throw std::invalid_argument(std::string(what) + ": sizes must be >= 0 and their sum "
                                  "must fit in int64");
    }
  }
  return total;
}

bool overlaps(const py::array& a, const py::array& b) {
  const auto [a_lo, a_hi] = byte_extent(a);
  const auto [b_lo, b_hi] = byte_extent(b);
  return a_lo < b_hi && b_lo < a_hi && a_lo != a_hi && b_lo != b_hi;
}

bool has_dims(const py::array& a, const std::vector<py::ssize_t>& dims) {
  return a.ndim() == static_cast<py::ssize_t>(dims.size()) &&
         std::equal(dims.begin(), dims.end(), a.shape());
}

std::string dims_text(const std::vector<py::ssize_t>& dims) {
  std::string s = "(";
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(dims[i]);
  }
  return s + (dims.size() == 1 ? ",)" : ")");
}

PyObject* system_error_type(const std::system_error& e) {
  const std::error_code& c = e.code();
  return c == std::errc::resource_unavailable_try_again || c == std::errc::not_enough_memory
             ? PyExc_MemoryError
             : PyExc_RuntimeError;
}

void set_error_from_current_exception() {
  try {
    throw;
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (const py::builtin_exception& e) {
    e.set_error();
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (const std::invalid_argument& e) {
    PyErr_SetString(PyExc_ValueError, e.what());
  } catch (const std::length_error& e) {
    PyErr_SetString(PyExc_ValueError, e.what());
  } catch (const std::domain_error& e) {
    PyErr_SetString(PyExc_ValueError, e.what());
  } catch (const std::overflow_error& e) {
    PyErr_SetString(PyExc_OverflowError, e.what());
  } catch (const std::system_error& e) {
    PyErr_SetString(system_error_type(e), e.what());
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  } catch (...) {
    PyErr_SetString(PyExc_RuntimeError, "convx: unknown C++ exception");
  }
}

}  // namespace convx_bindings
