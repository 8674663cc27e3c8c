// The Winograd F(4x4, 3x3) transform kernel contract (NHWC, vectorised across
// channels). The matrices and why these points are in docs/winograd.md.
//
// Input transform: V = B^T d B for one 6x6 input tile d, per channel.
//   src: 36 pointers, src[a*6 + b] -> the c channel values of tile pixel (a, b)
//        (a pointer to c zeros for a pixel on zero padding or off the image).
//   dst: element e = i*6 + j of channel k written at dst[e*ld_e + k], k < c.
//
// Output transform: Y = A^T M A for one tile, plus bias, then ReLU.
//   src: element e of channel k at src[e*ld_e + k], k < c.
//   bias: c values, or nullptr for none.
//   y:   output pixel (p, q) of channel k at y[p*ld_row + q*ld_px + k]; only
//        pixels p < rows, q < cols are written (a partial tile at the image's
//        edge), nothing else is read or written.
// The arithmetic per value does not depend on c or on the tile's position, so
// results are the same however the channels and tiles are split.
#pragma once

#include <cstdint>

namespace convx::detail {

// Output tile m, filter r and input tile m + r - 1 of F(m x m, r x r).
constexpr int kWinoM = 4;
constexpr int kWinoR = 3;
constexpr int kWinoTile = kWinoM + kWinoR - 1;           // 6
constexpr int kWinoPoints = kWinoTile * kWinoTile;       // 36 transformed elements

template <typename T>
using WinoInputFn = void (*)(const T* const* src, std::int64_t c, T* dst, std::int64_t ld_e);

template <typename T>
using WinoOutputFn = void (*)(const T* src, std::int64_t ld_e, std::int64_t c, const T* bias,
                              bool relu, T* y, std::int64_t ld_row, std::int64_t ld_px, int rows,
                              int cols);

// The transform kernels of one path; `name` reads like "f32 winograd-4x3 avx512".
template <typename T>
struct WinogradKernel {
  WinoInputFn<T> input = nullptr;
  WinoOutputFn<T> output = nullptr;
  const char* name = "";
};

}  // namespace convx::detail
