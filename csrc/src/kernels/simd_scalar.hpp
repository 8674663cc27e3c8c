// Vector traits of one lane, for the scalar path: the portable kernel bodies
// (direct_body.hpp) written against vector traits compile to plain C++ with
// them, so the scalar path runs the same algorithm as the SIMD ones. Compiled
// without ISA flags; anonymous namespace like the other traits, so each file
// keeps its own copy.
#pragma once

#include "common/relu.hpp"

namespace convx::detail {
namespace {

template <typename T>
struct ScalarLane {
  using V = T;
  static constexpr int kLanes = 1;
  static V zero() { return T(0); }
  static V load(const T* p) { return *p; }
  static V loadu(const T* p) { return *p; }
  // n < kLanes, so n == 0: no lane is read or written.
  static V loadu_n(const T*, int) { return T(0); }
  static void storeu_n(T*, V, int) {}
  static V bcast(const T* p) { return *p; }
  // A multiply and an add, rounded twice: the baseline ISA has no fused form.
  static V fma(V a, V b, V c) { return a * b + c; }
  static V add(V a, V b) { return a + b; }
  static V relu(V a) { return detail::relu(a); }
  static void storeu(T* p, V v) { *p = v; }
  static void store(T* p, V v) { *p = v; }
};

using ScalarF32 = ScalarLane<float>;
using ScalarF64 = ScalarLane<double>;

}  // namespace
}  // namespace convx::detail
