// The whole public C++ API of convx. Include this, link convx::core.
#pragma once

#include "convx/context.hpp"
#include "convx/conv2d.hpp"
#include "convx/conv2d_backward.hpp"
#include "convx/conv_matrix.hpp"
#include "convx/gemm.hpp"
#include "convx/runtime.hpp"
#include "convx/shape.hpp"
#include "convx/types.hpp"
#include "convx/version.hpp"
