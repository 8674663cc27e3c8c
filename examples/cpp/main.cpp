// Runs one convolution through the installed convx C++ API, as an operator
// made once and run twice, and checks it against answers worked out by hand.
// Exits non-zero on any mismatch.
//
// Input: one 4x4 single-channel image holding 1..16 (NHWC: 1x4x4x1).
// Filters (OHWI: 2x3x3x1), zero padding 1, stride 1:
//   0: the Laplacian [[0,1,0],[1,-4,1],[0,1,0]] with bias 0.5
//   1: the 3x3 box sum                          with bias -10
// So y[i][j][1] = -10 + (sum of the 3x3 neighbourhood of (i,j), zeros outside),
// e.g. y[1][1][1] = -10 + (1+2+3+5+6+7+9+10+11) = 44.
#include <cmath>
#include <cstdio>
#include <exception>
#include <stdexcept>

#include "convx/convx.hpp"

int main() {
  const float x[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  const float w[2 * 9] = {0, 1, 0, 1, -4, 1, 0, 1, 0,   // filter 0
                          1, 1, 1, 1, 1,  1, 1, 1, 1};  // filter 1
  const float bias[2] = {0.5f, -10.0f};
  const float expected[4][4][2] = {
      {{3.5f, 4}, {2.5f, 14}, {1.5f, 20}, {-4.5f, 12}},
      {{-3.5f, 23}, {0.5f, 44}, {0.5f, 53}, {-8.5f, 35}},
      {{-7.5f, 47}, {0.5f, 80}, {0.5f, 89}, {-12.5f, 59}},
      {{-28.5f, 36}, {-17.5f, 62}, {-18.5f, 68}, {-36.5f, 44}},
  };

  try {
    convx::ConvParams params;  // NHWC, stride 1, dilation 1, groups 1
    params.pad = {1, 1, 1, 1};
    const convx::ConvShape shape =
        convx::make_conv_shape(/*n=*/1, /*h=*/4, /*w=*/4, /*c_in=*/1, /*c_out=*/2,
                               /*k_h=*/3, /*k_w=*/3, params);
    // Validates the problem, chooses the algorithm and kernels, and packs the
    // filters, once; run() may then be called any number of times, from any
    // number of threads.
    const auto conv = convx::Conv2d<float>::create(shape, w);
    std::printf("convx %s: %s algorithm, kernel %s, %d threads, %lld bytes of scratch\n",
                CONVX_VERSION_STRING, convx::algorithm_name(conv->algorithm()), conv->kernel(),
                convx::num_threads(), static_cast<long long>(conv->workspace_bytes()));
    float y[4 * 4 * 2];
    int bad = 0;
    for (int run = 0; run < 2; ++run) {
      conv->run(x, bias, y);
      for (int i = 0; i < 4; ++i) {
        for (int j = 0; j < 4; ++j) {
          for (int m = 0; m < 2; ++m) {
            const float got = y[(i * 4 + j) * 2 + m];
            if (std::fabs(got - expected[i][j][m]) > 1e-5f) {
              std::printf("MISMATCH y[%d][%d][%d] = %g, expected %g\n", i, j, m, got,
                          expected[i][j][m]);
              ++bad;
            }
          }
        }
      }
    }
    if (bad != 0) return 1;
    std::printf("conv2d 1x4x4x1 -> 1x4x4x2 matches the hand-computed answer\n");

    // The free function makes an operator for one call.
    float y_once[4 * 4 * 2];
    convx::conv2d<float>(shape, x, w, bias, y_once);
    for (int i = 0; i < 4 * 4 * 2; ++i) bad += y_once[i] != y[i];
    if (bad != 0) return 1;

    // Errors are C++ exceptions whose message names the bad argument.
    try {
      params.stride_h = 0;
      convx::make_conv_shape(1, 4, 4, 1, 2, 3, 3, params);
      std::printf("MISMATCH: stride 0 was accepted\n");
      return 1;
    } catch (const std::invalid_argument& e) {
      std::printf("stride 0 rejected: %s\n", e.what());
    }
  } catch (const std::exception& e) {
    std::printf("error: %s\n", e.what());
    return 1;
  }
  return 0;
}
