#include "conv/winograd.hpp"

#include <algorithm>
#include <cstring>

#include "conv/pad_map.hpp"
#include "gemm/blocking.hpp"

namespace convx::detail {

namespace {

// The workspace of one block (transformed inputs and GEMM results of its
// tiles) should fit in this share of a core's L2.
constexpr std::int64_t kBlockBytes = 768 << 10;
// Output channels per round of GEMMs and output transforms within a block.
constexpr std::int64_t kChunkChannels = 128;
// Every block streams all the transformed filters through the caches once.
// Filters larger than a block's L2 share make a block take more tiles, so
// that they are streamed fewer times, with up to this much workspace.
constexpr std::int64_t kLargeBlockBytes = 8 << 20;
// Below this many multiply-adds per thread a run stays on fewer threads.
constexpr double kWorkPerThread = 4.0e6;

// G, the 6 x 3 filter transform for the points 0, 1, -1, 2, -2 and infinity.
constexpr double kG[kWinoTile][kWinoR] = {
    {1.0 / 4, 0.0, 0.0},           {-1.0 / 6, -1.0 / 6, -1.0 / 6}, {-1.0 / 6, 1.0 / 6, -1.0 / 6},
    {1.0 / 24, 1.0 / 12, 1.0 / 6}, {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0.0, 0.0, 1.0}};

// How a run cuts its work; a function of the shape and kernel only, never of
// the thread count except for `parts`, which moves no arithmetic.
struct WinoPlan {
  std::int64_t tiles_h = 0, tiles_w = 0, tiles = 0;  // 4x4 output tiles
  std::int64_t tb = 0;      // tiles per block, a multiple of the kernel's mr
  std::int64_t blocks = 0;
  std::int64_t oc = 0;      // output channels per chunk, a multiple of nr
  std::int64_t chunks = 0;
  std::int64_t kc = 0;      // K block of the GEMMs
  std::int64_t parts = 1;   // tasks per block, each a range of chunks
  std::int64_t per_part = 0;
  std::int64_t scratch = 0; // values of one task's workspace

  std::int64_t tasks() const { return blocks * parts; }
};

template <typename T>
WinoPlan plan_winograd(const ConvShape& s, const GemmKernel<T>& kern, int threads) {
  WinoPlan p;
  p.tiles_h = ceil_div(s.h_out, kWinoM);
  p.tiles_w = ceil_div(s.w_out, kWinoM);
  p.tiles = s.n * p.tiles_h * p.tiles_w;
  p.oc = std::min(round_up(s.c_out, kern.nr), round_up(kChunkChannels, kern.nr));
  p.chunks = ceil_div(s.c_out, p.oc);
  const std::int64_t per_tile = kWinoPoints * (s.c_in + p.oc) * std::int64_t(sizeof(T));
  std::int64_t panels = std::max<std::int64_t>(1, kBlockBytes / per_tile / kern.mr);
  if (kWinoPoints * s.c_in * s.c_out * std::int64_t(sizeof(T)) > kBlockBytes) {
    // Tiles at which a block reads at most four times as many filter values
    // per tile as it keeps of its own (c_in + oc per point), within
    // kLargeBlockBytes.
    const std::int64_t even = ceil_div(s.c_in * s.c_out, 4 * (s.c_in + p.oc));
    const std::int64_t most = std::max<std::int64_t>(1, kLargeBlockBytes / per_tile / kern.mr);
    panels = std::max(panels, std::min(ceil_div(even, kern.mr), most));
  }
  p.tb = std::min(panels, ceil_div(p.tiles, kern.mr)) * kern.mr;
  p.blocks = ceil_div(p.tiles, p.tb);
  p.kc = std::min<std::int64_t>(s.c_in, kern.kc);
  // Few blocks for the threads: split each block's output channels too (every
  // part transforms the block's input itself).
  if (p.blocks < threads) p.parts = std::min(p.chunks, ceil_div(threads, p.blocks));
  p.per_part = ceil_div(p.chunks, p.parts);
  p.parts = ceil_div(p.chunks, p.per_part);
  p.scratch = kWinoPoints * p.tb * (s.c_in + p.oc) + s.c_in;
  return p;
}

// The input coordinate padded coordinate i reads along an axis of extent n, or
// -1 for a zero: the padding map inside the padded extent, zero beyond it
// (only outputs past the image's edge read there, and they are not stored).
std::int64_t tile_source(std::int64_t i, std::int64_t n, std::int64_t before, std::int64_t after,
                         PaddingMode mode) {
  if (i < -before || i >= n + after) return -1;
  return pad_source(i, n, mode);
}

template <typename T>
class WinoRunner {
 public:
  WinoRunner(const ConvJob<T>& job, const WinoPlan& plan, const T* x, const WinogradWeights<T>& u,
             const T* bias, T* y)
      : job_(job), s_(job.s), p_(plan), x_(x), u_(u), bias_(bias), y_(y) {}

  void task(std::int64_t t, WorkerScratch& scratch) const {
    const std::int64_t block = t / p_.parts, part = t % p_.parts;
    const std::int64_t t0 = block * p_.tb, rows = std::min(p_.tb, p_.tiles - t0);
    T* v = scratch.primary.template as<T>(static_cast<std::size_t>(p_.scratch));
    T* m = v + kWinoPoints * p_.tb * s_.c_in;
    T* zeros = m + kWinoPoints * p_.tb * p_.oc;
    std::fill(zeros, zeros + s_.c_in, T(0));
    transform_inputs(t0, rows, v, zeros);
    const std::int64_t c_end = std::min(p_.chunks, (part + 1) * p_.per_part);
    for (std::int64_t chunk = part * p_.per_part; chunk < c_end; ++chunk) {
      const std::int64_t j0 = chunk * p_.oc, cols = std::min(p_.oc, s_.c_out - j0);
      for (int e = 0; e < kWinoPoints; ++e) multiply(e, rows, j0, cols, v, m);
      for (std::int64_t i = 0; i < rows; ++i) transform_output(t0 + i, i, j0, cols, m);
    }
  }

 private:
  // V for tiles [t0, t0 + rows) of the block; rows past them up to a whole
  // micro-panel are zeros, as the micro-kernel's contract asks.
  void transform_inputs(std::int64_t t0, std::int64_t rows, T* v, const T* zeros) const {
    const std::int64_t ld_e = p_.tb * s_.c_in;
    const T* src[kWinoPoints];
    for (std::int64_t i = 0; i < rows; ++i) {
      std::int64_t b, ih0, iw0;
      tile_origin(t0 + i, &b, &ih0, &iw0);
      ih0 -= s_.p.pad.top;
      iw0 -= s_.p.pad.left;
      std::int64_t cols[kWinoTile];
      for (int q = 0; q < kWinoTile; ++q) {
        cols[q] = tile_source(iw0 + q, s_.w, s_.p.pad.left, s_.p.pad.right, s_.p.padding_mode);
      }
      for (int a = 0; a < kWinoTile; ++a) {
        const std::int64_t r =
            tile_source(ih0 + a, s_.h, s_.p.pad.top, s_.p.pad.bottom, s_.p.padding_mode);
        const T* row = r < 0 ? nullptr : x_ + (b * s_.h + r) * s_.w * s_.c_in;
        for (int q = 0; q < kWinoTile; ++q) {
          src[a * kWinoTile + q] = row == nullptr || cols[q] < 0 ? zeros : row + cols[q] * s_.c_in;
        }
      }
      job_.kernels.wino.input(src, s_.c_in, v + i * s_.c_in, ld_e);
    }
    const std::int64_t padded = round_up(rows, job_.kernels.gemm.mr);
    for (int e = 0; e < kWinoPoints && padded > rows; ++e) {
      T* tail = v + e * ld_e + rows * s_.c_in;
      std::fill(tail, tail + (padded - rows) * s_.c_in, T(0));
    }
  }

  // M_e[:, 0:cols] = V_e U_e[:, j0:j0+cols], K summed in blocks of kc.
  void multiply(int e, std::int64_t rows, std::int64_t j0, std::int64_t cols, const T* v,
                T* m) const {
    const GemmKernel<T>& kern = job_.kernels.gemm;
    const T* ve = v + e * p_.tb * s_.c_in;
    T* me = m + e * p_.tb * p_.oc;
    const T* ue = u_.data + e * u_.e_stride + (j0 / kern.nr) * u_.panel_stride;
    for (std::int64_t q = 0; q * kern.nr < cols; ++q) {
      const std::int64_t n = std::min<std::int64_t>(kern.nr, cols - q * kern.nr);
      for (std::int64_t k0 = 0; k0 < s_.c_in; k0 += p_.kc) {
        const std::int64_t kc = std::min(p_.kc, s_.c_in - k0);
        const T* b = ue + q * u_.panel_stride + k0 * kern.nr;
        for (std::int64_t r0 = 0; r0 < rows; r0 += kern.mr) {
          kern.fn(kc, ve + r0 * s_.c_in + k0, s_.c_in, kc, 0, b, me + r0 * p_.oc + q * kern.nr,
                  p_.oc, 1, std::min<std::int64_t>(kern.mr, rows - r0), n, k0 > 0, nullptr);
        }
      }
    }
  }

  void transform_output(std::int64_t tile, std::int64_t i, std::int64_t j0, std::int64_t cols,
                        const T* m) const {
    std::int64_t b, oh0, ow0;
    tile_origin(tile, &b, &oh0, &ow0);
    const int rows = static_cast<int>(std::min<std::int64_t>(kWinoM, s_.h_out - oh0));
    const int width = static_cast<int>(std::min<std::int64_t>(kWinoM, s_.w_out - ow0));
    T* out = y_ + ((b * s_.h_out + oh0) * s_.w_out + ow0) * s_.c_out + j0;
    job_.kernels.wino.output(m + i * p_.oc, p_.tb * p_.oc, cols,
                             bias_ != nullptr ? bias_ + j0 : nullptr, job_.relu(), out,
                             s_.w_out * s_.c_out, s_.c_out, rows, width);
  }

  void tile_origin(std::int64_t tile, std::int64_t* b, std::int64_t* oh0, std::int64_t* ow0) const {
    const std::int64_t per_image = p_.tiles_h * p_.tiles_w;
    *b = tile / per_image;
    const std::int64_t r = tile % per_image;
    *oh0 = r / p_.tiles_w * kWinoM;
    *ow0 = r % p_.tiles_w * kWinoM;
  }

  const ConvJob<T>& job_;
  const ConvShape& s_;
  const WinoPlan& p_;
  const T* x_;
  const WinogradWeights<T>& u_;
  const T* bias_;
  T* y_;
};

}  // namespace

template <typename T>
bool all_finite(const T* p, std::int64_t count) {
  // x * 0 is 0 for a finite x and NaN otherwise; lanes of partial sums let the
  // loop vectorise.
  constexpr int kLanes = 16;
  T acc[kLanes] = {};
  std::int64_t i = 0;
  for (; i + kLanes <= count; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) acc[l] += p[i + l] * T(0);
  }
  for (; i < count; ++i) acc[0] += p[i] * T(0);
  T total = T(0);
  for (int l = 0; l < kLanes; ++l) total += acc[l];
  return total == T(0);
}

const char* winograd_unsuitable(const ConvShape& s) {
  if (s.p.layout != Layout::NHWC) return "winograd needs layout NHWC";
  if (s.groups() != 1) return "winograd needs groups == 1";
  if (s.k_h != 3 || s.k_w != 3) return "winograd needs a 3x3 filter";
  if (s.p.stride_h != 1 || s.p.stride_w != 1) return "winograd needs stride 1";
  if (s.p.dilation_h != 1 || s.p.dilation_w != 1) return "winograd needs dilation 1";
  return nullptr;
}

bool prefers_winograd(const ConvShape& s) {
  const std::int64_t tiles = s.n * ceil_div(s.h_out, kWinoM) * ceil_div(s.w_out, kWinoM);
  return winograd_unsuitable(s) == nullptr && s.c_in >= kWinogradMinChannels &&
         s.c_out >= kWinogradMinChannels && tiles >= kWinogradMinTiles;
}

template <typename T>
WinogradWeights<T> winograd_weights_layout(std::int64_t c_in, std::int64_t c_out, int nr) {
  WinogradWeights<T> u;
  u.c_in = c_in;
  u.c_out = c_out;
  u.nr = nr;
  const std::int64_t align = 64 / std::int64_t(sizeof(T));
  u.panel_stride = round_up(c_in * nr, align);
  u.e_stride = ceil_div(c_out, nr) * u.panel_stride;
  return u;
}

template <typename T>
void transform_winograd_filters(const T* w, const WinogradWeights<T>& u, T* dst) {
  std::fill(dst, dst + u.values(), T(0));
  for (std::int64_t o = 0; o < u.c_out; ++o) {
    T* panel = dst + (o / u.nr) * u.panel_stride + o % u.nr;
    for (std::int64_t c = 0; c < u.c_in; ++c) {
      double gg[kWinoTile][kWinoR] = {};  // G g
      for (int i = 0; i < kWinoTile; ++i) {
        for (int v = 0; v < kWinoR; ++v) {
          for (int k = 0; k < kWinoR; ++k) {
            gg[i][v] += kG[i][k] * double(w[((o * kWinoR + k) * kWinoR + v) * u.c_in + c]);
          }
        }
      }
      for (int i = 0; i < kWinoTile; ++i) {
        for (int j = 0; j < kWinoTile; ++j) {
          const double value = gg[i][0] * kG[j][0] + gg[i][1] * kG[j][1] + gg[i][2] * kG[j][2];
          panel[(i * kWinoTile + j) * u.e_stride + c * u.nr] = static_cast<T>(value);
        }
      }
    }
  }
}

template <typename T>
std::unique_ptr<OwnedWinogradWeights<T>> make_winograd_weights(const T* w, std::int64_t c_in,
                                                                std::int64_t c_out, int nr) {
  auto owned = std::make_unique<OwnedWinogradWeights<T>>();
  owned->weights = winograd_weights_layout<T>(c_in, c_out, nr);
  T* data = owned->storage.template as<T>(static_cast<std::size_t>(owned->weights.values()));
  transform_winograd_filters(w, owned->weights, data);
  owned->weights.data = data;
  owned->weights.finite = all_finite(w, c_out * kWinoR * kWinoR * c_in);
  return owned;
}

template <typename T>
void run_winograd(const ConvJob<T>& job, const T* x, const T* w, const WinogradWeights<T>* ready,
                  const T* bias, T* y) {
  const ConvShape& s = job.s;
  WinogradWeights<T> u;
  if (ready != nullptr) {
    u = *ready;
  } else {
    u = winograd_weights_layout<T>(s.c_in, s.c_out, job.kernels.gemm.nr);
    T* data = job.exec.shared().template as<T>(static_cast<std::size_t>(u.values()));
    transform_winograd_filters(w, u, data);
    u.data = data;
  }
  const int threads = job.threads_for(double(s.output_size()) * double(s.patch_size()),
                                      kWorkPerThread);
  const WinoPlan plan = plan_winograd<T>(s, job.kernels.gemm, threads);
  const WinoRunner<T> runner(job, plan, x, u, bias, y);
  job.exec.run(plan.tasks(), threads,
               [&](std::int64_t t, WorkerScratch& scratch) { runner.task(t, scratch); });
}

template <typename T>
std::int64_t winograd_workspace_bytes(const ConvShape& s, const KernelSet<T>& kernels,
                                      int threads, bool filters_ready) {
  const WinoPlan plan = plan_winograd<T>(s, kernels.gemm, threads);
  std::int64_t values = std::min<std::int64_t>(threads, plan.tasks()) * plan.scratch;
  if (!filters_ready) {
    values += winograd_weights_layout<T>(s.c_in, s.c_out, kernels.gemm.nr).values();
  }
  return values * std::int64_t(sizeof(T));
}

#define CONVX_INSTANTIATE(T)                                                                     \
  template bool all_finite<T>(const T*, std::int64_t);                                           \
  template WinogradWeights<T> winograd_weights_layout<T>(std::int64_t, std::int64_t, int);      \
  template void transform_winograd_filters<T>(const T*, const WinogradWeights<T>&, T*);         \
  template std::unique_ptr<OwnedWinogradWeights<T>> make_winograd_weights<T>(                   \
      const T*, std::int64_t, std::int64_t, int);                                               \
  template void run_winograd<T>(const ConvJob<T>&, const T*, const T*,                          \
                                const WinogradWeights<T>*, const T*, T*);                       \
  template std::int64_t winograd_workspace_bytes<T>(const ConvShape&, const KernelSet<T>&, int, \
                                                    bool);
CONVX_INSTANTIATE(float)
CONVX_INSTANTIATE(double)
#undef CONVX_INSTANTIATE

}  // namespace convx::detail
