#pragma once
// Quantization settings small enough for CI's two cores on stories260K: 4 calibration windows of
// 64 tokens, coarse AWQ grids, two PAR iterations. The GUI tests run real runs with them.
#include <QFile>
#include <QString>

#include "pipeline/run_config.h"
#include "small_run.h"

namespace tessera_test {

inline void shrink_for_ci(tessera::pipeline::RunConfig& c, std::int64_t tq_steps) {
  c.samples = 4;
  c.seq_len = 64;
  c.batch_size = 4;
  c.settings.set("awq", "grid", 5);
  c.settings.set("awq", "clip_grid", 5);
  c.settings.set("awq", "clip_tokens", 64);
  c.settings.set("omniquant", "epochs", 1);
  c.settings.set("tesseraq", "schedule", "0.5,0");
  c.settings.set("tesseraq", "steps", tq_steps);
  c.settings.set("tesseraq", "batch", 2);
  c.settings.set("tesseraq", "log_every", 1);
}

// A W`bits` g32 run of `method` with the settings above.
inline tessera::pipeline::RunConfig ci_run(const std::string& model, const std::string& calib, const char* method,
                                           int bits, std::int64_t tq_steps) {
  tessera::pipeline::RunConfig c = small_run(model, calib, method, bits);
  shrink_for_ci(c, tq_steps);
  return c;
}

// "" when the two run directories hold byte-identical block files (codes, scales, zeros, method
// state) for blocks 0 .. blocks-1; else the first file that differs.
inline QString differing_block_file(const QString& run_a, const QString& run_b, int blocks) {
  for (int k = 0; k < blocks; ++k) {
    const QString name = QString("/blocks/block_%1.safetensors").arg(k, 3, 10, QChar('0'));
    QFile a(run_a + name), b(run_b + name);
    if (!a.open(QIODevice::ReadOnly) || !b.open(QIODevice::ReadOnly) || a.readAll() != b.readAll()) return name;
  }
  return QString();
}

}  // namespace tessera_test
