#pragma once
// A cancellation flag shared between the thread that runs a job and the one that may stop it.
// Long loops in core poll it between steps and throw tessera::Cancelled.
#include <atomic>
#include <memory>

#include "util/error.h"

namespace tessera {

class StopToken {
 public:
  StopToken() : flag_(std::make_shared<std::atomic<bool>>(false)) {}
  void request_stop() const { flag_->store(true); }
  bool stop_requested() const { return flag_->load(); }
  void throw_if_stopped() const {
    if (stop_requested()) throw Cancelled();
  }

 private:
  std::shared_ptr<std::atomic<bool>> flag_;
};

}  // namespace tessera
