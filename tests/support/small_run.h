#pragma once
// The small run config the method tests share: a handful of short calibration windows and a
// coarse AWQ grid keep stories260K runs to seconds; each test adjusts what it is about.
#include <string>

#include "pipeline/run_config.h"

namespace tessera_test {

inline tessera::pipeline::RunConfig small_run(const std::string& model, const std::string& calib,
                                              const std::string& method, int bits) {
  tessera::pipeline::RunConfig c;
  c.model = model;
  c.calib = calib;
  c.method = method;
  c.weight.bits = bits;
  c.weight.group_size = 32;
  c.samples = 8;
  c.seq_len = 64;
  c.batch_size = 8;
  c.settings.set("awq", "grid", 5);
  return c;
}

}  // namespace tessera_test
