#include "convx/shape.hpp"

#include <algorithm>
#include <string>

#include "common/checked.hpp"

namespace convx {

using detail::checked_add;
using detail::checked_mul;
using detail::require;

const char* padding_mode_name(PaddingMode mode) {
  switch (mode) {
    case PaddingMode::Zeros: return "zeros";
    case PaddingMode::Reflect: return "reflect";
    case PaddingMode::Replicate: return "replicate";
    case PaddingMode::Circular: return "circular";
  }
  return "unknown";
}

namespace {

// The limits torch sets on a padding mode along one axis of extent n.
void check_padding_mode(PaddingMode mode, std::int64_t before, std::int64_t after,
                        std::int64_t n, const char* axis) {
  if (before == 0 && after == 0) return;
  const std::string what = std::string("padding_mode '") + padding_mode_name(mode) +
                           "': padding (" + std::to_string(before) + ", " +
                           std::to_string(after) + ") along the input " + axis + " " +
                           std::to_string(n);
  switch (mode) {
    case PaddingMode::Zeros: return;
    case PaddingMode::Reflect:
      require(before < n && after < n, what + " must be smaller than the " + axis);
      return;
    case PaddingMode::Replicate:
      require(n >= 1, what + " needs a " + axis + " of at least 1");
      return;
    case PaddingMode::Circular:
      require(before <= n && after <= n, what + " must be at most the " + axis);
      return;
  }
  require(false, "padding_mode: unknown value");
}

}  // namespace

void validate_padding_mode(PaddingMode mode, const Padding2D& pad, std::int64_t h,
                           std::int64_t w) {
  check_padding_mode(mode, pad.top, pad.bottom, h, "height");
  check_padding_mode(mode, pad.left, pad.right, w, "width");
}

std::int64_t conv_output_size(std::int64_t in, std::int64_t k, std::int64_t stride,
                              std::int64_t pad_before, std::int64_t pad_after,
                              std::int64_t dilation) {
  require(in >= 0, "input size must be >= 0, got " + std::to_string(in));
  require(k >= 1, "kernel size must be >= 1, got " + std::to_string(k));
  require(stride >= 1, "stride must be >= 1, got " + std::to_string(stride));
  require(dilation >= 1, "dilation must be >= 1, got " + std::to_string(dilation));
  require(pad_before >= 0 && pad_after >= 0, "padding must be >= 0, got (" +
                                                 std::to_string(pad_before) + ", " +
                                                 std::to_string(pad_after) + ")");
  const std::int64_t padded = checked_add(checked_add(in, pad_before, "padding"), pad_after,
                                          "padding");
  const std::int64_t span = checked_add(checked_mul(dilation, k - 1, "dilation"), 1, "kernel");
  require(span <= padded, "kernel_size: the (dilated) kernel extent " + std::to_string(span) +
                              " is larger than the padded input extent " +
                              std::to_string(padded));
  return (padded - span) / stride + 1;
}

ConvShape make_conv_shape(std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c_in,
                          std::int64_t c_out, std::int64_t k_h, std::int64_t k_w,
                          const ConvParams& p) {
  require(c_out >= 1, "weight: out_channels must be >= 1, got " + std::to_string(c_out));
  ConvShape s = make_patch_shape(n, h, w, c_in, k_h, k_w, p);
  require(c_out % p.groups == 0, "groups: out_channels " + std::to_string(c_out) +
                                     " is not divisible by groups " + std::to_string(p.groups));
  s.c_out = c_out;
  detail::checked_product("output", n, s.h_out, s.w_out, c_out);
  detail::checked_product("weight", c_out, k_h, k_w, c_in / p.groups);
  return s;
}

ConvShape make_patch_shape(std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c_in,
                           std::int64_t k_h, std::int64_t k_w, const ConvParams& p) {
  require(n >= 0 && h >= 0 && w >= 0, "input: sizes must be >= 0");
  require(c_in >= 1, "input: channel count must be >= 1, got " + std::to_string(c_in));
  require(k_h >= 1 && k_w >= 1, "kernel_size must be >= 1, got (" + std::to_string(k_h) +
                                    ", " + std::to_string(k_w) + ")");
  require(p.stride_h >= 1 && p.stride_w >= 1, "stride must be >= 1, got (" +
                                                  std::to_string(p.stride_h) + ", " +
                                                  std::to_string(p.stride_w) + ")");
  require(p.dilation_h >= 1 && p.dilation_w >= 1,
          "dilation must be >= 1, got (" + std::to_string(p.dilation_h) + ", " +
              std::to_string(p.dilation_w) + ")");
  require(p.pad.top >= 0 && p.pad.bottom >= 0 && p.pad.left >= 0 && p.pad.right >= 0,
          "padding must be >= 0");
  require(p.groups >= 1, "groups must be >= 1, got " + std::to_string(p.groups));
  require(c_in % p.groups == 0, "groups: in_channels " + std::to_string(c_in) +
                                    " is not divisible by groups " + std::to_string(p.groups));

  validate_padding_mode(p.padding_mode, p.pad, h, w);

  ConvShape s;
  s.n = n;
  s.h = h;
  s.w = w;
  s.c_in = c_in;
  s.k_h = k_h;
  s.k_w = k_w;
  s.p = p;
  s.h_out = conv_output_size(h, k_h, p.stride_h, p.pad.top, p.pad.bottom, p.dilation_h);
  s.w_out = conv_output_size(w, k_w, p.stride_w, p.pad.left, p.pad.right, p.dilation_w);
  // A stride along an axis with one output, or a dilation along an axis with
  // one tap, never moves a patch. Bounded by the padded extent (which is
  // checked below), such a stride cannot overflow the kernels' index and
  // byte-step arithmetic (stride * channels * element size, say), and it
  // stays > 1 whenever it was, so no path takes the input for its patches.
  if (s.h_out == 1) s.p.stride_h = std::min(p.stride_h, h + p.pad.top + p.pad.bottom);
  if (s.w_out == 1) s.p.stride_w = std::min(p.stride_w, w + p.pad.left + p.pad.right);
  if (p.pad.top == 0 && p.pad.bottom == 0 && p.pad.left == 0 && p.pad.right == 0) {
    s.p.padding_mode = PaddingMode::Zeros;
  }
  if (k_h == 1) s.p.dilation_h = 1;
  if (k_w == 1) s.p.dilation_w = 1;
  // Every size the kernels index must fit in int64.
  detail::checked_product("input", n, h, w, c_in);
  detail::checked_product("im2col", n, s.h_out, s.w_out, k_h, k_w, c_in);
  detail::checked_product("padded input", n, h + p.pad.top + p.pad.bottom,
                          w + p.pad.left + p.pad.right, c_in);
  return s;
}

}  // namespace convx
