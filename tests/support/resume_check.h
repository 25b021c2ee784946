#pragma once
// The resume guarantee, shared by every method's tests: a run cancelled after block 1 and then
// resumed writes block files byte-identical to an uninterrupted run of the same config.
#include <fstream>
#include <sstream>
#include <string>

#include "pipeline/quantization_run.h"
#include "rundir/run_directory.h"
#include "tessera_test.h"

namespace tessera_test {

inline std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Requests a stop once block `after` has finished.
class StopAfterBlock : public tessera::rundir::EventSink {
 public:
  StopAfterBlock(std::int64_t after, tessera::StopToken stop) : after_(after), stop_(std::move(stop)) {}
  void on_event(const tessera::rundir::RunEvent& e) override {
    if (e.kind == tessera::rundir::RunEvent::Kind::BlockFinished && e.block == after_) stop_.request_stop();
  }

 private:
  std::int64_t after_;
  tessera::StopToken stop_;
};

// Runs `cfg` in base/full, then in base/resumed cancelled after block 1 and resumed; compares.
inline void verify_interrupted_run_resumes_identically(const tessera::pipeline::RunConfig& cfg,
                                                       const std::string& base) {
  using namespace tessera;
  rundir::NullEventSink quiet;
  const auto full = pipeline::run_quantization(cfg, base + "/full", false, quiet);
  StopToken stop;
  StopAfterBlock stopper(1, stop);
  bool cancelled = false;
  try {
    pipeline::run_quantization(cfg, base + "/resumed", false, stopper, stop);
  } catch (const Cancelled&) {
    cancelled = true;
  }
  QVERIFY(cancelled);
  rundir::RunDirectory partial(base + "/resumed");
  QVERIFY(partial.has_block(1) && !partial.has_block(2));
  TESSERA_VERIFY_THROWS_WITH(pipeline::run_quantization(cfg, base + "/resumed", false, quiet), "--resume");
  const auto summary = pipeline::run_quantization(cfg, base + "/resumed", true, quiet);
  QCOMPARE(summary.restored_blocks, std::int64_t(2));
  for (std::int64_t k = 0; k < full.blocks; ++k)
    QVERIFY2(file_bytes(rundir::RunDirectory(base + "/full").block_path(k)) == file_bytes(partial.block_path(k)),
             ("block " + std::to_string(k) + " differs after resume").c_str());
}

}  // namespace tessera_test
