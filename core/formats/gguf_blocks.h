#pragma once
// GGUF's block types, one table and one codec per type (ggml-common.h block_q4_0 ... block_q6_K;
// ggml-quants.c dequantize_row_*). A block holds `weights` codes q (unsigned, 0 .. 2^bits - 1) and
// its scales, in one of four forms:
//   Symmetric        Q4_0 Q5_0 Q8_0  32 weights   y = d (q - 2^(bits-1))
//   Offset           Q4_1 Q5_1       32 weights   y = d q + m
//   ScaledSymmetric  Q3_K Q6_K       256 weights  y = (d scales[g]) (q - 2^(bits-1)),  groups of 16
//   ScaledWithMins   Q2_K Q4_K Q5_K  256 weights  y = (d scales[g]) q - dmin mins[g],  groups of 16/32
//   Levels           IQ4_NL          32 weights   y = d kIq4NlLevels[q]  (quant/iq4_nl_levels.h)
// d, m and dmin are fp16 in the file; scales and mins are small integers (Q3_K's are stored + 32,
// Q6_K's as int8). Tessera's codes are the stored q, and for the symmetric forms its zero point is
// 2^(bits-1). IQ4_NL is written only as the Q2_K/Q3_K fallback: it has no export format of its own
// (format_id ""). Adding a type: its entry in gguf_block_types() with its pack/unpack functions
// (gguf_blocks.cpp), and its case in test_export_gguf's transcription of ggml's dequantize loops.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "formats/gguf_file.h"
#include "quant/iq4_nl_levels.h"

namespace tessera::formats {

enum class GgufBlockForm { Symmetric, Offset, ScaledSymmetric, ScaledWithMins, Levels };

// One block, decoded to its fields (the first `weights` codes and `weights / group` scales used).
struct GgufBlock {
  std::array<std::uint8_t, 256> codes{};
  float d = 0;
  float m = 0;     // Offset: y = d q + m
  float dmin = 0;  // ScaledWithMins: the fp16 multiplier of mins
  std::array<int, 16> scales{}, mins{};
};

struct GgufBlockType {
  GgmlType type;
  std::string format_id;  // the export format (and --target) writing it, e.g. "gguf-q4_0"; "" for IQ4_NL
  int bits;
  GgufBlockForm form;
  int weights;                    // per block: 32, or 256 for the k-quants (ggml's QK_K)
  int group;                      // weights sharing one scale
  int scale_min, scale_max;       // range of scales[] (and of mins[]: 0 .. scale_max)
  std::size_t bytes;              // per block
  std::uint32_t llama_file_type;  // general.file_type (llama_ftype MOSTLY_*)
  void (*pack)(const GgufBlock&, std::uint8_t*);
  void (*unpack)(const std::uint8_t*, GgufBlock&);

  bool k_quant() const { return form == GgufBlockForm::ScaledSymmetric || form == GgufBlockForm::ScaledWithMins; }
  int groups() const { return weights / group; }
};

const std::vector<GgufBlockType>& gguf_block_types();
const GgufBlockType* gguf_block_type(GgmlType type);                 // nullptr: not a block type
const GgufBlockType* gguf_block_type(const std::string& format_id);  // nullptr: no such format

// A block -> bytes; throws naming the type when a code, scale or min is out of its range.
void pack_gguf_block(const GgufBlockType& t, const GgufBlock& block, std::uint8_t* out);
GgufBlock unpack_gguf_block(const GgufBlockType& t, const std::uint8_t* in);

// The weight llama.cpp computes for element j, in fp32 and in ggml's order of operations.
inline float gguf_block_value(const GgufBlockType& t, const GgufBlock& b, int j) {
  const float q = static_cast<float>(b.codes[static_cast<std::size_t>(j)]);
  const float half = static_cast<float>(1 << (t.bits - 1));
  const auto g = static_cast<std::size_t>(j / t.group);
  switch (t.form) {
    case GgufBlockForm::Symmetric:
      return (q - half) * b.d;
    case GgufBlockForm::Offset:
      return q * b.d + b.m;
    case GgufBlockForm::ScaledSymmetric:
      return b.d * static_cast<float>(b.scales[g]) * (q - half);
    case GgufBlockForm::ScaledWithMins:
      return b.d * static_cast<float>(b.scales[g]) * q - b.dmin * static_cast<float>(b.mins[g]);
    case GgufBlockForm::Levels:
      return b.d * static_cast<float>(quant::kIq4NlLevels[b.codes[static_cast<std::size_t>(j)]]);
  }
  return 0.f;
}

}  // namespace tessera::formats
