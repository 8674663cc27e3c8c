// The _core extension module: pybind11 bindings of the C++ core. NumPy
// buffers in, NumPy buffers out, no copies; the GIL is released while C++
// runs (except for convolutions too small to be worth it). Arguments are
// normalised in python/convx; the bindings check every buffer they touch, so
// a direct call with bad arrays raises instead of crashing.
//
//   arrays.{hpp,cpp}  buffer checks, array creation, C++ -> Python errors
//   operator.cpp      convx::Conv2d as _core.Conv2dOp, packed weights, LayerBase
//   functions.cpp     pad, im2col, gemm, runtime settings, cpu_info
//   backward.cpp      the backward pass and the transposed convolution
//   conv_matrix.cpp   conv_matrix
#include <pybind11/pybind11.h>

#include <system_error>

#include "arrays.hpp"

namespace py = pybind11;

namespace convx_bindings {
void bind_operator(py::module_& m);
void bind_functions(py::module_& m);
void bind_backward(py::module_& m);
}  // namespace convx_bindings

void bind_conv_matrix(py::module_& m);

#if defined(_WIN32)
#define CONVX_EXPORT_C extern "C" __declspec(dllexport)
#else
#define CONVX_EXPORT_C extern "C" __attribute__((visibility("default")))
#endif

// The pool's thread count, exported under a name no other library uses. threadpoolctl
// identifies a library by its file name and its exported symbols; this module's file
// name (_core.cpython-...) is shared with other packages' modules, so the symbol is
// what marks it as convx's (see python/convx/_threadpoolctl.py).
CONVX_EXPORT_C int convx_get_num_threads(void) { return convx::num_threads(); }

PYBIND11_MODULE(_core, m) {
  m.doc() = "convx compiled core. Use the convx package, which validates arguments.";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const std::system_error& e) {
      PyErr_SetString(convx_bindings::system_error_type(e), e.what());
    }
  });
  convx_bindings::bind_operator(m);
  convx_bindings::bind_functions(m);
  convx_bindings::bind_backward(m);
  bind_conv_matrix(m);
  m.attr("__version__") = CONVX_VERSION_STRING;
}
