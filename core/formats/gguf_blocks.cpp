#include "formats/gguf_blocks.h"

#include <c10/util/Half.h>

#include <cstring>

#include "formats/bit_packing.h"
#include "util/error.h"

namespace tessera::formats {
namespace {

void put_half(std::uint8_t* p, float v) {
  const std::uint16_t bits = c10::Half(v).x;
  std::memcpy(p, &bits, 2);
}

float get_half(const std::uint8_t* p) {
  std::uint16_t bits;
  std::memcpy(&bits, p, 2);
  return static_cast<float>(c10::Half(bits, c10::Half::from_bits()));
}

std::uint8_t bit(int value, int b) { return static_cast<std::uint8_t>((value >> b) & 1); }

// ---- 32-weight blocks: d (and m), for 5 bits the fifth bits as a little-endian uint32, then the
// nibbles (element j low, j + 16 high in byte j); Q8_0 stores int8 q - 128.

template <int Bits, bool Offset>
void pack_legacy(const GgufBlock& b, std::uint8_t* out) {
  put_half(out, b.d);
  if (Offset) put_half(out + 2, b.m);
  std::uint8_t* p = out + (Offset ? 4 : 2);
  if (Bits == 8) {
    for (int j = 0; j < 32; ++j) {
      const auto q = static_cast<std::int8_t>(static_cast<int>(b.codes[static_cast<std::size_t>(j)]) - 128);
      std::memcpy(p + j, &q, 1);
    }
    return;
  }
  std::uint8_t low[32];
  std::uint32_t high = 0;
  for (int j = 0; j < 32; ++j) {
    low[j] = b.codes[static_cast<std::size_t>(j)] & 15u;
    high |= static_cast<std::uint32_t>(bit(b.codes[static_cast<std::size_t>(j)], 4)) << j;
  }
  if (Bits == 5) {
    std::memcpy(p, &high, 4);
    p += 4;
  }
  q4_1_pack_nibbles(low, p);
}

template <int Bits, bool Offset>
void unpack_legacy(const std::uint8_t* in, GgufBlock& b) {
  b.d = get_half(in);
  if (Offset) b.m = get_half(in + 2);
  const std::uint8_t* p = in + (Offset ? 4 : 2);
  if (Bits == 8) {
    for (int j = 0; j < 32; ++j) {
      std::int8_t q;
      std::memcpy(&q, p + j, 1);
      b.codes[static_cast<std::size_t>(j)] = static_cast<std::uint8_t>(static_cast<int>(q) + 128);
    }
    return;
  }
  std::uint32_t high = 0;
  if (Bits == 5) {
    std::memcpy(&high, p, 4);
    p += 4;
  }
  q4_1_unpack_nibbles(p, b.codes.data());
  if (Bits == 5)
    for (int j = 0; j < 32; ++j)
      b.codes[static_cast<std::size_t>(j)] |= static_cast<std::uint8_t>(((high >> j) & 1u) << 4);
}

// ---- k-quants (256 weights). Element e of a block, as ggml's dequantize_row_* loops visit it:
//   2-bit planes (Q2_K, Q3_K's low bits): byte 32 (e / 128) + e % 32, bits 2 ((e % 128) / 32)
//   Q3_K's high bit, Q5_K's fifth bit:     byte e % 32, bit e / 32
//   nibbles (Q4_K, Q5_K):                  byte 32 (e / 64) + e % 32, high half when e % 64 >= 32
//   Q6_K: low nibble in ql[64 (e / 128) + e % 32 + 32 (quarter % 2)] (high half when quarter >= 2),
//         two high bits in qh[32 (e / 128) + e % 32] at bits 2 quarter, quarter = (e % 128) / 32

std::size_t plane2_byte(int e) { return 32 * static_cast<std::size_t>(e / 128) + static_cast<std::size_t>(e % 32); }
int plane2_shift(int e) { return 2 * ((e % 128) / 32); }
std::size_t nibble_byte(int e) { return 32 * static_cast<std::size_t>(e / 64) + static_cast<std::size_t>(e % 32); }
int nibble_shift(int e) { return (e % 64) >= 32 ? 4 : 0; }

// Q4_K / Q5_K: eight 6-bit scales and mins in 12 bytes (ggml's get_scale_min_k4): bytes 0-3 hold
// scales 0-3 and bytes 4-7 mins 0-3 in their low 6 bits, with the top 2 bits of scales / mins 4-7
// above them; bytes 8-11 hold the low nibbles of scale (low half) and min (high half) 4-7.
void pack_scales_k4(const GgufBlock& b, std::uint8_t* q) {
  for (int j = 0; j < 4; ++j) {
    q[j] = static_cast<std::uint8_t>((b.scales[j] & 63) | ((b.scales[j + 4] >> 4) << 6));
    q[j + 4] = static_cast<std::uint8_t>((b.mins[j] & 63) | ((b.mins[j + 4] >> 4) << 6));
    q[j + 8] = static_cast<std::uint8_t>((b.scales[j + 4] & 15) | ((b.mins[j + 4] & 15) << 4));
  }
}

void unpack_scales_k4(const std::uint8_t* q, GgufBlock& b) {
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      b.scales[j] = q[j] & 63;
      b.mins[j] = q[j + 4] & 63;
    } else {
      b.scales[j] = (q[j + 4] & 15) | ((q[j - 4] >> 6) << 4);
      b.mins[j] = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
  }
}

// Q2_K: scales[16] (scale | min << 4), qs[64], d, dmin.
void pack_q2_k(const GgufBlock& b, std::uint8_t* out) {
  for (int g = 0; g < 16; ++g) out[g] = static_cast<std::uint8_t>(b.scales[g] | (b.mins[g] << 4));
  for (int e = 0; e < 256; ++e) out[16 + plane2_byte(e)] |= static_cast<std::uint8_t>(b.codes[e] << plane2_shift(e));
  put_half(out + 80, b.d);
  put_half(out + 82, b.dmin);
}

void unpack_q2_k(const std::uint8_t* in, GgufBlock& b) {
  for (int g = 0; g < 16; ++g) {
    b.scales[g] = in[g] & 15;
    b.mins[g] = in[g] >> 4;
  }
  for (int e = 0; e < 256; ++e)
    b.codes[e] = static_cast<std::uint8_t>((in[16 + plane2_byte(e)] >> plane2_shift(e)) & 3);
  b.d = get_half(in + 80);
  b.dmin = get_half(in + 82);
}

// Q3_K: hmask[32], qs[64], scales[12] (sixteen 6-bit scale + 32: low nibbles in bytes 0-7, scale g
// in the low half of byte g for g < 8 and the high half of byte g - 8 otherwise; top 2 bits in
// byte 8 + g % 4 at bits 2 (g / 4)), d.
void pack_q3_k(const GgufBlock& b, std::uint8_t* out) {
  for (int e = 0; e < 256; ++e) {
    out[e % 32] |= static_cast<std::uint8_t>(bit(b.codes[e], 2) << (e / 32));
    out[32 + plane2_byte(e)] |= static_cast<std::uint8_t>((b.codes[e] & 3) << plane2_shift(e));
  }
  std::uint8_t* s = out + 96;
  for (int g = 0; g < 16; ++g) {
    const int stored = b.scales[g] + 32;
    s[g % 8] |= static_cast<std::uint8_t>((stored & 15) << (g < 8 ? 0 : 4));
    s[8 + g % 4] |= static_cast<std::uint8_t>((stored >> 4) << (2 * (g / 4)));
  }
  put_half(out + 108, b.d);
}

void unpack_q3_k(const std::uint8_t* in, GgufBlock& b) {
  for (int e = 0; e < 256; ++e)
    b.codes[e] = static_cast<std::uint8_t>(((in[32 + plane2_byte(e)] >> plane2_shift(e)) & 3) |
                                           (((in[e % 32] >> (e / 32)) & 1) << 2));
  const std::uint8_t* s = in + 96;
  for (int g = 0; g < 16; ++g)
    b.scales[g] = (((s[g % 8] >> (g < 8 ? 0 : 4)) & 15) | (((s[8 + g % 4] >> (2 * (g / 4))) & 3) << 4)) - 32;
  b.d = get_half(in + 108);
}

// Q4_K: d, dmin, scales[12], qs[128].
void pack_q4_k(const GgufBlock& b, std::uint8_t* out) {
  put_half(out, b.d);
  put_half(out + 2, b.dmin);
  pack_scales_k4(b, out + 4);
  for (int e = 0; e < 256; ++e) out[16 + nibble_byte(e)] |= static_cast<std::uint8_t>(b.codes[e] << nibble_shift(e));
}

void unpack_q4_k(const std::uint8_t* in, GgufBlock& b) {
  b.d = get_half(in);
  b.dmin = get_half(in + 2);
  unpack_scales_k4(in + 4, b);
  for (int e = 0; e < 256; ++e)
    b.codes[e] = static_cast<std::uint8_t>((in[16 + nibble_byte(e)] >> nibble_shift(e)) & 15);
}

// Q5_K: d, dmin, scales[12], qh[32], qs[128].
void pack_q5_k(const GgufBlock& b, std::uint8_t* out) {
  put_half(out, b.d);
  put_half(out + 2, b.dmin);
  pack_scales_k4(b, out + 4);
  for (int e = 0; e < 256; ++e) {
    out[16 + e % 32] |= static_cast<std::uint8_t>(bit(b.codes[e], 4) << (e / 32));
    out[48 + nibble_byte(e)] |= static_cast<std::uint8_t>((b.codes[e] & 15) << nibble_shift(e));
  }
}

void unpack_q5_k(const std::uint8_t* in, GgufBlock& b) {
  b.d = get_half(in);
  b.dmin = get_half(in + 2);
  unpack_scales_k4(in + 4, b);
  for (int e = 0; e < 256; ++e)
    b.codes[e] = static_cast<std::uint8_t>(((in[48 + nibble_byte(e)] >> nibble_shift(e)) & 15) |
                                           (((in[16 + e % 32] >> (e / 32)) & 1) << 4));
}

// Q6_K: ql[128], qh[64], scales[16] (int8), d.
std::size_t q6_low_byte(int e) {
  return 64 * static_cast<std::size_t>(e / 128) + static_cast<std::size_t>(e % 32 + 32 * (((e % 128) / 32) % 2));
}
int q6_low_shift(int e) { return (e % 128) / 32 >= 2 ? 4 : 0; }
std::size_t q6_high_byte(int e) {
  return 128 + 32 * static_cast<std::size_t>(e / 128) + static_cast<std::size_t>(e % 32);
}
int q6_high_shift(int e) { return 2 * ((e % 128) / 32); }

void pack_q6_k(const GgufBlock& b, std::uint8_t* out) {
  for (int e = 0; e < 256; ++e) {
    out[q6_low_byte(e)] |= static_cast<std::uint8_t>((b.codes[e] & 15) << q6_low_shift(e));
    out[q6_high_byte(e)] |= static_cast<std::uint8_t>((b.codes[e] >> 4) << q6_high_shift(e));
  }
  for (int g = 0; g < 16; ++g) {
    const auto s = static_cast<std::int8_t>(b.scales[g]);
    std::memcpy(out + 192 + g, &s, 1);
  }
  put_half(out + 208, b.d);
}

void unpack_q6_k(const std::uint8_t* in, GgufBlock& b) {
  for (int e = 0; e < 256; ++e)
    b.codes[e] = static_cast<std::uint8_t>(((in[q6_low_byte(e)] >> q6_low_shift(e)) & 15) |
                                           (((in[q6_high_byte(e)] >> q6_high_shift(e)) & 3) << 4));
  for (int g = 0; g < 16; ++g) {
    std::int8_t s;
    std::memcpy(&s, in + 192 + g, 1);
    // NOLINTNEXTLINE(bugprone-signed-char-misuse,cert-str34-c): Q6_K's scales are int8, sign extension intended
    b.scales[g] = static_cast<int>(s);
  }
  b.d = get_half(in + 208);
}

}  // namespace

const std::vector<GgufBlockType>& gguf_block_types() {
  using F = GgufBlockForm;
  // llama_ftype: MOSTLY_Q4_0 2, Q4_1 3, Q8_0 7, Q5_0 8, Q5_1 9, Q2_K 10, Q3_K_S 11, Q4_K_S 14,
  // Q5_K_S 16, Q6_K 18 (the _S variants: every quantized tensor of that one type).
  static const std::vector<GgufBlockType> types = {
      {GgmlType::Q4_0, "gguf-q4_0", 4, F::Symmetric, 32, 32, 0, 0, 18, 2, pack_legacy<4, false>,
       unpack_legacy<4, false>},
      {GgmlType::Q4_1, "gguf-q4_1", 4, F::Offset, 32, 32, 0, 0, 20, 3, pack_legacy<4, true>, unpack_legacy<4, true>},
      {GgmlType::Q5_0, "gguf-q5_0", 5, F::Symmetric, 32, 32, 0, 0, 22, 8, pack_legacy<5, false>,
       unpack_legacy<5, false>},
      {GgmlType::Q5_1, "gguf-q5_1", 5, F::Offset, 32, 32, 0, 0, 24, 9, pack_legacy<5, true>, unpack_legacy<5, true>},
      {GgmlType::Q8_0, "gguf-q8_0", 8, F::Symmetric, 32, 32, 0, 0, 34, 7, pack_legacy<8, false>,
       unpack_legacy<8, false>},
      {GgmlType::Q2_K, "gguf-q2_k", 2, F::ScaledWithMins, 256, 16, 0, 15, 84, 10, pack_q2_k, unpack_q2_k},
      {GgmlType::Q3_K, "gguf-q3_k", 3, F::ScaledSymmetric, 256, 16, -32, 31, 110, 11, pack_q3_k, unpack_q3_k},
      {GgmlType::Q4_K, "gguf-q4_k", 4, F::ScaledWithMins, 256, 32, 0, 63, 144, 14, pack_q4_k, unpack_q4_k},
      {GgmlType::Q5_K, "gguf-q5_k", 5, F::ScaledWithMins, 256, 32, 0, 63, 176, 16, pack_q5_k, unpack_q5_k},
      {GgmlType::Q6_K, "gguf-q6_k", 6, F::ScaledSymmetric, 256, 16, -128, 127, 210, 18, pack_q6_k, unpack_q6_k},
      // block_iq4_nl: d, then the nibbles as Q4_0 lays them out (dequantize_row_iq4_nl); MOSTLY_IQ4_NL 25.
      {GgmlType::IQ4_NL, "", 4, F::Levels, 32, 32, 0, 0, 18, 25, pack_legacy<4, false>, unpack_legacy<4, false>},
  };
  return types;
}

const GgufBlockType* gguf_block_type(GgmlType type) {
  for (const auto& t : gguf_block_types())
    if (t.type == type) return &t;
  return nullptr;
}

const GgufBlockType* gguf_block_type(const std::string& format_id) {
  if (format_id.empty()) return nullptr;
  for (const auto& t : gguf_block_types())
    if (t.format_id == format_id) return &t;
  return nullptr;
}

void pack_gguf_block(const GgufBlockType& t, const GgufBlock& block, std::uint8_t* out) {
  const std::string name = ggml_type_name(t.type) + " packing: ";
  for (int j = 0; j < t.weights; ++j)
    if (block.codes[static_cast<std::size_t>(j)] >= (1u << t.bits))
      throw Error(name + "code " + std::to_string(block.codes[static_cast<std::size_t>(j)]) + " does not fit in " +
                  std::to_string(t.bits) + " bits");
  if (t.k_quant())
    for (int g = 0; g < t.groups(); ++g) {
      const auto s = block.scales[static_cast<std::size_t>(g)], m = block.mins[static_cast<std::size_t>(g)];
      if (s < t.scale_min || s > t.scale_max)
        throw Error(name + "scale " + std::to_string(s) + " is outside " + std::to_string(t.scale_min) + ".." +
                    std::to_string(t.scale_max));
      if (t.form == GgufBlockForm::ScaledWithMins ? m < 0 || m > t.scale_max : m != 0)
        throw Error(name + "min " + std::to_string(m) + " is outside 0.." + std::to_string(t.scale_max));
    }
  std::memset(out, 0, t.bytes);
  t.pack(block, out);
}

GgufBlock unpack_gguf_block(const GgufBlockType& t, const std::uint8_t* in) {
  GgufBlock b;
  t.unpack(in, b);
  return b;
}

}  // namespace tessera::formats
