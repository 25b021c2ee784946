#pragma once
// Everything a quantization run reports, as plain data (no Qt, no torch), delivered to an
// EventSink. The CLI prints them; the GUI appends them to its metrics store from the worker thread.
#include <cstdint>
#include <string>

namespace tessera::pipeline {

struct RunEvent {
  enum class Kind {
    RunStarted,     // message: summary; total_blocks
    BlockStarted,   // block
    StepLoss,       // block, step, value = loss
    LayerStats,     // block, layer, rel_weight_error, output_mse, flip_ratio
    BlockFinished,  // block, value = output loss after, before = loss of plain RTN, seconds, eta
    RunFinished,    // seconds
    Log,            // message
  };
  Kind kind = Kind::Log;
  std::int64_t block = -1;
  std::int64_t total_blocks = 0;
  std::int64_t step = 0;
  std::string layer;
  std::string message;
  double value = 0;
  double before = 0;
  double rel_weight_error = 0, output_mse = 0, flip_ratio = 0;
  double seconds = 0, eta_seconds = 0;
};

class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void on_event(const RunEvent& event) = 0;  // called from the run's thread
};

// Discards everything; for callers that do not watch.
class NullEventSink : public EventSink {
 public:
  void on_event(const RunEvent&) override {}
};

}  // namespace tessera::pipeline
