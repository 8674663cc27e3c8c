// The Depthwise algorithm (groups == C_in == C_out): a direct kernel instead
// of one tiny GEMM per channel. NHWC vectorises across channels (an ISA
// kernel); NCHW filters each channel's plane row by row (portable code).
#pragma once

#include <cstdint>

#include "conv/job.hpp"

namespace convx::detail {

bool is_depthwise(const ConvShape& s);

// OHWI depthwise weights (C, k_h, k_w, 1) rearranged to (k_h, k_w, C), the
// NHWC kernel's layout: wt[t*channels + c] = w[c*taps + t].
template <typename T>
void depthwise_taps_hwc(const T* w, std::int64_t channels, std::int64_t taps, T* wt);

// Scratch bytes run_depthwise uses on `threads` threads: the rearranged taps
// unless they are ready, or NCHW's staged rows.
template <typename T>
std::int64_t depthwise_workspace_bytes(const ConvShape& s, bool taps_ready, int threads);

// Same contract as Conv2d::run, for shapes where is_depthwise() holds.
// `taps_hwc`, if not null, holds `w` rearranged by depthwise_taps_hwc (NHWC).
template <typename T>
void run_depthwise(const ConvJob<T>& job, const T* x, const T* w, const T* taps_hwc,
                   const T* bias, T* y);

}  // namespace convx::detail
