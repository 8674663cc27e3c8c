// The one place that maps the active ISA to micro-kernels. Portable code asks
// for "the GEMM kernel" and receives {fn, mr, nr, blocking}; it never names an
// ISA.
#pragma once

#include "kernels/direct.hpp"
#include "kernels/dwconv.hpp"
#include "kernels/ukernel.hpp"
#include "convx/runtime.hpp"

namespace convx::detail {

template <typename T>
struct KernelSet {
  Isa isa = Isa::Scalar;
  GemmKernel<T> gemm;
  DwKernel<T> dw;
  DirectKernel<T> direct;
};

template <typename T>
const KernelSet<T>& kernels_for(Isa isa);

template <typename T>
const GemmKernel<T>& gemm_kernel();

template <typename T>
DwRowFn<T> dwconv_row_kernel();

// The small-K direct convolution kernel; fn is nullptr on the scalar path,
// where the GEMM route is used instead.
template <typename T>
DirectKernel<T> direct_kernel();

}  // namespace convx::detail
