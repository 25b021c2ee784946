#pragma once
// One run of a workbench session as the comparison table, the plots and the session file know it:
// its settings, where it lives on disk, how it ended and what it measured. Its live curves are in
// the RunMetricsStore under the same id.
#include <QString>
#include <cstdint>

#include "pipeline/run_config.h"

namespace tessera::widgets {

struct SessionRun {
  enum class Status { Queued, Running, Paused, Finished, Failed, Cancelled };

  int id = 0;
  QString name;  // "tesseraq W2 g32 #3"
  pipeline::RunConfig config;
  QString run_dir;
  Status status = Status::Queued;
  QString error;  // why it failed
  QString calibration_sha256;
  QString eval_text;              // the text its perplexity was measured on ("" = not evaluated)
  double perplexity = 0;          // 0 = not evaluated
  double seconds = 0;             // quantization wall time
  double peak_memory_bytes = 0;   // GPU when it ran on one, else process resident memory
  std::int64_t export_bytes = 0;  // size of its last export, 0 = not exported
  QString export_path;

  bool finished() const { return status == Status::Finished; }
};

QString statusName(SessionRun::Status status);
SessionRun::Status statusFromName(const QString& name);  // unknown names read as Failed
// A short name for a run's settings: "tesseraq W2 g32", "awq W4 per-channel A8".
QString describeConfig(const pipeline::RunConfig& config);

}  // namespace tessera::widgets
