// Convolution geometry: parameters, validation and the output-shape formula.
#pragma once

#include <cstdint>

#include "convx/types.hpp"

namespace convx {

// Hyper-parameters of a 2-D convolution. Every field is validated by
// make_conv_shape(); the defaults describe a plain stride-1, unpadded conv.
struct ConvParams {
  std::int64_t stride_h = 1, stride_w = 1;
  std::int64_t dilation_h = 1, dilation_w = 1;
  Padding2D pad{};
  PaddingMode padding_mode = PaddingMode::Zeros;
  std::int64_t groups = 1;
  Layout layout = Layout::NHWC;
  // The forward algorithm requested (conv2d.hpp's choose_algorithm); Auto
  // chooses from the shape. Only forward operators read it.
  Algorithm algorithm = Algorithm::Auto;
};

// A fully resolved, validated convolution problem. Sizes are element counts.
struct ConvShape {
  std::int64_t n = 0, h = 0, w = 0, c_in = 0;  // input
  std::int64_t c_out = 0, k_h = 0, k_w = 0;    // filters
  std::int64_t h_out = 0, w_out = 0;           // output
  ConvParams p{};

  std::int64_t groups() const { return p.groups; }
  std::int64_t c_in_per_group() const { return c_in / p.groups; }
  std::int64_t c_out_per_group() const { return c_out / p.groups; }
  // Length of one flattened patch of one group: k_h*k_w*C_in/groups.
  std::int64_t patch_size() const { return k_h * k_w * c_in_per_group(); }
  std::int64_t input_size() const { return n * h * w * c_in; }
  std::int64_t weight_size() const { return c_out * patch_size(); }
  std::int64_t output_size() const { return n * h_out * w_out * c_out; }
};

// "zeros", "reflect", "replicate" or "circular".
const char* padding_mode_name(PaddingMode mode);

// Throws std::invalid_argument, naming padding_mode, when `mode` does not fit
// an h x w input padded by `pad` (the limits in types.hpp), or is not a
// PaddingMode value.
void validate_padding_mode(PaddingMode mode, const Padding2D& pad, std::int64_t h,
                           std::int64_t w);

// Output extent of one spatial axis:
//   floor((in + pad_before + pad_after - dilation*(k-1) - 1) / stride) + 1.
// With dilation 1 and symmetric padding p this is the maths note's
// floor((in - k + 2p)/s) + 1. Throws std::invalid_argument if the dilated
// kernel does not fit in the padded input.
std::int64_t conv_output_size(std::int64_t in, std::int64_t k, std::int64_t stride,
                              std::int64_t pad_before, std::int64_t pad_after,
                              std::int64_t dilation);

// Validates every argument and every size product (overflow of int64 is an
// error) and returns the resolved geometry. A padding mode other than Zeros
// must fit the input (types.hpp); when every pad is 0 the mode is reset to
// Zeros, since nothing reads the padding. Throws std::invalid_argument with
// a message naming the offending argument.
ConvShape make_conv_shape(std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c_in,
                          std::int64_t c_out, std::int64_t k_h, std::int64_t k_w,
                          const ConvParams& params);

// The geometry of a convolution's patches alone (for im2col): every field of
// ConvShape validated as make_conv_shape() does, except c_out, which is 0.
ConvShape make_patch_shape(std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c_in,
                           std::int64_t k_h, std::int64_t k_w, const ConvParams& params);

}  // namespace convx
