// Buffer checks shared by the bindings: NumPy arrays in, raw pointers out,
// with a clear exception for anything the C++ core cannot take as it is.
// Arguments are normalised (copied into a suitable array) in python/convx;
// these functions only check.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "convx/convx.hpp"

namespace convx_bindings {

namespace py = pybind11;
using Int2 = std::array<std::int64_t, 2>;
using Int4 = std::array<std::int64_t, 4>;

convx::Layout parse_layout(const std::string& s);
convx::Activation parse_activation(const std::string& s);
convx::PaddingMode parse_padding_mode(const std::string& s);
convx::ConvParams make_params(Int2 stride, Int2 dilation, Int4 pad, std::int64_t groups,
                              const std::string& layout,
                              const std::string& padding_mode = "zeros",
                              const std::string& algorithm = "auto");

// Native-endian T. NumPy usually hands out its canonical dtype objects, so the
// identity test answers at once; an equal but distinct dtype object (e.g. made
// by newbyteorder) falls back to comparing by value.
template <typename T>
bool has_dtype(const py::array& a) {
  // Looked up once and deliberately never released: a static py::object would
  // be destroyed after the interpreter has shut down.
  static PyObject* const want = py::dtype::of<T>().release().ptr();
  const py::dtype got = a.dtype();
  return got.ptr() == want || got.equal(py::handle(want));
}

enum class DType { F32, F64 };

// The array's dtype, or a TypeError naming `name`.
DType dtype_of(const py::array& a, const char* name);

// Checks that `a` is a C-contiguous buffer of `count` elements of T.
template <typename T>
const T* input_ptr(const py::array& a, std::int64_t count, const char* name) {
  if (!has_dtype<T>(a)) {
    throw py::type_error(std::string(name) + ": dtype " + py::str(a.dtype()).cast<std::string>() +
                         " does not match the operator's " +
                         (sizeof(T) == 4 ? "float32" : "float64"));
  }
  if (!(a.flags() & py::array::c_style)) {
    throw std::invalid_argument(std::string(name) + ": array must be C-contiguous");
  }
  if (a.size() != count) {
    throw std::invalid_argument(std::string(name) + ": expected " + std::to_string(count) +
                                " elements, got " + std::to_string(a.size()));
  }
  return static_cast<const T*>(a.data());
}

template <typename T>
T* output_ptr(py::array& a, std::int64_t count, const char* name) {
  const T* p = input_ptr<T>(a, count, name);
  if (!a.writeable()) throw std::invalid_argument(std::string(name) + ": array is read-only");
  return const_cast<T*>(p);
}

// The product of non-negative sizes, or std::invalid_argument naming `what`
// when one is negative or the product does not fit in int64.
std::int64_t checked_count(std::initializer_list<std::int64_t> sizes, const char* what);
// The same for a sum of non-negative sizes.
std::int64_t checked_sum(std::initializer_list<std::int64_t> sizes, const char* what);

// Whether the elements of a and b share any byte.
bool overlaps(const py::array& a, const py::array& b);

// Whether `a` has exactly these dimensions.
bool has_dims(const py::array& a, const std::vector<py::ssize_t>& dims);

// "(2, 3, 4)".
std::string dims_text(const std::vector<py::ssize_t>& dims);

// A new C-contiguous array of T with these dimensions, made through NumPy's C
// API directly: py::array_t's constructor builds shape and stride vectors on
// the heap first, which is a measurable part of a tiny convolution's call.
template <typename T>
py::array new_array(const std::vector<py::ssize_t>& dims) {
  const auto& api = py::detail::npy_api::get();
  PyObject* descr = api.PyArray_DescrFromType_(py::detail::npy_format_descriptor<T>::value);
  if (descr == nullptr) throw py::error_already_set();
  // PyArray_NewFromDescr takes (steals) the reference to descr, even on failure.
  PyObject* a = api.PyArray_NewFromDescr_(
      api.PyArray_Type_, descr, static_cast<int>(dims.size()),
      reinterpret_cast<const Py_intptr_t*>(dims.data()), nullptr, nullptr, 0, nullptr);
  if (a == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::array>(a);
}

// Sets the Python error for the C++ exception being handled, as pybind11's
// translators would: std::invalid_argument is a ValueError, std::bad_alloc a
// MemoryError, a std::system_error for a resource the system could not give
// (a thread's stack) a MemoryError, and so on.
void set_error_from_current_exception();

// The Python exception type for a std::system_error.
PyObject* system_error_type(const std::system_error& e);

}  // namespace convx_bindings
