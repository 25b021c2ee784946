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
    StepLoss,       // block, step (of total_steps in this block), iteration, train_loss, gpu_memory_bytes
    StepSkipped,    // block, step, message: a non-finite loss was skipped; lr_factor
    HardFraction,   // block, step, iteration (of total_iterations), hard_fraction, target_hard_fraction
    LayerStats,     // block, layer, rel_weight_error, output_mse, flip_ratio, dst_* (DST scale factors)
    BlockFinished,  // block, loss_rtn, loss, seconds, eta_seconds
    RunFinished,    // seconds
    Memory,         // elapsed_seconds, gpu_memory_bytes, rss_bytes (sampled by api::quantize)
    Evaluated,      // perplexity, text_path, seconds (events.jsonl only)
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
  std::string message;              // a line for people (the log, the run's summary, why a step was skipped)
  double train_loss = 0;            // the method's training loss at this step (on the step's batch)
  double lr_factor = 1;             // the learning rates' factor after a skipped step (halved after 3 in a row)
  double hard_fraction = 0;         // TesseraQ: share of rounding decisions hardened so far
  double target_hard_fraction = 0;  // the schedule's share for this iteration (1 - soft fraction)
  // The block's output loss on the quantized chain with plain RTN weights and with the method's
  // (the names of RunSummary, stats/block_NNN.json and the GUI's traces).
  double loss_rtn = 0, loss = 0;
  double rel_weight_error = 0, output_mse = 0, flip_ratio = 0;
  double dst_min = 1, dst_max = 1, dst_std = 0;  // DST factors 2*rsig(v) of the layer (1 = untouched)
  double perplexity = 0;                         // of the quantized model on text_path
  std::string text_path;                         // the evaluated text file
  double seconds = 0;                            // how long the reported work took (a block, the run, an evaluation)
  double eta_seconds = 0;                        // estimated time to the run's end
  double elapsed_seconds = 0;                    // since the run started (when a memory sample was taken)

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
