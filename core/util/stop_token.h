#pragma once
// Cancel and pause flags shared between the thread that runs a job and the one that steers it.
// Long loops in core poll throw_if_stopped() between steps (every optimisation step, every
// calibration batch): it throws tessera::Cancelled after request_stop(), and while paused it
// waits there until resume() or request_stop(), so both are honoured within one step.
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "util/error.h"

namespace tessera {

class StopToken {
 public:
  StopToken() : state_(std::make_shared<State>()) {}
  void request_stop() const { state_->stop.store(true); }
  bool stop_requested() const { return state_->stop.load(); }
  void request_pause() const { state_->pause.store(true); }
  void resume() const { state_->pause.store(false); }
  bool pause_requested() const { return state_->pause.load(); }
  // True while the job's thread is waiting in a pause (for the controller to report "paused").
  bool is_paused() const { return state_->waiting.load(); }

  void throw_if_stopped() const {
    if (state_->pause.load() && !state_->stop.load()) {
      state_->waiting.store(true);
      // Polling keeps this header free of a condition variable that every copy would share;
      // 10 ms is far below one optimisation step and costs nothing while paused.
      while (state_->pause.load() && !state_->stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      state_->waiting.store(false);
    }
    if (stop_requested()) throw Cancelled();
  }

 private:
  struct State {
    std::atomic<bool> stop{false}, pause{false}, waiting{false};
  };
  std::shared_ptr<State> state_;
};

}  // namespace tessera
