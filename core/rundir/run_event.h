#pragma once
// Everything a quantization run reports, as plain data (no Qt, no torch), delivered to an
// EventSink. The CLI prints them; the worker sends them to the workbench as protocol messages, and
// every run records them in its events.jsonl (rundir/event_log.h; their JSON: rundir/event_json.h).
#include <cstdint>
#include <string>
#include <utility>

namespace tessera::rundir {

struct RunEvent {
  enum class Kind {
    RunStarted,     // message: summary; total_blocks
    BlockStarted,   // block
    StepLoss,       // block, step (of total_steps in this block), iteration, value = loss, gpu_memory_bytes
    StepSkipped,    // block, step, message: a non-finite loss was skipped; value = learning-rate factor now
    HardFraction,   // block, step, iteration (of total_iterations), value = hard fraction reached,
                    // before = the schedule's target (1 - soft fraction)
    LayerStats,     // block, layer, rel_weight_error, output_mse, flip_ratio, dst_* (DST scale factors)
    BlockFinished,  // block, value = output loss after, before = loss of plain RTN, seconds, eta
    RunFinished,    // seconds
    Memory,         // seconds since the run started, gpu_memory_bytes, rss_bytes (sampled by api::quantize)
    Evaluated,      // value = perplexity of the quantized model, message = the text, seconds (events.jsonl only)
    Log,            // message
  };
  Kind kind = Kind::Log;
  std::int64_t block = -1;
  std::int64_t total_blocks = 0;
  std::int64_t step = 0;
  std::int64_t total_steps = 0;  // optimisation steps this block will take (0 = no optimisation)
  std::int64_t iteration = 0;    // PAR iteration, 0-based
  std::int64_t total_iterations = 0;
  double gpu_memory_bytes = 0;  // allocated on the run's GPU (0 on CPU)
  double rss_bytes = 0;         // resident memory of the process running the job
  std::string layer;
  std::string message;
  double value = 0;
  double before = 0;
  double rel_weight_error = 0, output_mse = 0, flip_ratio = 0;
  double dst_min = 1, dst_max = 1, dst_std = 0;  // DST factors 2*rsig(v) of the layer (1 = untouched)
  double seconds = 0, eta_seconds = 0;

  static RunEvent log(std::int64_t block, std::string text) {
    RunEvent e;
    e.kind = Kind::Log;
    e.block = block;
    e.message = std::move(text);
    return e;
  }
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

}  // namespace tessera::rundir
