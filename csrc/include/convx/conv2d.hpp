// Padding, im2col and the forward 2-D convolution (cross-correlation).
#pragma once

#include <cstdint>
#include <memory>

#include "convx/shape.hpp"
#include "convx/types.hpp"

namespace convx {

// Logical extents of a 4-D activation tensor; the Layout says how they are
// laid out in memory. Tensors are dense and C-contiguous in that layout.
struct Dims4 {
  std::int64_t n = 0, h = 0, w = 0, c = 0;
};

// Writes the zero-padded copy of x into y.
//   x: dims in `layout`; y: (n, h+top+bottom, w+left+right, c) in `layout`.
// Throws std::invalid_argument on negative sizes or padding.
template <typename T>
void pad(const T* x, const Dims4& dims, const Padding2D& padding, Layout layout, T* y);

// Writes every patch of x, flattened in `order`, into cols. Patches that hang
// over the (virtual) zero padding read zeros; x itself is never padded.
//   x:    input with `dims` in params.layout.
//   cols: (n, h_out, w_out, groups, k_h*k_w*c/groups), C-contiguous, for any
//         layout. With groups == 1 the last two axes are one patch of length
//         k_h*k_w*c.
// Throws std::invalid_argument (naming the argument) on a bad geometry.
template <typename T>
void im2col(const T* x, const Dims4& dims, std::int64_t k_h, std::int64_t k_w,
            const ConvParams& params, PatchOrder order, T* cols);

// Forward convolution: for every image, output pixel (i, j) and filter m,
//   y[i, j, m] = act(bias[m] + sum_{u,v,c} x_pad[i*s_h + u*d_h, j*s_w + v*d_w, g*C_g + c]
//                                           * w[m, u, v, c])
// where g is m's group. Computed as implicit im2col (patches are packed tile
// by tile, never materialised in full) followed by a blocked GEMM whose
// epilogue adds the bias and applies the activation.
//   x:    shape.n x shape.h x shape.w x shape.c_in in shape.p.layout
//   w:    OHWI (c_out, k_h, k_w, c_in/groups) for NHWC,
//         OIHW (c_out, c_in/groups, k_h, k_w) for NCHW
//   bias: c_out values, or nullptr for none
//   y:    n x h_out x w_out x c_out in shape.p.layout; fully overwritten, never
//         read, and must not overlap x, w or bias.
template <typename T>
void conv2d(const ConvShape& shape, const T* x, const T* w, const T* bias, T* y,
            Activation activation = Activation::None);

// Filters prepared once for many convolutions, as a layer holds them. For
// NHWC the weights are packed into the GEMM kernel's panel layout up front, so
// conv2d() does not re-pack them on every call (ONNX Runtime and oneDNN do the
// same when a model is loaded). The object owns a copy of the weights, never
// changes, and may be shared by concurrent calls. Dimensions are as for the
// `w` argument of conv2d(): OHWI for NHWC, OIHW for NCHW.
template <typename T>
class ConvWeights {
 public:
  ConvWeights(const T* w, std::int64_t c_out, std::int64_t k_h, std::int64_t k_w,
              std::int64_t c_in_per_group, std::int64_t groups, Layout layout);
  ~ConvWeights();
  ConvWeights(const ConvWeights&) = delete;
  ConvWeights& operator=(const ConvWeights&) = delete;

  const T* data() const;  // the weights as given
  std::int64_t c_out() const { return c_out_; }
  std::int64_t k_h() const { return k_h_; }
  std::int64_t k_w() const { return k_w_; }
  std::int64_t c_in_per_group() const { return c_in_per_group_; }
  std::int64_t groups() const { return groups_; }
  Layout layout() const { return layout_; }
  // Bytes held: the copy of the weights plus their packed form.
  std::int64_t bytes() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  std::int64_t c_out_, k_h_, k_w_, c_in_per_group_, groups_;
  Layout layout_;
  std::unique_ptr<Impl> impl_;
};

// conv2d() with prepared weights. Throws std::invalid_argument if the
// weights' dimensions, groups or layout do not match `shape`.
template <typename T>
void conv2d(const ConvShape& shape, const T* x, const ConvWeights<T>& w, const T* bias, T* y,
            Activation activation = Activation::None);

// Scratch memory conv2d() uses for this shape, in bytes, over all threads of
// the pool: packed tiles of patches and weights. It is bounded by the blocking
// (a few hundred KiB per thread plus the packed weights) and does not grow
// with the image size; the im2col matrix is never materialised.
template <typename T>
std::int64_t conv2d_workspace_bytes(const ConvShape& shape);

}  // namespace convx
