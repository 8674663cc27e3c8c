// The backward pass of the convolution and the transposed convolution:
// siblings of convx::Conv2d, made once and run many times.
//
// All three take the shape of the FORWARD convolution (make_conv_shape), the
// one whose gradients they compute or whose linear map they transpose:
//   forward:  y = conv2d(x, w) (+ bias),  x: n x h x w x c_in,
//             y: n x h_out x w_out x c_out, w as in Conv2d (OHWI / OIHW).
//   dx = W^T dy   (Conv2dBackwardData; also the transposed convolution)
//   dw = dy^T . im2col(x) over the whole batch, db = sum of dy over pixels
//        (Conv2dBackwardWeights)
// Every tensor is dense and C-contiguous in shape.p.layout. Results are
// bitwise identical at any thread count: threads own disjoint parts of the
// result and every sum runs in a fixed order.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "convx/conv2d.hpp"

namespace convx {

// The gradient with respect to the input, dx[b, i, j, c] = sum over the
// outputs that read x[b, i, j, c] of dy * w. Inputs that no patch reads (a
// stride larger than the kernel's extent) get exactly 0 for finite weights.
// Two methods, chosen at creation from the shape:
//   - a forward convolution of dy with the spatially flipped, transposed
//     filters; for a stride above 1, or padding beyond the kernel's extent,
//     dy is first spread onto a zero grid of the right size (scratch of
//     n x (h + dilated k_h - 1) x (w + dilated k_w - 1) x c_out values);
//   - for few input channels per group (under 8; depthwise layers excepted),
//     where that convolution would have too few output channels to fill a
//     GEMM tile: col2im, the patch gradients dy . W of a block of output
//     pixels (a GEMM), added into dx pixel by pixel in order.
// Both give the input's own part of d(x_pad), the gradient of the padded
// input, which is all of dx in Zeros mode. In the other padding modes the
// values of d(x_pad) on the padding are then computed position by position
// (a band along the border, c_in values at a time, never a padded image) and
// added onto the input pixels the mode read them from, in a fixed order.
template <typename T>
class Conv2dBackwardData {
 public:
  // Throws std::invalid_argument on a shape not made by make_conv_shape or
  // null weights.
  static std::unique_ptr<Conv2dBackwardData> create(const ConvShape& forward_shape,
                                                    const T* weights,
                                                    Context& context = Context::default_context());
  ~Conv2dBackwardData();
  Conv2dBackwardData(const Conv2dBackwardData&) = delete;
  Conv2dBackwardData& operator=(const Conv2dBackwardData&) = delete;

  // dx (n x h x w x c_in) from dy (n x h_out x w_out x c_out), overwritten.
  void run(const T* dy, T* dx) const;

  const ConvShape& shape() const { return shape_; }
  // "convolution" or "col2im" (see above).
  const char* method() const;
  // Scratch of one run, over all threads: the spread dy or the patch
  // gradients, and the GEMM's.
  std::int64_t workspace_bytes() const;

 private:
  Conv2dBackwardData() = default;
  void run_col2im(const T* dy, T* dx) const;
  std::int64_t method_workspace_bytes() const;

  // Patch-gradient values col2im computes at a time: bounds its scratch
  // whatever the image size.
  static constexpr std::int64_t kCol2imBlock = std::int64_t(1) << 21;

  ConvShape shape_;
  std::unique_ptr<Conv2d<T>> inner_;  // the convolution method's operator
  // The convolution method's filters (flipped and transposed), or col2im's (as given).
  std::vector<T> filters_;
  // The filters as the padding's part of dx reads them (modes other than Zeros).
  std::vector<T> border_;
  bool spread_ = false;  // dy goes onto a zero grid first
  bool col2im_ = false;
  std::shared_ptr<detail::ContextState> context_;  // col2im's
  const detail::KernelSet<T>* kernels_ = nullptr;
};

// The gradients with respect to the filters and the bias. dw has the layout
// of the weights (OHWI for NHWC, OIHW for NCHW) and is one GEMM per group
// whose reduction runs over every output pixel of the batch, patches packed
// tile by tile from x (never the whole im2col matrix); db[m] sums dy over
// the batch's pixels in order.
template <typename T>
class Conv2dBackwardWeights {
 public:
  static std::unique_ptr<Conv2dBackwardWeights> create(
      const ConvShape& forward_shape, Context& context = Context::default_context());
  ~Conv2dBackwardWeights();
  Conv2dBackwardWeights(const Conv2dBackwardWeights&) = delete;
  Conv2dBackwardWeights& operator=(const Conv2dBackwardWeights&) = delete;

  // dw (c_out x k_h x k_w x c_in/groups, or OIHW) and db (c_out values) from
  // x and dy; either output may be null, to skip it (x may be null when dw
  // is). Both are overwritten.
  void run(const T* x, const T* dy, T* dw, T* db) const;

  const ConvShape& shape() const { return shape_; }
  const char* kernel() const;

 private:
  Conv2dBackwardWeights(const ConvShape& shape, std::shared_ptr<detail::ContextState> context);
  ConvShape shape_;
  std::shared_ptr<detail::ContextState> context_;
  const detail::KernelSet<T>* kernels_;
};

// The forward shape whose input-gradient map is the transposed convolution
// of an n x h x w x c_in input (in `params.layout`) to c_out channels with a
// k_h x k_w kernel: its input extent is
//   (h - 1)*stride - pad_top - pad_bottom + dilation*(k_h - 1) + output_padding_h + 1
// (and likewise for the width), its c_in is the transposed convolution's
// c_out and its c_out the transposed convolution's c_in. output_padding must
// be below the stride or the dilation of its axis; when it is not below the
// stride, the forward shape has more output rows (h_out > h) than the
// transposed convolution has input rows, and those extra rows read as zeros.
// params.padding_mode must be Zeros (as in torch, the only mode a transposed
// convolution has). Throws std::invalid_argument naming the bad argument.
ConvShape make_conv_transpose_shape(std::int64_t n, std::int64_t h, std::int64_t w,
                                    std::int64_t c_in, std::int64_t c_out, std::int64_t k_h,
                                    std::int64_t k_w, const ConvParams& params,
                                    std::int64_t output_padding_h,
                                    std::int64_t output_padding_w);

// The transposed convolution y = W^T x + bias, with PyTorch's and ONNX's
// ConvTranspose semantics, for an n x h x w x c_in input x to c_out channels
// (the arguments of make_conv_transpose_shape()). The weights are those of
// the convolution it transposes: (c_in, k_h, k_w, c_out/groups) for NHWC and
// (c_in, c_out/groups, k_h, k_w) for NCHW.
template <typename T>
class ConvTranspose2d {
 public:
  static std::unique_ptr<ConvTranspose2d> create(std::int64_t n, std::int64_t h, std::int64_t w,
                                                 std::int64_t c_in, std::int64_t c_out,
                                                 std::int64_t k_h, std::int64_t k_w,
                                                 const ConvParams& params,
                                                 std::int64_t output_padding_h,
                                                 std::int64_t output_padding_w, const T* weights,
                                                 Context& context = Context::default_context());
  // y (n x H x W x c_out, H and W as above) from x (n x h x w x c_in); bias
  // has c_out values or is null.
  void run(const T* x, const T* bias, T* y) const;
  // The convolution it transposes.
  const ConvShape& forward_shape() const { return data_->shape(); }
  const Conv2dBackwardData<T>& data() const { return *data_; }

 private:
  ConvTranspose2d(std::unique_ptr<Conv2dBackwardData<T>> data, std::int64_t h, std::int64_t w);
  std::unique_ptr<Conv2dBackwardData<T>> data_;
  std::int64_t h_, w_;  // the input's extent; the forward output's may be larger
};

// Free functions: each makes an operator for the call and runs it once.
template <typename T>
void conv2d_backward_data(const ConvShape& forward_shape, const T* dy, const T* w, T* dx);
template <typename T>
void conv2d_backward_weights(const ConvShape& forward_shape, const T* x, const T* dy, T* dw,
                             T* db);

}  // namespace convx
