// Concurrent callers: several std::threads run conv2d (with raw and with
// prepared weights) and gemm on the same inputs while another thread keeps
// resizing the pool with set_num_threads. Every result must equal, bit for bit,
// the one computed beforehand on one thread: the pool is leased to one caller
// at a time, the others run alone with private scratch, and no result depends
// on the thread count. Built under ThreadSanitizer in CI, where these cases
// also check that no two threads touch shared state without ordering.
//
// The worker threads only count mismatches; CHECK and CONTEXT are used on the
// test's own thread, because the harness's failure state is not thread-safe.
#include <atomic>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "check.hpp"
#include "reference.hpp"

namespace {

using std::int64_t;
using convx::Layout;

constexpr int kCallers = 4;
constexpr int kRounds = 8;

// Restores the thread count the test started with, whatever happens.
class ThreadCountGuard {
 public:
  ThreadCountGuard() : saved_(convx::num_threads()) {}
  ~ThreadCountGuard() { convx::set_num_threads(saved_); }
  ThreadCountGuard(const ThreadCountGuard&) = delete;
  ThreadCountGuard& operator=(const ThreadCountGuard&) = delete;

 private:
  int saved_;
};

// Cycles the pool size through 1..3 until `stop` is set, so callers lease a
// pool that is rebuilt between (never during) their jobs.
class PoolResizer {
 public:
  PoolResizer()
      : thread_([this] {
          for (int i = 0; !stop_.load(std::memory_order_acquire); ++i) {
            convx::set_num_threads(1 + i % 3);
            std::this_thread::yield();
          }
        }) {}
  ~PoolResizer() {
    stop_.store(true, std::memory_order_release);
    thread_.join();
  }
  PoolResizer(const PoolResizer&) = delete;
  PoolResizer& operator=(const PoolResizer&) = delete;

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Runs body(caller) on kCallers threads at once (with the pool being resized
// meanwhile) and returns the sum of what they return.
template <typename Body>
int64_t run_concurrently(const Body& body) {
  std::vector<int64_t> result(kCallers, 0);
  std::atomic<int> ready{0};
  {
    PoolResizer resizer;
    std::vector<std::thread> callers;
    for (int t = 0; t < kCallers; ++t) {
      callers.emplace_back([&, t] {
        // Start together, so the calls really overlap.
        ready.fetch_add(1);
        while (ready.load() < kCallers) std::this_thread::yield();
        result[static_cast<std::size_t>(t)] = body(t);
      });
    }
    for (std::thread& c : callers) c.join();
  }
  int64_t total = 0;
  for (int64_t r : result) total += r;
  return total;
}

template <typename T>
bool bitwise_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

convx::ConvShape shape(Layout layout, int64_t n, int64_t h, int64_t w, int64_t c_in,
                       int64_t c_out, int64_t k, int64_t stride, int64_t pad, int64_t groups) {
  convx::ConvParams p;
  p.layout = layout;
  p.stride_h = p.stride_w = stride;
  p.pad = {pad, pad, pad, pad};
  p.groups = groups;
  return convx::make_conv_shape(n, h, w, c_in, c_out, k, k, p);
}

// One layer of each kind the library dispatches differently: blocked GEMM in
// both layouts, grouped, depthwise, the direct kernel's one-channel 3x3 case,
// and a 1x1.
std::vector<convx::ConvShape> layers() {
  return {
      shape(Layout::NHWC, 1, 14, 14, 16, 24, 3, 1, 1, 1),
      shape(Layout::NCHW, 2, 11, 9, 8, 12, 3, 2, 1, 2),
      shape(Layout::NHWC, 1, 12, 12, 16, 16, 3, 1, 1, 16),
      shape(Layout::NCHW, 1, 10, 10, 8, 8, 3, 1, 1, 8),
      shape(Layout::NHWC, 1, 16, 16, 1, 8, 3, 1, 1, 1),
      shape(Layout::NHWC, 2, 7, 7, 24, 20, 1, 1, 0, 1),
  };
}

struct Layer {
  convx::ConvShape s;
  std::vector<float> x, w, bias, want;
  std::unique_ptr<convx::ConvWeights<float>> prepared;
};

// Inputs for every layer and the result of a one-thread run of each.
std::vector<Layer> prepare_layers() {
  std::vector<Layer> out;
  std::uint32_t seed = 100;
  for (const convx::ConvShape& s : layers()) {
    Layer l;
    l.s = s;
    l.x = ref::uniform<float>(s.input_size(), seed++);
    l.w = ref::uniform<float>(s.weight_size(), seed++);
    l.bias = ref::uniform<float>(s.c_out, seed++);
    l.want.assign(static_cast<std::size_t>(s.output_size()), 0.0f);
    l.prepared = std::make_unique<convx::ConvWeights<float>>(
        l.w.data(), s.c_out, s.k_h, s.k_w, s.c_in_per_group(), s.groups(), s.p.layout);
    out.push_back(std::move(l));
  }
  convx::set_num_threads(1);
  for (Layer& l : out) {
    convx::conv2d<float>(l.s, l.x.data(), l.w.data(), l.bias.data(), l.want.data(),
                         convx::Activation::ReLU);
  }
  return out;
}

// Every caller runs every layer kRounds times through `conv(layer, y)` and
// counts the outputs that differ from the one-thread run. Callers start at
// different layers, so different kinds of job overlap.
template <typename Conv>
int64_t concurrent_mismatches(const std::vector<Layer>& net, const Conv& conv) {
  return run_concurrently([&](int caller) {
    int64_t bad = 0;
    for (int round = 0; round < kRounds; ++round) {
      for (std::size_t i = 0; i < net.size(); ++i) {
        const Layer& l = net[(i + static_cast<std::size_t>(caller)) % net.size()];
        std::vector<float> y(l.want.size());
        conv(l, y.data());
        if (!bitwise_equal(y, l.want)) ++bad;
      }
    }
    return bad;
  });
}

TEST_CASE_ISA("threads: concurrent conv2d calls equal a one-thread run bit for bit") {
  const ThreadCountGuard guard;
  const std::vector<Layer> net = prepare_layers();
  CHECK_EQ(concurrent_mismatches(net, [](const Layer& l, float* y) {
             convx::conv2d<float>(l.s, l.x.data(), l.w.data(), l.bias.data(), y,
                                  convx::Activation::ReLU);
           }),
           int64_t{0});
}

TEST_CASE_ISA("threads: concurrent calls sharing one ConvWeights equal a one-thread run") {
  const ThreadCountGuard guard;
  const std::vector<Layer> net = prepare_layers();
  CHECK_EQ(concurrent_mismatches(net, [](const Layer& l, float* y) {
             convx::conv2d<float>(l.s, l.x.data(), *l.prepared, l.bias.data(), y,
                                  convx::Activation::ReLU);
           }),
           int64_t{0});
}

TEST_CASE_ISA("threads: concurrent gemm calls equal a one-thread run bit for bit") {
  const ThreadCountGuard guard;
  // Large enough for the driver to split M and N across the pool.
  const int64_t m = 150, n = 70, k = 90;
  const std::vector<double> a = ref::uniform<double>(m * k, 7);
  const std::vector<double> b = ref::uniform<double>(k * n, 8);
  const std::vector<double> bias = ref::uniform<double>(n, 9);
  convx::Epilogue<double> ep;
  ep.bias = bias.data();
  ep.bias_mode = convx::BiasMode::PerColumn;
  // A row-major, B column-major: C = A * B with C row-major.
  auto multiply = [&](std::vector<double>& c) {
    convx::gemm<double>(m, n, k, a.data(), k, 1, b.data(), 1, k, c.data(), n, 1, false, ep);
  };
  std::vector<double> want(static_cast<std::size_t>(m * n));
  convx::set_num_threads(1);
  multiply(want);
  const int64_t mismatches = run_concurrently([&](int) {
    int64_t bad = 0;
    for (int round = 0; round < kRounds; ++round) {
      std::vector<double> c(want.size());
      multiply(c);
      if (!bitwise_equal(c, want)) ++bad;
    }
    return bad;
  });
  CHECK_EQ(mismatches, int64_t{0});
}

}  // namespace
