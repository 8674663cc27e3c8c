// Bindings of the backward operators and the transposed convolution: buffer
// checks, then the core with the GIL released. Arguments are normalised and
// outputs allocated in python/convx/functional.py.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "arrays.hpp"
#include "gil.hpp"

namespace convx_bindings {

namespace {

using std::int64_t;

// The output's data after checking it, or nullptr for None.
template <typename T>
T* optional_output(const py::object& out, int64_t count, const char* name) {
  if (out.is_none()) return nullptr;
  if (!py::isinstance<py::array>(out)) throw py::type_error(std::string(name) + ": must be an array");
  auto a = py::reinterpret_borrow<py::array>(out);
  return output_ptr<T>(a, count, name);
}

template <typename T>
void backward_typed(const convx::ConvShape& s, const py::array& grad_out, const py::object& x,
                    const py::object& w, const py::object& dx, const py::object& dw,
                    const py::object& db) {
  const T* gp = input_ptr<T>(grad_out, s.output_size(), "grad_out");
  T* dxp = optional_output<T>(dx, s.input_size(), "dx");
  T* dwp = optional_output<T>(dw, s.weight_size(), "dw");
  T* dbp = optional_output<T>(db, s.c_out, "db");
  const T* wp = dxp != nullptr ? input_ptr<T>(py::cast<py::array>(w), s.weight_size(), "weight")
                               : nullptr;
  const T* xp = dwp != nullptr ? input_ptr<T>(py::cast<py::array>(x), s.input_size(), "x")
                               : nullptr;
  without_gil([&] {
    if (dxp != nullptr) convx::conv2d_backward_data<T>(s, gp, wp, dxp);
    if (dwp != nullptr || dbp != nullptr) convx::conv2d_backward_weights<T>(s, xp, gp, dwp, dbp);
  });
}

void conv2d_backward(Int4 input_dims, Int2 cout_kh, int64_t k_w, Int2 stride, Int2 dilation,
                     Int4 pad, int64_t groups, const std::string& layout,
                     const py::array& grad_out, const py::object& x, const py::object& w,
                     const py::object& dx, const py::object& dw, const py::object& db,
                     const std::string& padding_mode) {
  const convx::ConvShape s = convx::make_conv_shape(
      input_dims[0], input_dims[1], input_dims[2], input_dims[3], cout_kh[0], cout_kh[1], k_w,
      make_params(stride, dilation, pad, groups, layout, padding_mode));
  if (dtype_of(grad_out, "grad_out") == DType::F32) {
    backward_typed<float>(s, grad_out, x, w, dx, dw, db);
  } else {
    backward_typed<double>(s, grad_out, x, w, dx, dw, db);
  }
}

template <typename T>
void transpose_typed(Int4 dims, int64_t c_out, Int2 kernel, const convx::ConvParams& p,
                     Int2 output_padding, const py::array& x, const py::array& w,
                     const py::object& bias, py::array& out) {
  const convx::ConvShape f = convx::make_conv_transpose_shape(
      dims[0], dims[1], dims[2], dims[3], c_out, kernel[0], kernel[1], p, output_padding[0],
      output_padding[1]);
  const T* xp = input_ptr<T>(x, checked_count({dims[0], dims[1], dims[2], dims[3]}, "x"), "x");
  const T* wp = input_ptr<T>(w, f.weight_size(), "weight");
  const T* bp = nullptr;
  if (!bias.is_none()) bp = input_ptr<T>(py::cast<py::array>(bias), f.c_in, "bias");
  T* yp = output_ptr<T>(out, f.input_size(), "out");
  if (overlaps(out, x) || overlaps(out, w) ||
      (bp != nullptr && overlaps(out, py::cast<py::array>(bias)))) {
    throw std::invalid_argument("out: must not overlap the input arrays");
  }
  without_gil([&] {
    convx::ConvTranspose2d<T>::create(dims[0], dims[1], dims[2], dims[3], c_out, kernel[0],
                                      kernel[1], p, output_padding[0], output_padding[1], wp)
        ->run(xp, bp, yp);
  });
}

void conv_transpose2d(const py::array& x, const py::array& w, const py::object& bias,
                      py::array& out, Int4 dims, int64_t c_out, Int2 kernel, Int2 stride,
                      Int2 dilation, Int4 pad, int64_t groups, const std::string& layout,
                      Int2 output_padding) {
  const convx::ConvParams p = make_params(stride, dilation, pad, groups, layout);
  if (dtype_of(x, "x") == DType::F32) {
    transpose_typed<float>(dims, c_out, kernel, p, output_padding, x, w, bias, out);
  } else {
    transpose_typed<double>(dims, c_out, kernel, p, output_padding, x, w, bias, out);
  }
}

}  // namespace

void bind_backward(py::module_& m) {
  m.def("conv2d_backward", &conv2d_backward, py::arg("input_dims"), py::arg("cout_kh"),
        py::arg("k_w"), py::arg("stride"), py::arg("dilation"), py::arg("pad"),
        py::arg("groups"), py::arg("layout"), py::arg("grad_out"), py::arg("x"),
        py::arg("weight"), py::arg("dx"), py::arg("dw"), py::arg("db"),
        py::arg("padding_mode") = "zeros");
  m.def("conv_transpose2d", &conv_transpose2d, py::arg("x"), py::arg("weight"), py::arg("bias"),
        py::arg("out"), py::arg("dims"), py::arg("c_out"), py::arg("kernel"), py::arg("stride"),
        py::arg("dilation"), py::arg("pad"), py::arg("groups"), py::arg("layout"),
        py::arg("output_padding"));
}

}  // namespace convx_bindings
