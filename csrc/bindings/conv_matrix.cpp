// pybind11 glue for conv_matrix: arrays in, arrays out, GIL released while
// the matrix is built. Argument normalisation happens in python/convx.
#include "convx/conv_matrix.hpp"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "gil.hpp"

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "convx/shape.hpp"

namespace py = pybind11;

namespace {

using convx::ConvMatrixDomain;
using convx::ConvParams;
using convx::ConvShape;
using convx::Layout;

ConvParams make_params(std::int64_t stride_h, std::int64_t stride_w, std::int64_t pad_top,
                       std::int64_t pad_bottom, std::int64_t pad_left, std::int64_t pad_right,
                       std::int64_t dilation_h, std::int64_t dilation_w, std::int64_t groups,
                       bool nchw) {
  ConvParams p;
  p.stride_h = stride_h;
  p.stride_w = stride_w;
  p.pad = {pad_top, pad_bottom, pad_left, pad_right};
  p.dilation_h = dilation_h;
  p.dilation_w = dilation_w;
  p.groups = groups;
  p.layout = nchw ? Layout::NCHW : Layout::NHWC;
  return p;
}

ConvMatrixDomain domain_of(bool acts_on_input) {
  return acts_on_input ? ConvMatrixDomain::Input : ConvMatrixDomain::Padded;
}

// Hands the vector's buffer to NumPy: the array's base is a capsule that owns
// the (moved, not copied) vector and frees it with the array.
template <typename V>
py::array_t<V> into_numpy(std::vector<V>&& v) {
  auto owned = std::make_unique<std::vector<V>>(std::move(v));
  const auto size = static_cast<py::ssize_t>(owned->size());
  V* data = owned->data();
  py::capsule base(owned.get(), [](void* p) { delete static_cast<std::vector<V>*>(p); });
  owned.release();
  return py::array_t<V>(size, data, base);
}

template <typename T>
using WeightArray = py::array_t<T, py::array::c_style | py::array::forcecast>;

// Builds the ConvShape from the 4-D weight array: OHWI (c_out, k_h, k_w, cg)
// for NHWC, OIHW (c_out, cg, k_h, k_w) for NCHW.
template <typename T>
ConvShape shape_from_weight(const WeightArray<T>& weight, std::int64_t h, std::int64_t w,
                            std::int64_t c_in, const ConvParams& p) {
  if (weight.ndim() != 4) {
    throw std::invalid_argument("weight: expected a 4-D array, got " +
                                std::to_string(weight.ndim()) + " dimensions");
  }
  const bool nchw = p.layout == Layout::NCHW;
  const std::int64_t c_out = weight.shape(0);
  const std::int64_t cg = nchw ? weight.shape(1) : weight.shape(3);
  const std::int64_t k_h = nchw ? weight.shape(2) : weight.shape(1);
  const std::int64_t k_w = nchw ? weight.shape(3) : weight.shape(2);
  ConvShape s = convx::make_conv_shape(1, h, w, c_in, c_out, k_h, k_w, p);
  if (cg != s.c_in_per_group()) {
    throw std::invalid_argument("weight: in_channels/groups is " +
                                std::to_string(s.c_in_per_group()) +
                                " but the weight has " + std::to_string(cg));
  }
  return s;
}

template <typename T>
py::tuple conv_matrix_csr_py(const WeightArray<T>& weight, std::int64_t h, std::int64_t w,
                             std::int64_t c_in, std::int64_t stride_h, std::int64_t stride_w,
                             std::int64_t pad_top, std::int64_t pad_bottom, std::int64_t pad_left,
                             std::int64_t pad_right, std::int64_t dilation_h,
                             std::int64_t dilation_w, std::int64_t groups, bool nchw,
                             bool acts_on_input) {
  const ConvParams p = make_params(stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right,
                                   dilation_h, dilation_w, groups, nchw);
  const ConvShape s = shape_from_weight<T>(weight, h, w, c_in, p);
  const T* wptr = weight.data();
  convx::CsrMatrix<T> a;
  convx_bindings::without_gil(
      [&] { a = convx::conv_matrix_csr<T>(s, wptr, domain_of(acts_on_input)); });
  return py::make_tuple(into_numpy(std::move(a.indptr)), into_numpy(std::move(a.indices)),
                        into_numpy(std::move(a.data)), py::make_tuple(a.rows, a.cols));
}

#define CONVX_GEOMETRY_ARGS                                                                 \
  py::arg("h"), py::arg("w"), py::arg("c_in"), py::arg("stride_h"), py::arg("stride_w"),   \
      py::arg("pad_top"), py::arg("pad_bottom"), py::arg("pad_left"), py::arg("pad_right"), \
      py::arg("dilation_h"), py::arg("dilation_w"), py::arg("groups"), py::arg("nchw"),     \
      py::arg("acts_on_input")

}  // namespace

void bind_conv_matrix(py::module_& m) {
  m.def(
      "conv_matrix_info",
      [](std::int64_t c_out, std::int64_t k_h, std::int64_t k_w, std::int64_t h, std::int64_t w,
         std::int64_t c_in, std::int64_t stride_h, std::int64_t stride_w, std::int64_t pad_top,
         std::int64_t pad_bottom, std::int64_t pad_left, std::int64_t pad_right,
         std::int64_t dilation_h, std::int64_t dilation_w, std::int64_t groups, bool nchw,
         bool acts_on_input) {
        const ConvParams p = make_params(stride_h, stride_w, pad_top, pad_bottom, pad_left,
                                         pad_right, dilation_h, dilation_w, groups, nchw);
        const ConvShape s = convx::make_conv_shape(1, h, w, c_in, c_out, k_h, k_w, p);
        const convx::ConvMatrixInfo info = convx::conv_matrix_info(s, domain_of(acts_on_input));
        return std::make_tuple(info.rows, info.cols, info.nnz, s.h_out, s.w_out);
      },
      py::arg("c_out"), py::arg("k_h"), py::arg("k_w"), CONVX_GEOMETRY_ARGS,
      "Sizes of the convolution matrix without building it: "
      "(rows, cols, nnz, h_out, w_out). Raises ValueError on a bad geometry.");

  m.def("conv_matrix_csr_f32", &conv_matrix_csr_py<float>, py::arg("weight"),
        CONVX_GEOMETRY_ARGS,
        "Convolution matrix of one image in CSR form: (indptr, indices, data, (rows, cols)). "
        "indices and indptr are int64; data is float32.");
  m.def("conv_matrix_csr_f64", &conv_matrix_csr_py<double>, py::arg("weight"),
        CONVX_GEOMETRY_ARGS,
        "Convolution matrix of one image in CSR form: (indptr, indices, data, (rows, cols)). "
        "indices and indptr are int64; data is float64.");
}

#undef CONVX_GEOMETRY_ARGS
