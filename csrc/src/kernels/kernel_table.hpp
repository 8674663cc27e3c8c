// The one place that maps an ISA path to micro-kernels. Portable code asks
// for the kernels of a path (an operator: the one its context names) and
// receives descriptors, {fn, mr, nr, blocking} for the GEMM and {fn, lanes}
// for the row kernels, each with a name. It never names an ISA itself.
#pragma once

#include "convx/runtime.hpp"
#include "kernels/direct.hpp"
#include "kernels/dwconv.hpp"
#include "kernels/patch_pack.hpp"
#include "kernels/ukernel.hpp"
#include "kernels/winograd.hpp"

namespace convx::detail {

// Every kernel of one element type on one path. Each path has all five
// families, the scalar one included; `isa` is the path they were built for.
template <typename T>
struct KernelSet {
  Isa isa = Isa::Scalar;
  GemmKernel<T> gemm;
  DwKernel<T> dw;
  DirectKernel<T> direct;
  WinogradKernel<T> wino;
  PatchPackKernel<T> patch;  // packs NCHW patches into B micro-panels
};

// The kernels of `isa`, built once per process; the reference stays valid for
// its lifetime. `isa` must be available (isa_available()): asking for a path
// that is not compiled in or that this CPU lacks throws std::invalid_argument,
// since its kernels could not run here. T is float or double.
template <typename T>
const KernelSet<T>& kernels_for(Isa isa);

}  // namespace convx::detail
