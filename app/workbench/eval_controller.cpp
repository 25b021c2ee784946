#include "eval_controller.h"

#include <QMetaObject>
#include <QThread>
#include <exception>

#include "perplexity_plot.h"
#include "util/error.h"

namespace tessera::workbench {

EvalController::EvalController(std::shared_ptr<widgets::MetricsStore> store, QObject* parent)
    : QObject(parent), store_(std::move(store)) {
  qRegisterMetaType<api::EvalRequest>();
  qRegisterMetaType<api::EvalReport>();
  qRegisterMetaType<api::EvalProgress>();
}

EvalController::~EvalController() {
  if (!thread_) return;
  // Queued results still in flight are dropped with this object (Qt removes its posted events).
  stop_.request_stop();
  thread_->wait();
  delete thread_;
}

bool EvalController::start(const api::EvalRequest& request) {
  if (thread_) return false;
  stop_ = StopToken();  // a token stays triggered once stopped; every run gets a fresh one
  if (store_) store_->clear();

  // The worker gets copies of everything it needs, never a widget. It reports back by posting
  // lambdas to this object's thread; QObject::~QObject discards those not yet run, and the
  // destructor joins the worker first, so `this` outlives every post.
  const StopToken stop = stop_;
  const std::shared_ptr<widgets::MetricsStore> store = store_;
  thread_ = QThread::create([this, request, stop, store] {
    auto post = [this](auto fn) { QMetaObject::invokeMethod(this, std::move(fn), Qt::QueuedConnection); };
    try {
      const api::EvalReport report = api::evaluate_perplexity(
          request,
          [&](const api::EvalProgress& p) {
            if (store && p.stage == "evaluating")
              store->append(widgets::PerplexityPlot::kSeries, static_cast<double>(p.windows_done),
                            p.running_perplexity);
            post([this, p] { emit progress(p); });
          },
          stop);
      post([this, report] {
        finishRun();
        emit finished(report);
      });
    } catch (const Cancelled&) {
      post([this] {
        finishRun();
        emit cancelled();
      });
    } catch (const std::exception& e) {
      // tessera::Error carries a message meant for the user; anything else (a libtorch error) is
      // shown as-is rather than taking the application down.
      const QString message = QString::fromStdString(e.what());
      post([this, message] {
        finishRun();
        emit failed(message);
      });
    }
  });
  thread_->setObjectName("tessera-eval");
  thread_->start();
  emit started();
  return true;
}

void EvalController::cancel() {
  if (thread_) stop_.request_stop();
}

void EvalController::finishRun() {
  // The worker posted its last event just before returning, so this wait is momentary.
  thread_->wait();
  delete thread_;
  thread_ = nullptr;
}

}  // namespace tessera::workbench
