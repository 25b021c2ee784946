#include "run_event_recorder.h"

#include <algorithm>

#include "util/log.h"

namespace tessera::workbench {

using rundir::RunEvent;

RunEventRecorder::RunEventRecorder(std::shared_ptr<widgets::RunMetricsStore> store, int run_id)
    : store_(std::move(store)), run_id_(run_id) {
  store_->update(run_id_, [&](widgets::RunTrace& t) {
    t = widgets::RunTrace();
    t.progress.phase = "loading";
  });
}

void RunEventRecorder::setPhase(const std::string& phase) {
  store_->update(run_id_, [&](widgets::RunTrace& t) { t.progress.phase = phase; });
}

void RunEventRecorder::on_event(const RunEvent& e) {
  if (e.kind == RunEvent::Kind::Log) {
    // The pipeline logs its own lines (block -1) already; the methods' messages only come here.
    if (e.block >= 0) logger()->info("{}", e.message);
    return;
  }
  store_->update(run_id_, [&](widgets::RunTrace& t) {
    auto& p = t.progress;
    switch (e.kind) {
      case RunEvent::Kind::RunStarted:
        p.phase = "quantizing";
        p.total_blocks = e.total_blocks;
        break;
      case RunEvent::Kind::BlockStarted:
        // A resumed run reports its restored blocks again: one entry per block and layer.
        t.blocks.erase(std::remove_if(t.blocks.begin(), t.blocks.end(),
                                      [&](const widgets::BlockLoss& b) { return b.block == e.block; }),
                       t.blocks.end());
        t.layers.erase(std::remove_if(t.layers.begin(), t.layers.end(),
                                      [&](const eval::LayerStats& l) { return l.block == e.block; }),
                       t.layers.end());
        p.block = e.block;
        p.total_blocks = e.total_blocks;
        p.step = p.total_steps = p.iteration = p.total_iterations = 0;
        break;
      case RunEvent::Kind::StepLoss:
        p.block = e.block;
        p.step = e.step;
        p.total_steps = e.total_steps;
        p.iteration = e.iteration;
        p.total_iterations = e.total_iterations;
        t.steps.push_back({widgets::block_position(e.block, e.step, e.total_steps), e.train_loss, e.iteration});
        break;
      case RunEvent::Kind::StepSkipped:
        ++t.skipped_steps;
        break;
      case RunEvent::Kind::HardFraction:
        p.iteration = e.iteration;
        p.total_iterations = e.total_iterations;
        t.hardening.push_back(
            {widgets::block_position(e.block, e.step, e.total_steps), e.hard_fraction, e.target_hard_fraction});
        break;
      case RunEvent::Kind::LayerStats: {
        eval::LayerStats s;
        s.block = e.block;
        s.layer = e.layer;
        s.rel_weight_error = e.rel_weight_error;
        s.output_mse = e.output_mse;
        s.flip_ratio = e.flip_ratio;
        s.dst_min = e.dst_min;
        s.dst_max = e.dst_max;
        s.dst_std = e.dst_std;
        t.layers.push_back(s);
        break;
      }
      case RunEvent::Kind::BlockFinished:
        t.blocks.push_back({e.block, e.loss_rtn, e.loss, e.seconds});
        p.block = e.block;
        p.total_blocks = e.total_blocks;
        p.eta_seconds = e.eta_seconds;
        break;
      case RunEvent::Kind::RunFinished:
        p.phase = "quantized";
        p.eta_seconds = 0;
        break;
      case RunEvent::Kind::Memory:
        t.memory.push_back({e.elapsed_seconds, e.gpu_memory_bytes, e.rss_bytes});
        break;
      case RunEvent::Kind::Evaluated:  // the run's table row takes it (MainWindow::followRun)
        break;
      case RunEvent::Kind::Log:
        break;
    }
  });
}

}  // namespace tessera::workbench
