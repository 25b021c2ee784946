// The safetensors reader must reject every way a header can lie, with a message that says how.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "tessera_test.h"
#include "test_data.h"

using tessera::io::DType;
using tessera::io::SafetensorsFile;
using tessera::io::SafetensorsWriter;

namespace {

// Writes an 8-byte length, the header text as given, and `data_bytes` zero bytes.
std::string write_raw(const std::string& dir, const std::string& name, const std::string& header,
                      std::size_t data_bytes, std::uint64_t claimed_len = 0) {
  const std::string path = dir + "/" + name;
  std::ofstream out(path, std::ios::binary);
  const std::uint64_t len = claimed_len ? claimed_len : header.size();
  out.write(reinterpret_cast<const char*>(&len), 8);
  out << header;
  out << std::string(data_bytes, '\0');
  return path;
}

}  // namespace

class TestSafetensors : public QObject {
  Q_OBJECT
  TESSERA_TEST_FRIEND

 private slots:
  void roundTripKeepsBytesShapesAndMetadata() {
    const auto dir = tessera_test::fresh_temp_dir("st-roundtrip");
    SafetensorsWriter w;
    const float a[6] = {1, 2, 3, 4, 5, 6};
    const std::uint16_t b[3] = {0x3c00, 0x4000, 0xc000};  // fp16 1, 2, -2
    w.add("b.half", DType::F16, {3}, b, sizeof(b));
    w.add("a.weight", DType::F32, {2, 3}, a, sizeof(a));
    w.set_metadata("format", "pt");
    w.write_to_file(dir + "/t.safetensors");

    SafetensorsFile f(dir + "/t.safetensors");
    QCOMPARE(f.tensors().size(), std::size_t(2));
    QCOMPARE(f.metadata().at("format"), std::string("pt"));
    const auto& ta = f.tensor("a.weight");
    QVERIFY(ta.shape == (std::vector<std::int64_t>{2, 3}));
    QCOMPARE(ta.dtype, DType::F32);
    QCOMPARE(std::memcmp(ta.data, a, sizeof(a)), 0);
    QCOMPARE(std::memcmp(f.tensor("b.half").data, b, sizeof(b)), 0);
    // Header padded to a multiple of 8 so tensor data is aligned, as the reference writer does.
    std::uint64_t header_len = 0;
    std::ifstream(dir + "/t.safetensors", std::ios::binary).read(reinterpret_cast<char*>(&header_len), 8);
    QCOMPARE(header_len % 8, std::uint64_t(0));
  }

  void headerLongerThanFileIsRejected() {
    const auto dir = tessera_test::fresh_temp_dir("st-long");
    const auto p = write_raw(dir, "long.safetensors", "{}", 0, 1 << 20);
    TESSERA_VERIFY_THROWS_WITH(SafetensorsFile{p}, "longer than the file");
  }

  void tinyFileIsRejected() {
    const auto dir = tessera_test::fresh_temp_dir("st-tiny");
    const std::string p = dir + "/tiny.safetensors";
    std::ofstream(p) << "abc";
    TESSERA_VERIFY_THROWS_WITH(SafetensorsFile{p}, "not a safetensors file");
  }

  void invalidJsonIsRejected() {
    const auto dir = tessera_test::fresh_temp_dir("st-json");
    const auto p = write_raw(dir, "bad.safetensors", "{\"a\": [1, 2", 0);
    TESSERA_VERIFY_THROWS_WITH(SafetensorsFile{p}, "not valid JSON");
  }

  void overlappingOffsetsAreRejected() {
    const auto dir = tessera_test::fresh_temp_dir("st-overlap");
    const auto p = write_raw(dir, "o.safetensors",
                             R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                             12);
    TESSERA_VERIFY_THROWS_WITH(SafetensorsFile{p}, "overlap");
  }

  void offsetsPastTheDataAreRejected() {
    const auto dir = tessera_test::fresh_temp_dir("st-range");
    const auto p = write_raw(dir, "r.safetensors", R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8);
    TESSERA_VERIFY_THROWS_WITH(SafetensorsFile{p}, "run past the end of the data");
  }

  void dtypeDisagreeingWithByteLengthIsRejected() {
    const auto dir = tessera_test::fresh_temp_dir("st-dtype");
    // 4 F32 values need 16 bytes; the offsets give 8 (as if the data were F16).
    const auto p = write_raw(dir, "d.safetensors", R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}})", 8);
    TESSERA_VERIFY_THROWS_WITH(SafetensorsFile{p}, "need 16 bytes but data_offsets span 8");
  }

  void unknownDtypeIsRejected() {
    const auto dir = tessera_test::fresh_temp_dir("st-unknown");
    const auto p = write_raw(dir, "u.safetensors", R"({"x":{"dtype":"Q4","shape":[4],"data_offsets":[0,2]}})", 2);
    TESSERA_VERIFY_THROWS_WITH(SafetensorsFile{p}, "unsupported dtype \"Q4\"");
  }

  void missingTensorIsNamed() {
    const auto dir = tessera_test::fresh_temp_dir("st-missing");
    SafetensorsWriter w;
    const float a = 1;
    w.add("present", DType::F32, {1}, &a, 4);
    w.write_to_file(dir + "/m.safetensors");
    SafetensorsFile f(dir + "/m.safetensors");
    TESSERA_VERIFY_THROWS_WITH(f.tensor("absent.weight"), "missing tensor \"absent.weight\"");
  }

  void failedAtomicWriteLeavesNoFileAndKeepsTheOldOne() {
    const auto dir = tessera_test::fresh_temp_dir("st-atomic");
    const std::string target = dir + "/out.bin";
    std::ofstream(target) << "old";
    TESSERA_VERIFY_THROWS_WITH(
        tessera::io::write_file_atomically(target,
                                           [](std::ostream& out) {
                                             out << "partial";
                                             throw tessera::Error("simulated failure while writing");
                                           }),
        "simulated failure");
    std::stringstream ss;
    ss << std::ifstream(target).rdbuf();
    QCOMPARE(ss.str(), std::string("old"));
    std::size_t files = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      (void)e;
      ++files;
    }
    QCOMPARE(files, std::size_t(1));  // no temporary left behind
  }

  void writeFailureLikeFullDiskLeavesNothing() {
    // /dev/full fails every write with ENOSPC; the writer must report it and remove its temp file.
    if (!std::filesystem::exists("/dev/full")) QSKIP("/dev/full is not available");
    const auto dir = tessera_test::fresh_temp_dir("st-full");
    const std::string target = dir + "/big.bin";
    TESSERA_VERIFY_THROWS_WITH(tessera::io::write_file_atomically(
                                   target,
                                   [](std::ostream& out) {
                                     std::ofstream full("/dev/full", std::ios::binary);
                                     std::string block(1 << 16, 'x');
                                     full.write(block.data(), static_cast<std::streamsize>(block.size()));
                                     full.flush();
                                     if (!full)
                                       out.setstate(std::ios::badbit);  // propagate the device's ENOSPC to the writer
                                   }),
                               "disk full");
    QVERIFY(!std::filesystem::exists(target));
  }
};

TESSERA_TEST_MAIN(TestSafetensors, roundTripKeepsBytesShapesAndMetadata, headerLongerThanFileIsRejected,
                  tinyFileIsRejected, invalidJsonIsRejected, overlappingOffsetsAreRejected,
                  offsetsPastTheDataAreRejected, dtypeDisagreeingWithByteLengthIsRejected, unknownDtypeIsRejected,
                  missingTensorIsNamed, failedAtomicWriteLeavesNoFileAndKeepsTheOldOne,
                  writeFailureLikeFullDiskLeavesNothing)
#ifdef TESSERA_TEST_WITH_QT
#include "test_safetensors.moc"
#endif
