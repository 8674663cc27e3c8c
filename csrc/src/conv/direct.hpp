// The Direct algorithm (NHWC, groups == 1, short patches): the image is read
// in place and no GEMM operands are packed.
#pragma once

#include <cstdint>
#include <vector>

#include "conv/job.hpp"
#include "kernels/direct.hpp"

namespace convx::detail {

// True when the patches are short enough for the direct kernel (NHWC, one
// group, at most kMaxDirectPatch values). Beyond that the packed GEMM wins:
// its register tile reuses each loaded value many more times.
bool suits_direct(const ConvShape& s);

// Scratch bytes run_direct uses for this shape on `threads` threads, with the
// weights prepared (DirectWeights) or not.
template <typename T>
std::int64_t direct_workspace_bytes(const ConvShape& s, const DirectKernel<T>& kernel,
                                    int threads, bool weights_ready);

// OHWI weights (c_out x K, K <= kMaxDirectPatch) in the direct kernel's
// layout: transposed to (K x ld), ld being c_out rounded up to the kernel's
// vector width, the padding columns zero. An operator that owns its weights
// keeps this form, so that a run skips the transposition.
template <typename T>
struct DirectWeights {
  std::vector<T> wt;
  std::int64_t ld = 0;
};

template <typename T>
DirectWeights<T> prepare_direct_weights(const DirectKernel<T>& kernel, const T* w,
                                        std::int64_t c_out, std::int64_t K);

// Same contract as Conv2d::run, for shapes where suits_direct() holds.
// `ready`, if not null, holds the weights `w` already prepared for the
// job's kernel.
template <typename T>
void run_direct(const ConvJob<T>& job, const T* x, const T* w, const DirectWeights<T>* ready,
                const T* bias, T* y);

}  // namespace convx::detail
