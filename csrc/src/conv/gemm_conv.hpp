// The Gemm and Pointwise algorithms: a convolution as one GEMM per group (per
// image and group for NCHW) over implicit im2col patches, or over the input
// itself for a pointwise layer.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "conv/job.hpp"
#include "gemm/driver.hpp"

namespace convx::detail {

// True for a 1x1, stride-1, unpadded layer: every patch is one pixel's channels.
bool is_pointwise(const ConvShape& s);

// NHWC filters of each group, transposed (K x C_out/groups) and packed for the
// GEMM kernel with the K blocking the convolution uses.
template <typename T>
std::vector<std::unique_ptr<PrepackedB<T>>> pack_gemm_filters(const GemmKernel<T>& kern,
                                                              const T* w, std::int64_t c_out,
                                                              std::int64_t k_h, std::int64_t k_w,
                                                              std::int64_t c_in_per_group,
                                                              std::int64_t groups);

// Same contract as Conv2d::run. `packed`, if not null, holds `w` packed by
// pack_gemm_filters() (NHWC only).
template <typename T>
void run_gemm_conv(const ConvJob<T>& job, bool pointwise, const T* x, const T* w,
                   const std::vector<std::unique_ptr<PrepackedB<T>>>* packed, const T* bias,
                   T* y);

// Scratch bytes run_gemm_conv uses on `threads` threads, with the filters
// packed ahead of time (pack_gemm_filters) or not.
template <typename T>
std::int64_t gemm_conv_workspace_bytes(const ConvShape& s, const GemmKernel<T>& kern, int threads,
                                       bool filters_packed);

}  // namespace convx::detail
