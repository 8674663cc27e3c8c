// A 2-D convolution written out as the sparse matrix it is.
//
// For one image, the layer computes vec(Y) = W * vec(X) + b. Every vector is
// flattened column-major per channel:
//
//   output Y (h_out x w_out x c_out):   Y[r, c, m]     -> row    m*h_out*w_out + c*h_out + r
//   padded input (hp x wp x c_in):      X_pad[r, c, k] -> column k*hp*wp + c*hp + r
//   unpadded input (h x w x c_in):      X[r, c, k]     -> column k*h*w + c*h + r
//
// with hp = h + pad.top + pad.bottom and wp = w + pad.left + pad.right. For an
// image stored HWC this is NumPy's ravel(order="F").
//
// Output (i, j, m) of group g = m / (c_out/groups) reads the patch at
// X_pad[i*s_h + u*d_h, j*s_w + v*d_w, g*cg + q] for u < k_h, v < k_w, q < cg,
// where cg = c_in/groups. So row m*h_out*w_out + j*h_out + i holds
// weight(m, u, v, q) at column (g*cg + q)*hp*wp + (j*s_w + v*d_w)*hp + (i*s_h + u*d_h)
// and nothing else: exactly k_h*k_w*cg entries, which never collide because
// the column is strictly increasing in (q, v, u). That gives
//   nnz = h_out * w_out * c_out * k_h * k_w * c_in / groups.
//
// Acting on the unpadded input (ConvMatrixDomain::Input) drops the entries
// whose column falls in the zero border and renumbers the rest with the
// unpadded formula (row r - pad.top, column c - pad.left). Each kept entry is
// the same weight; rows near the border simply hold fewer of them.
//
// W^T is the transposed convolution (the adjoint), and with Input it is also
// the gradient of the layer with respect to its input: dX = W^T dY.
#pragma once

#include <cstdint>
#include <vector>

#include "convx/shape.hpp"

namespace convx {

// Which vector the matrix multiplies: the zero-padded image or the image itself.
enum class ConvMatrixDomain { Padded, Input };

// Compressed sparse rows. Row i owns entries [indptr[i], indptr[i+1]); within a
// row the column indices are strictly increasing (canonical CSR: sorted and
// without duplicates).
template <typename T>
struct CsrMatrix {
  std::int64_t rows = 0, cols = 0;
  std::vector<std::int64_t> indptr;   // rows + 1 offsets, indptr[0] == 0
  std::vector<std::int64_t> indices;  // nnz column indices
  std::vector<T> data;                // nnz values
  std::int64_t nnz() const { return static_cast<std::int64_t>(indices.size()); }
};

// Coordinate triplets in the same order as the CSR form (row-major, sorted).
template <typename T>
struct CooMatrix {
  std::int64_t rows = 0, cols = 0;
  std::vector<std::int64_t> row, col;
  std::vector<T> val;
  std::int64_t nnz() const { return static_cast<std::int64_t>(row.size()); }
};

// Sizes of W without building it.
struct ConvMatrixInfo {
  std::int64_t rows = 0;  // h_out * w_out * c_out
  std::int64_t cols = 0;  // hp*wp*c_in (Padded) or h*w*c_in (Input)
  std::int64_t nnz = 0;   // exact number of stored entries
};

// Shape and entry count of W for `shape` (shape.n is ignored: W maps one
// image; apply it to each image of a batch). Throws std::invalid_argument when
// rows, columns or nnz overflow int64.
ConvMatrixInfo conv_matrix_info(const ConvShape& shape, ConvMatrixDomain domain);

// Builds W in CSR form in O(rows + nnz) time and memory; nothing dense is ever
// allocated. Rows come out in order, so the arrays are written once, front to
// back.
//   shape:  from make_conv_shape(); shape.n is ignored.
//   weight: OHWI (c_out, k_h, k_w, c_in/groups) when shape.p.layout is NHWC,
//           OIHW (c_out, c_in/groups, k_h, k_w) when it is NCHW. The layout
//           only says how the weights are stored; the row and column order of
//           W is the one above either way.
// Throws std::invalid_argument on a null weight or on sizes that overflow.
template <typename T>
CsrMatrix<T> conv_matrix_csr(const ConvShape& shape, const T* weight, ConvMatrixDomain domain);

// The same matrix as coordinate triplets (row index expanded from the CSR form).
template <typename T>
CooMatrix<T> conv_matrix_coo(const ConvShape& shape, const T* weight, ConvMatrixDomain domain);

// The matching b: entry m*h_out*w_out + c*h_out + r is bias[m]. A null bias
// gives zeros. Length h_out*w_out*c_out.
template <typename T>
std::vector<T> conv_bias_vector(const ConvShape& shape, const T* bias);

extern template CsrMatrix<float> conv_matrix_csr<float>(const ConvShape&, const float*,
                                                        ConvMatrixDomain);
extern template CsrMatrix<double> conv_matrix_csr<double>(const ConvShape&, const double*,
                                                          ConvMatrixDomain);
extern template CooMatrix<float> conv_matrix_coo<float>(const ConvShape&, const float*,
                                                        ConvMatrixDomain);
extern template CooMatrix<double> conv_matrix_coo<double>(const ConvShape&, const double*,
                                                          ConvMatrixDomain);
extern template std::vector<float> conv_bias_vector<float>(const ConvShape&, const float*);
extern template std::vector<double> conv_bias_vector<double>(const ConvShape&, const double*);

}  // namespace convx
