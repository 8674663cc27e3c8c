// The Winograd algorithm: F(4x4, 3x3) for NHWC, one group, 3x3 filters with
// stride 1 and dilation 1 (docs/winograd.md has the maths and the error study).
//
// The filters are transformed once, U = G g G^T for every (input, output)
// channel pair, and packed as GEMM B micro-panels, one (C_in x C_out) matrix
// per transformed element e < 36. A run cuts the output into 4x4 tiles and
// processes them in blocks: each 6x6 input tile is gathered through the
// padding map and transformed (V = B^T d B) into the block's workspace, then
// per element e a GEMM M_e = V_e U_e on the bound micro-kernel, then the
// output transform Y = A^T M A with the bias and ReLU writes y directly. The
// transformed input never exists beyond one block per thread.
#pragma once

#include <cstdint>
#include <memory>

#include "common/aligned_buffer.hpp"
#include "conv/job.hpp"

namespace convx::detail {

// Fast picks Winograd only for layers with at least this many input and
// output channels (docs/winograd.md: below it the GEMMs are too thin to gain).
constexpr std::int64_t kWinogradMinChannels = 32;
// ... and at least this many 4x4 output tiles over the batch: with fewer, the 36
// transformed filter matrices (4x the filters) are read for too little work and
// the GEMM is faster (resnet50's 7x7x512 layer has 4 tiles).
constexpr std::int64_t kWinogradMinTiles = 8;

// Why Winograd cannot compute s, or nullptr when it can.
const char* winograd_unsuitable(const ConvShape& s);
// The rule for Fast (docs/winograd.md): Winograd can compute s, s has at least
// kWinogradMinChannels input and output channels and kWinogradMinTiles tiles.
bool prefers_winograd(const ConvShape& s);

// Whether every one of the `count` values is finite. Winograd's transforms
// would spread an infinity or NaN over whole tiles (inf - inf), so a run whose
// input or filters hold one is computed by the GEMM, which keeps the formula's
// pattern of infinities and NaN.
template <typename T>
bool all_finite(const T* p, std::int64_t count);

// Transformed filters packed for a GEMM kernel of panel width nr: element e,
// output channels [q*nr, q*nr + nr), input channel c and column j at
// data[e*e_stride + q*panel_stride + c*nr + j]; columns past c_out are zero.
template <typename T>
struct WinogradWeights {
  std::int64_t c_in = 0, c_out = 0, panel_stride = 0, e_stride = 0;
  int nr = 0;
  bool finite = true;  // the filters they were made from are all finite
  const T* data = nullptr;
  std::int64_t values() const { return kWinoPoints * e_stride; }
};

// The layout of WinogradWeights for these channels and panel width, with
// data still null.
template <typename T>
WinogradWeights<T> winograd_weights_layout(std::int64_t c_in, std::int64_t c_out, int nr);

// Transforms OHWI 3x3 filters w (c_out, 3, 3, c_in) into dst, laid out as
// `layout` says (dst holds layout.values() values, 64-byte aligned). The
// transform is computed in double and rounded once.
template <typename T>
void transform_winograd_filters(const T* w, const WinogradWeights<T>& layout, T* dst);

// Filters transformed once and owned (a ConvWeights holds one).
template <typename T>
struct OwnedWinogradWeights {
  WinogradWeights<T> weights;
  AlignedBuffer storage;
};

template <typename T>
std::unique_ptr<OwnedWinogradWeights<T>> make_winograd_weights(const T* w, std::int64_t c_in,
                                                                std::int64_t c_out, int nr);

// Same contract as Conv2d::run. `ready`, if not null, holds `w` transformed
// for job.kernels.gemm; otherwise the filters are transformed into the job's
// shared scratch first.
template <typename T>
void run_winograd(const ConvJob<T>& job, const T* x, const T* w, const WinogradWeights<T>* ready,
                  const T* bias, T* y);

// Scratch bytes run_winograd uses on `threads` threads, with the filters
// transformed ahead of time or not.
template <typename T>
std::int64_t winograd_workspace_bytes(const ConvShape& s, const KernelSet<T>& kernels,
                                      int threads, bool filters_ready);

}  // namespace convx::detail
