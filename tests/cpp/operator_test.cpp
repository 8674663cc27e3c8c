// The forward operator (convx::Conv2d) and the context it runs on: the
// algorithm and kernel it chooses, its three ways of being made, its errors,
// runs from several threads at once, and contexts of their own.
#include <atomic>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "check.hpp"
#include "reference.hpp"

namespace {

using convx::Algorithm;
using convx::ConvShape;
using convx::Layout;
using std::int64_t;

ConvShape shape_of(int64_t n, int64_t h, int64_t w, int64_t c_in, int64_t c_out, int64_t k,
                   int64_t pad, int64_t stride, int64_t groups, Layout layout) {
  convx::ConvParams p;
  p.pad = {pad, pad, pad, pad};
  p.stride_h = p.stride_w = stride;
  p.groups = groups;
  p.layout = layout;
  return convx::make_conv_shape(n, h, w, c_in, c_out, k, k, p);
}

struct Problem {
  ConvShape shape;
  Algorithm algorithm;
};

std::vector<Problem> one_of_each(Layout layout) {
  const bool nhwc = layout == Layout::NHWC;
  return {
      {shape_of(2, 9, 8, 16, 24, 3, 1, 1, 1, layout), Algorithm::Gemm},
      {shape_of(2, 6, 5, 32, 8, 1, 0, 1, 1, layout), Algorithm::Pointwise},
      {shape_of(2, 10, 9, 1, 16, 3, 1, 1, 1, layout), nhwc ? Algorithm::Direct : Algorithm::Gemm},
      {shape_of(2, 8, 9, 16, 16, 3, 1, 2, 16, layout), Algorithm::Depthwise},
  };
}

template <typename T>
std::vector<T> run_op(const convx::Conv2d<T>& op, const std::vector<T>& x,
                      const std::vector<T>& bias) {
  std::vector<T> y(static_cast<std::size_t>(op.shape().output_size()),
                   std::numeric_limits<T>::quiet_NaN());
  op.run(x.data(), bias.data(), y.data());
  return y;
}

template <typename T>
void algorithm_and_results(convx::Isa isa) {
  for (Layout layout : {Layout::NHWC, Layout::NCHW}) {
    for (const Problem& p : one_of_each(layout)) {
      const ConvShape& s = p.shape;
      CONTEXT(ref::describe(s), " dtype=", sizeof(T) == 4 ? "f32" : "f64");
      const std::vector<T> x = ref::small_ints<T>(s.input_size(), 1);
      const std::vector<T> w = ref::small_ints<T>(s.weight_size(), 2);
      const std::vector<T> b = ref::small_ints<T>(s.c_out, 3);
      CHECK(convx::choose_algorithm(s) == p.algorithm);
      const auto owning = convx::Conv2d<T>::create(s, w.data());
      const auto any = convx::Conv2d<T>::create_for_any_weights(s);
      CHECK(owning->algorithm() == p.algorithm && any->algorithm() == p.algorithm);
      const std::string kernel = owning->kernel();
      CHECK(kernel.rfind(sizeof(T) == 4 ? "f32 " : "f64 ", 0) == 0);
      const bool portable = p.algorithm == Algorithm::Depthwise && layout == Layout::NCHW;
      if (!portable) CHECK(kernel.size() > 4 && kernel.find(convx::isa_name(isa)) != std::string::npos);
      CHECK(owning->has_weights() && !any->has_weights());
      CHECK(owning->workspace_bytes() >= 0);
      CHECK_EQ(owning->flops(), 2.0 * double(s.output_size()) * double(s.patch_size()));
      const std::vector<double> want = ref::conv2d_direct<T>(s, x.data(), w.data(), b.data(), false);
      const std::vector<T> got = run_op(*owning, x, b);
      CHECK(ref::first_mismatch(got.data(), want, 0.0, 0.0) < 0);
      std::vector<T> got_any(got.size(), std::numeric_limits<T>::quiet_NaN());
      any->run(x.data(), w.data(), b.data(), got_any.data());
      CHECK(std::memcmp(got.data(), got_any.data(), got.size() * sizeof(T)) == 0);
    }
  }
}

}  // namespace

TEST_CASE_ISA("operator: each algorithm is chosen, named and computes the formula") {
  algorithm_and_results<float>(isa);
  algorithm_and_results<double>(isa);
}

TEST_CASE("operator: misuse is reported, not run") {
  const ConvShape s = shape_of(1, 6, 6, 4, 8, 3, 1, 1, 1, Layout::NHWC);
  std::vector<float> buf(4096, 1.0f);
  const auto any = convx::Conv2d<float>::create_for_any_weights(s);
  CHECK_THROWS_WITH(any->run(buf.data(), nullptr, buf.data()), std::logic_error, "no weights");
  CHECK_THROWS_WITH(convx::Conv2d<float>::create(s, static_cast<const float*>(nullptr)),
                    std::invalid_argument, "weight");
  const auto grouped = std::make_shared<const convx::ConvWeights<float>>(
      buf.data(), 8, 3, 3, 2, 2, Layout::NHWC);
  CHECK_THROWS_WITH(convx::Conv2d<float>::create(s, grouped), std::invalid_argument,
                    "do not match");
  ConvShape forged = s;
  forged.w_out = 5;
  CHECK_THROWS_WITH(convx::Conv2d<float>::create_for_any_weights(forged), std::invalid_argument,
                    "make_conv_shape");
  const auto op = convx::Conv2d<float>::create(s, buf.data());
  CHECK_THROWS_WITH(op->run(nullptr, nullptr, buf.data()), std::invalid_argument, "null");
}

TEST_CASE_ISA("threads: one operator run from 4 threads at once equals a one-thread run") {
  // Each caller convolves its own image with the shared operator, many times;
  // whoever gets the pool and whoever runs alone must all get the same bits.
  const ConvShape s = shape_of(2, 20, 18, 24, 32, 3, 1, 1, 1, Layout::NHWC);
  const std::vector<float> w = ref::uniform<float>(s.weight_size(), 7);
  const std::vector<float> b = ref::uniform<float>(s.c_out, 8);
  const auto op = convx::Conv2d<float>::create(s, w.data(), convx::Activation::ReLU);
  constexpr int kCallers = 4, kRuns = 12;
  std::vector<std::vector<float>> inputs, want;
  convx::set_num_threads(1);
  for (int t = 0; t < kCallers; ++t) {
    inputs.push_back(ref::uniform<float>(s.input_size(), 100 + t));
    want.push_back(run_op(*op, inputs.back(), b));
  }
  convx::set_num_threads(2);
  std::atomic<int> mismatches{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < kCallers; ++t) {
    callers.emplace_back([&, t] {
      for (int r = 0; r < kRuns; ++r) {
        const std::vector<float> got = run_op(*op, inputs[t], b);
        if (std::memcmp(got.data(), want[t].data(), got.size() * sizeof(float)) != 0) {
          mismatches.fetch_add(1);
        }
      }
    });
  }
  for (auto& c : callers) c.join();
  CHECK_EQ(mismatches.load(), 0);
}

TEST_CASE("runtime: a context of its own has its own settings and kernels") {
  convx::Context& global = convx::Context::default_context();
  const convx::Isa global_isa = global.isa();
  const int global_threads = global.num_threads();
  convx::Context ctx(3);
  CHECK_EQ(ctx.num_threads(), 3);
  CHECK(ctx.isa() == convx::cpu_info().best);
  const ConvShape s = shape_of(1, 12, 12, 16, 16, 3, 1, 1, 1, Layout::NHWC);
  const std::vector<double> x = ref::small_ints<double>(s.input_size(), 1);
  const std::vector<double> w = ref::small_ints<double>(s.weight_size(), 2);
  const std::vector<double> b = ref::small_ints<double>(s.c_out, 3);
  const std::vector<double> want = ref::conv2d_direct<double>(s, x.data(), w.data(), b.data(), false);
  const auto before = convx::Conv2d<double>::create(s, w.data(), convx::Activation::None, ctx);
  ctx.set_isa(convx::Isa::Scalar);
  ctx.set_num_threads(2);
  const auto after = convx::Conv2d<double>::create(s, w.data(), convx::Activation::None, ctx);
  CHECK(std::string(after->kernel()).find("scalar") != std::string::npos);
  CHECK_EQ(std::string(before->kernel()) == after->kernel(), ctx.isa() == convx::cpu_info().best);
  for (const auto* op : {before.get(), after.get()}) {
    const std::vector<double> got = run_op(*op, x, b);
    CHECK(ref::first_mismatch(got.data(), want, 0.0, 0.0) < 0);
  }
  CHECK(global.isa() == global_isa);  // the default context is untouched
  CHECK_EQ(global.num_threads(), global_threads);
  CHECK_THROWS_WITH(ctx.set_num_threads(0), std::invalid_argument, "n must be");
  CHECK_THROWS_WITH(convx::Context(2000), std::invalid_argument, "n must be");
}

TEST_CASE("runtime: operators outlive the context they were made on") {
  const ConvShape s = shape_of(2, 16, 16, 16, 24, 3, 1, 1, 1, Layout::NHWC);
  const std::vector<float> x = ref::small_ints<float>(s.input_size(), 1);
  const std::vector<float> w = ref::small_ints<float>(s.weight_size(), 2);
  const std::vector<float> b = ref::small_ints<float>(s.c_out, 3);
  const std::vector<double> want = ref::conv2d_direct<float>(s, x.data(), w.data(), b.data(), false);
  std::unique_ptr<convx::Conv2d<float>> op;
  std::shared_ptr<const convx::ConvWeights<float>> shared;
  {
    convx::Context ctx(2);
    op = convx::Conv2d<float>::create(s, w.data(), convx::Activation::None, ctx);
    shared = std::make_shared<const convx::ConvWeights<float>>(w.data(), 24, 3, 3, 16, 1,
                                                               Layout::NHWC, ctx);
    const std::vector<float> first = run_op(*op, x, b);  // starts the context's threads
    CHECK(ref::first_mismatch(first.data(), want, 0.0, 0.0) < 0);
  }
  const auto from_shared = convx::Conv2d<float>::create(s, shared);
  for (const auto* o : {op.get(), from_shared.get()}) {
    const std::vector<float> got = run_op(*o, x, b);
    CHECK(ref::first_mismatch(got.data(), want, 0.0, 0.0) < 0);
  }
}
