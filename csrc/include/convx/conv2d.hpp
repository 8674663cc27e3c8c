// Padding, im2col and the forward 2-D convolution (cross-correlation).
#pragma once

#include <cstdint>
#include <memory>

#include "convx/context.hpp"
#include "convx/shape.hpp"
#include "convx/types.hpp"

namespace convx {

namespace detail {
template <typename T>
struct KernelSet;
}  // namespace detail

// Logical extents of a 4-D activation tensor; the Layout says how they are
// laid out in memory. Tensors are dense and C-contiguous in that layout.
struct Dims4 {
  std::int64_t n = 0, h = 0, w = 0, c = 0;
};

// Writes the padded copy of x into y, the padding read as `mode` says
// (types.hpp): zeros, or x reflected, replicated or wrapped around.
//   x: dims in `layout`; y: (n, h+top+bottom, w+left+right, c) in `layout`.
// Throws std::invalid_argument on negative sizes or padding, or padding the
// mode does not allow for this input (naming padding_mode).
template <typename T>
void pad(const T* x, const Dims4& dims, const Padding2D& padding, Layout layout, T* y,
         PaddingMode mode = PaddingMode::Zeros);

// Writes every patch of x, flattened in `order`, into cols. Patches that hang
// over the (virtual) padding read zeros, or in params.padding_mode's other
// modes the input values it maps them to; x itself is never padded.
//   x:    input with `dims` in params.layout.
//   cols: (n, h_out, w_out, groups, k_h*k_w*c/groups), C-contiguous, for any
//         layout. With groups == 1 the last two axes are one patch of length
//         k_h*k_w*c.
// Throws std::invalid_argument (naming the argument) on a bad geometry.
template <typename T>
void im2col(const T* x, const Dims4& dims, std::int64_t k_h, std::int64_t k_w,
            const ConvParams& params, PatchOrder order, T* cols);

// How an operator computes its convolution (the Algorithm enum is in
// types.hpp); chosen once, when it is created.
//   Gemm:      implicit im2col (patches packed tile by tile, never
//              materialised) feeding the blocked GEMM, one GEMM per group.
//              Runs every shape.
//   Pointwise: a 1x1, stride-1, unpadded layer: the input already is the
//              im2col matrix, and the GEMM takes it as its operand (NHWC
//              reads its rows in place; NCHW packs its panels).
//   Direct:    NHWC, one group, patches of at most 16 values (3x3 over one
//              channel): a kernel reads the image directly, no packing.
//   Depthwise: groups == C_in == C_out: one filter per channel, vectorised
//              across channels (NHWC) or along rows (NCHW).
//   Winograd:  NHWC, one group, 3x3 filters, stride 1, dilation 1, any
//              padding and padding mode: F(4x4, 3x3), 36 GEMMs of (tiles x
//              C_in) by (C_in x C_out) per block of 4x4 output tiles, with
//              the filters transformed once (docs/winograd.md). Its float32
//              rounding error is 15-50 times the other algorithms' (about
//              1e-5 of the output's range), so only Fast, or a request for
//              Winograd itself, runs it. A run
//              whose input or filters hold an infinity or NaN is computed by
//              the GEMM instead, since the transforms would spread NaN over
//              whole tiles: the result keeps the formula's non-finite values.
//   Auto:      a request only: let choose_algorithm() decide among the
//              algorithms that round as a dot product does (all but Winograd).
//   Fast:      a request only: as Auto, and Winograd where its rule holds.

// "gemm", "pointwise", "direct", "depthwise", "winograd", "auto" or "fast".
const char* algorithm_name(Algorithm algorithm);

// The algorithm an operator for this problem uses (the one place that
// chooses). With shape.p.algorithm other than Auto or Fast, that algorithm,
// or std::invalid_argument naming `algorithm` and the condition the shape does
// not meet. With Auto: Depthwise, else Direct, else Pointwise, else Gemm.
// Fast chooses as Auto does, but takes Winograd before Pointwise where the
// rule of docs/winograd.md holds (kept filters, NHWC, one group, 3x3 stride-1
// undilated filters, at least 32 input and output channels and 8 output
// tiles). It depends on the shape alone, not on the data, the element type
// or the ISA, nor on shape.p.padding_mode: every algorithm applies every mode
// where it gathers patches or stages rows (the NHWC depthwise path stages the
// rows that touch the padding, so its kernels see none). filters_kept is
// false for an operator given its filters at every run (create_for_any_weights,
// the free conv2d): Fast then never picks Winograd, whose filter transform
// (36 values per 9 weights) would be paid on every run and cost more than the
// GEMM saves on all but large images.
Algorithm choose_algorithm(const ConvShape& shape, bool filters_kept = true);

// Why `algorithm` cannot compute `shape` ("winograd needs a 3x3 filter"...),
// or nullptr when it can. Auto can compute every shape.
const char* algorithm_unsuitable(const ConvShape& shape, Algorithm algorithm);

// Filters prepared once for many convolutions: a copy of the weights and their
// packed forms for the kernels of the context they were made on. A layer
// holds one and shares it among the operators of every input shape it sees.
// Immutable, so concurrent runs may share it. Dimensions are as for the `w`
// argument of conv2d(): OHWI for NHWC, OIHW for NCHW.
template <typename T>
class Conv2d;

template <typename T>
class ConvWeights {
 public:
  // Throws std::invalid_argument on a bad dimension or a null pointer.
  ConvWeights(const T* w, std::int64_t c_out, std::int64_t k_h, std::int64_t k_w,
              std::int64_t c_in_per_group, std::int64_t groups, Layout layout,
              Context& context = Context::default_context());
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
  // Bytes held: the copy of the weights plus their packed forms.
  std::int64_t bytes() const;

  struct Impl;

 private:
  friend class Conv2d<T>;
  const Impl& impl() const { return *impl_; }

  std::int64_t c_out_, k_h_, k_w_, c_in_per_group_, groups_;
  Layout layout_;
  std::unique_ptr<Impl> impl_;
};

// A forward convolution operator for one problem (shape, parameters,
// activation, element type), in the spirit of a oneDNN primitive: created
// once, it validates the problem, chooses the algorithm and binds the
// kernels of its context's ISA; then run() computes, any number of times,
// from any number of threads at once:
//   y[i, j, m] = act(bias[m] + sum_{u,v,c} x_pad[i*s_h + u*d_h, j*s_w + v*d_w, g*C_g + c]
//                                           * w[m, u, v, c])
// where g is m's group, for every image of the batch.
//   x:    shape.n x shape.h x shape.w x shape.c_in in shape.p.layout
//   w:    OHWI (c_out, k_h, k_w, c_in/groups) for NHWC,
//         OIHW (c_out, c_in/groups, k_h, k_w) for NCHW
//   bias: c_out values, or nullptr for none
//   y:    n x h_out x w_out x c_out in shape.p.layout; fully overwritten, never
//         read, and must not overlap x, w or bias.
// Tensors are dense and C-contiguous in their layout. Results are bitwise
// identical for any thread count.
template <typename T>
class Conv2d {
 public:
  // An operator owning a packed copy of `weights`.
  static std::unique_ptr<Conv2d> create(const ConvShape& shape, const T* weights,
                                        Activation activation = Activation::None,
                                        Context& context = Context::default_context());
  // An operator sharing prepared weights, on the context and kernels they
  // were prepared for.
  // Throws std::invalid_argument when their dimensions, groups or layout do
  // not match `shape`.
  static std::unique_ptr<Conv2d> create(const ConvShape& shape,
                                        std::shared_ptr<const ConvWeights<T>> weights,
                                        Activation activation = Activation::None);
  // An operator without weights: each run() is given them, as the free
  // function conv2d() is. Nothing is packed ahead of time.
  static std::unique_ptr<Conv2d> create_for_any_weights(
      const ConvShape& shape, Activation activation = Activation::None,
      Context& context = Context::default_context());

  ~Conv2d();
  Conv2d(const Conv2d&) = delete;
  Conv2d& operator=(const Conv2d&) = delete;

  // With the operator's own weights; throws std::logic_error on an operator
  // made by create_for_any_weights().
  void run(const T* x, const T* bias, T* y) const;
  // With the weights `w` (any operator).
  void run(const T* x, const T* w, const T* bias, T* y) const;

  Algorithm algorithm() const { return algorithm_; }
  // The micro-kernel the algorithm runs, e.g. "f32 12x32 avx512".
  const char* kernel() const { return kernel_; }
  // Scratch bytes a run uses at most, over all threads of the context at its
  // present size (packed tiles, staged rows); the packed weights, which the
  // operator or its ConvWeights holds, are not included.
  std::int64_t workspace_bytes() const;
  // Multiply-adds times two of one run (bias and activation not counted).
  double flops() const;
  const ConvShape& shape() const { return shape_; }
  Activation activation() const { return activation_; }
  bool has_weights() const { return weights_ != nullptr; }

 private:
  Conv2d(const ConvShape& shape, Activation activation,
         std::shared_ptr<detail::ContextState> context,
         std::shared_ptr<const ConvWeights<T>> weights);
  void run_impl(const T* x, const T* w, const T* bias, T* y) const;

  ConvShape shape_;
  Activation activation_;
  std::shared_ptr<detail::ContextState> context_;
  std::shared_ptr<const ConvWeights<T>> weights_;
  Algorithm algorithm_;
  const detail::KernelSet<T>* kernels_;  // bound at creation
  const char* kernel_;
};

// Free functions: each makes an operator for the call and runs it once. A
// program that convolves the same shape repeatedly should keep an operator.

// conv2d with weights given per call, on the default context.
template <typename T>
void conv2d(const ConvShape& shape, const T* x, const T* w, const T* bias, T* y,
            Activation activation = Activation::None);

// conv2d() with prepared weights. Throws std::invalid_argument if the
// weights' dimensions, groups or layout do not match `shape`.
template <typename T>
void conv2d(const ConvShape& shape, const T* x, const ConvWeights<T>& w, const T* bias, T* y,
            Activation activation = Activation::None);

// Scratch memory conv2d() uses for this shape on the default context, in
// bytes, over all threads of its pool: packed tiles of patches and weights. It
// is bounded by the blocking (a few hundred KiB per thread plus the packed
// weights) and does not grow with the image size.
template <typename T>
std::int64_t conv2d_workspace_bytes(const ConvShape& shape);

}  // namespace convx
