// Golden words for the packed formats, computed by hand from the reference implementations (GPTQ:
// AutoGPTQ's pack() in auto_gptq/nn_modules/qlinear/qlinear_cuda_old.py; AWQ-GEMM: AutoAWQ's
// awq/utils/packing_utils.py; GGUF Q4_1: block_q4_1 in ggml/src/ggml-common.h and
// dequantize_row_q4_1 in ggml/src/ggml-quants.c), not from the packer: a packer bug that is its own
// inverse (pack and unpack agreeing on a wrong layout) fails here.
#include <torch/torch.h>

#include <filesystem>

#include "formats/bit_packing.h"
#include "formats/packed_format.h"
#include "io/safetensors.h"
#include "model/gguf_import.h"
#include "tessera_test.h"
#include "test_data.h"

using namespace tessera;
using namespace tessera::formats;

namespace {

std::vector<std::uint32_t> pack(const std::vector<std::uint8_t>& v, int bits) {
  return pack_bitstream(v.data(), v.size(), bits);
}

// A QuantizedLinear [n, k] with codes(r, c) = f(r, c) and zero z(r) for every group.
quant::QuantizedLinear linear(std::int64_t n, std::int64_t k, int bits, std::int64_t group,
                              const std::function<int(std::int64_t, std::int64_t)>& code,
                              const std::function<int(std::int64_t)>& zero) {
  quant::QuantizedLinear q;
  q.spec = {bits, group, false};
  q.codes = torch::empty({n, k}, torch::kUInt8);
  for (std::int64_t r = 0; r < n; ++r)
    for (std::int64_t c = 0; c < k; ++c) q.codes[r][c] = code(r, c);
  const auto groups = k / group;
  q.zero = torch::empty({n, groups});
  for (std::int64_t r = 0; r < n; ++r) q.zero[r].fill_(zero(r));
  q.scale = torch::full({n, groups}, 0.5f);
  return q;
}

// Writes the layer with `format` and reads the raw words of "<m>.<tensor>" back.
std::vector<std::uint32_t> packed_words(const PackedFormat& format, const quant::QuantizedLinear& q,
                                        const std::string& tensor, std::vector<std::int64_t>* shape = nullptr) {
  io::SafetensorsWriter w;
  format.pack(q, "m", torch::kFloat16, w);
  // A new folder per call: re-creating a non-empty one needs a recursive std::filesystem::remove_all,
  // which crashes this process in the CUDA build (libtorch 2.11 wheel; see test_tesseraq.cpp).
  static int calls = 0;
  const auto path = tessera_test::fresh_temp_dir("packing-" + std::to_string(++calls)) + "/p.safetensors";
  w.write_to_file(path);
  io::SafetensorsFile f(path);
  const auto& v = f.tensor("m." + tensor);
  if (shape) *shape = v.shape;
  std::vector<std::uint32_t> words(v.nbytes / 4);
  std::memcpy(words.data(), v.data, v.nbytes);
  // The reader's view must give the codes back as well.
  const auto back = format.unpack(f, "m");
  if (!torch::equal(back.codes, q.codes) || !torch::equal(back.zero, q.zero)) words.clear();
  return words;
}

}  // namespace

class TestExportPacking : public QObject {
  Q_OBJECT
  TESSERA_TEST_FRIEND

 private slots:
  void twoBitWord() {
    // Value j at bits 2j. Bytes (4 values each, lowest value in the lowest bits):
    // {0,1,2,3} -> 0b11100100 = 0xE4; {3,2,1,0} -> 0b00011011 = 0x1B; {1,1,1,1} -> 0x55; {2,2,2,2} -> 0xAA.
    const auto w = pack({0, 1, 2, 3, 3, 2, 1, 0, 1, 1, 1, 1, 2, 2, 2, 2}, 2);
    QCOMPARE(w.size(), std::size_t(1));
    QCOMPARE(w[0], 0xAA551BE4u);
  }

  void fourBitWord() {
    // Value j in nibble j: 1..8 read from the lowest nibble up -> 0x87654321.
    const auto w = pack({1, 2, 3, 4, 5, 6, 7, 8}, 4);
    QCOMPARE(w[0], 0x87654321u);
  }

  void eightBitWord() {
    // Value j in byte j (little-endian): 0x12, 0x34, 0x56, 0x78 -> 0x78563412.
    QCOMPARE(pack({0x12, 0x34, 0x56, 0x78}, 8)[0], 0x78563412u);
  }

  void threeBitWordsStraddle() {
    // AutoGPTQ's 3-bit layout for 32 values in 3 words; all values 0 except
    // v0 = 7, v9 = 4, v10 = 0b101, v11 = 6, v21 = 0b011, v22 = 2, v31 = 1.
    // w0: v0 at bits 0-2 -> 0x7; v9 at bits 27-29 -> 4 << 27 = 0x20000000;
    //     v10's low two bits (0b01) at bits 30-31 -> 0x40000000.          w0 = 0x60000007
    // w1: bit 0 = v10's bit 2 (1) -> 0x1; v11 at bits 3(11-11)+1 = 1 -> 6 << 1 = 0xC;
    //     v21's bit 0 (1) at bit 31 -> 0x80000000.                        w1 = 0x8000000D
    // w2: bits 0-1 = v21's bits 1-2 (0b01) -> 0x1; v22 at bits 2-4 -> 2 << 2 = 0x8;
    //     v31 at bits 3(31-22)+2 = 29 -> 0x20000000.                      w2 = 0x20000009
    std::vector<std::uint8_t> v(32, 0);
    v[0] = 7;
    v[9] = 4;
    v[10] = 5;
    v[11] = 6;
    v[21] = 3;
    v[22] = 2;
    v[31] = 1;
    const auto w = pack(v, 3);
    QCOMPARE(w.size(), std::size_t(3));
    QCOMPARE(w[0], 0x60000007u);
    QCOMPARE(w[1], 0x8000000Du);
    QCOMPARE(w[2], 0x20000009u);
    QCOMPARE(unpack_bitstream(w.data(), 32, 3), v);
  }

  void gptqQweightRunsAlongInputsAndQzerosAlongOutputs() {
    // 8 outputs x 8 inputs, 4-bit, one group of 8. codes[n][k] = (k + n) % 16, zero[n] = n + 1.
    // qweight [K*4/32 = 1, N = 8]: column n packs inputs k = 0..7 -> column 0 = 0x76543210,
    // column 1 = 0x87654321, column 7 = 0xEDCBA987.
    // qzeros [1 group, N*4/32 = 1]: v2 stores the true zeros 1..8 -> 0x87654321; v1 stores zero - 1,
    // 0..7 -> 0x76543210.
    const auto q = linear(
        8, 8, 4, 8, [](auto n, auto k) { return int((k + n) % 16); }, [](auto n) { return int(n + 1); });
    std::vector<std::int64_t> shape;
    const auto v2 = make_gptq_format(q.spec, false);
    const auto qweight = packed_words(*v2, q, "qweight", &shape);
    QCOMPARE(shape, (std::vector<std::int64_t>{1, 8}));
    QCOMPARE(qweight.size(), std::size_t(8));
    QCOMPARE(qweight[0], 0x76543210u);
    QCOMPARE(qweight[1], 0x87654321u);
    QCOMPARE(qweight[7], 0xEDCBA987u);
    QCOMPARE(packed_words(*v2, q, "qzeros", &shape), (std::vector<std::uint32_t>{0x87654321u}));
    QCOMPARE(shape, (std::vector<std::int64_t>{1, 1}));
    QCOMPARE(packed_words(*make_gptq_format(q.spec, true), q, "qzeros"), (std::vector<std::uint32_t>{0x76543210u}));
  }

  void gptqSymmetricV1ZerosRead0x77777777() {
    // Symmetric 4-bit zero = 8 is stored by v1 as 7 in every nibble (the doc's 0x77777777).
    const auto q = linear(
        8, 8, 4, 8, [](auto, auto) { return 3; }, [](auto) { return 8; });
    QCOMPARE(packed_words(*make_gptq_format(q.spec, true), q, "qzeros"), (std::vector<std::uint32_t>{0x77777777u}));
  }

  void gptqTwoAndEightBitQzeros() {
    // 2-bit, N = 16 zeros z[n] = n % 4 -> 16 values of 2 bits: bytes {0,1,2,3} -> 0xE4 four times.
    const auto q2 = linear(
        16, 16, 2, 16, [](auto, auto) { return 1; }, [](auto n) { return int(n % 4); });
    QCOMPARE(packed_words(*make_gptq_format(q2.spec, false), q2, "qzeros"), (std::vector<std::uint32_t>{0xE4E4E4E4u}));
    // 8-bit, N = 4 zeros 128, 1, 255, 16 -> bytes 0x80, 0x01, 0xFF, 0x10 -> 0x10FF0180.
    const int z8[] = {128, 1, 255, 16};
    const auto q8 = linear(
        4, 4, 8, 4, [](auto, auto k) { return int(k); }, [&](auto n) { return z8[n]; });
    QCOMPARE(packed_words(*make_gptq_format(q8.spec, false), q8, "qzeros"), (std::vector<std::uint32_t>{0x10FF0180u}));
    // qweight 8-bit: column n holds inputs 0..3 = 0, 1, 2, 3 -> 0x03020100.
    QCOMPARE(packed_words(*make_gptq_format(q8.spec, false), q8, "qweight")[0], 0x03020100u);
  }

  void awqInterleavesNibbles() {
    // Columns 0..7 hold codes 0..7; nibble i holds column [0,2,4,6,1,3,5,7][i], so the nibbles from
    // the lowest are 0,2,4,6,1,3,5,7 -> 0x75316420. qzeros use the same order: zeros n + 8 for
    // columns 0..7 -> nibbles 8,10,12,14,9,11,13,15 -> 0xFDB9ECA8.
    const auto q = linear(
        8, 32, 4, 32, [](auto n, auto) { return int(n); }, [](auto n) { return int(n + 8); });
    const auto awq = make_awq_format(q.spec);
    std::vector<std::int64_t> shape;
    const auto qweight = packed_words(*awq, q, "qweight", &shape);
    QCOMPARE(shape, (std::vector<std::int64_t>{32, 1}));  // [K, N/8]
    for (auto w : qweight) QCOMPARE(w, 0x75316420u);
    QCOMPARE(packed_words(*awq, q, "qzeros"), (std::vector<std::uint32_t>{0xFDB9ECA8u}));
  }

  void q41NibbleOrder() {
    // Byte j = element j in the low nibble | element j + 16 in the high nibble. Elements 0..15 =
    // 0..15 and elements 16..31 = 15..0 give byte j = j | (15 - j) << 4: 0xF0, 0xE1, ..., 0x0F.
    std::uint8_t codes[32];
    for (int j = 0; j < 16; ++j) {
      codes[j] = static_cast<std::uint8_t>(j);
      codes[j + 16] = static_cast<std::uint8_t>(15 - j);
    }
    std::uint8_t bytes[16];
    q4_1_pack_nibbles(codes, bytes);
    QCOMPARE(int(bytes[0]), 0xF0);
    QCOMPARE(int(bytes[1]), 0xE1);
    QCOMPARE(int(bytes[15]), 0x0F);
    std::uint8_t back[32];
    q4_1_unpack_nibbles(bytes, back);
    QVERIFY(std::equal(codes, codes + 32, back));
  }

  void ggmlBlocksDecodeAsLlamaCpp() {
    // Q4_1 block (ggml block_q4_1): fp16 d = 0.5 (0x3800), fp16 m = 1.0 (0x3C00), then byte j =
    // element j | element j+16 << 4. Byte 0 = 0xF0: element 0 = 0 -> 0*0.5 + 1 = 1.0, element 16 =
    // 15 -> 8.5; the other bytes 0x00 -> 1.0.
    std::uint8_t q41[20] = {0x00, 0x38, 0x00, 0x3C, 0xF0};
    formats::GgufTensorInfo t{"q41", {32, 1}, formats::GgmlType::Q4_1, q41, 20, 0};
    auto y = model::decode_gguf_tensor(t);
    QCOMPARE(y[0][0].item<float>(), 1.0f);
    QCOMPARE(y[0][16].item<float>(), 8.5f);
    QCOMPARE(y[0][1].item<float>(), 1.0f);
    // Q5_1 (block_q5_1: d, m, uint32 qh, 16 bytes): bit i of qh is bit 4 of element i. d = 1.0,
    // m = -2.0 (0xC000), qh = 0x00010001 (elements 0 and 16), every byte 0x21 (low nibble 1, high 2):
    // element 0 = 1 + 16 = 17 -> 15; element 1 = 1 -> -1; element 16 = 2 + 16 = 18 -> 16; element 17 = 2 -> 0.
    std::uint8_t q51[24] = {0x00, 0x3C, 0x00, 0xC0, 0x01, 0x00, 0x01, 0x00};
    for (int j = 8; j < 24; ++j) q51[j] = 0x21;
    t = {"q51", {32, 1}, formats::GgmlType::Q5_1, q51, 24, 0};
    y = model::decode_gguf_tensor(t);
    QCOMPARE(y[0][0].item<float>(), 15.0f);
    QCOMPARE(y[0][1].item<float>(), -1.0f);
    QCOMPARE(y[0][16].item<float>(), 16.0f);
    QCOMPARE(y[0][17].item<float>(), 0.0f);
    QCOMPARE(model::gguf_block_codes(t)[0][16].item<int>(), 18);
  }

  void valuesThatDoNotFitAreRefused() {
    TESSERA_VERIFY_THROWS_WITH(pack({16, 0, 0, 0, 0, 0, 0, 0}, 4), "does not fit in 4 bits");
    TESSERA_VERIFY_THROWS_WITH(pack({1, 2, 3}, 4), "whole 32-bit words");
    const auto q = linear(
        8, 8, 4, 8, [](auto, auto) { return 3; }, [](auto n) { return int(n); });  // zero 0 in row 0
    QVERIFY(make_gptq_format(q.spec, true)->value_refusal(q).find("zero point of 0") != std::string::npos);
    QVERIFY(make_gptq_format(q.spec, false)->value_refusal(q).empty());
  }
};

TESSERA_TEST_MAIN(TestExportPacking, twoBitWord, fourBitWord, eightBitWord, threeBitWordsStraddle,
                  gptqQweightRunsAlongInputsAndQzerosAlongOutputs, gptqSymmetricV1ZerosRead0x77777777,
                  gptqTwoAndEightBitQzeros, awqInterleavesNibbles, q41NibbleOrder, ggmlBlocksDecodeAsLlamaCpp,
                  valuesThatDoNotFitAreRefused)
#ifdef TESSERA_TEST_WITH_QT
#include "test_export_packing.moc"
#endif
