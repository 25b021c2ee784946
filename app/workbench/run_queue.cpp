#include "run_queue.h"

#include <QDateTime>
#include <algorithm>

#include "qt_text.h"
#include "util/error.h"
#include "util/log.h"

namespace tessera::workbench {

namespace {
using widgets::utf8;
}  // namespace

RunQueue::RunQueue(RunExecutor* runs, EvalExecutor* evals, QObject* parent)
    : QObject(parent), executor_(runs), evals_(evals) {
  using Status = widgets::SessionRun::Status;
  connect(executor_, &RunExecutor::started, this, [this](int id) { setStatus(id, Status::Running); });
  connect(executor_, &RunExecutor::paused, this, [this](int id) { setStatus(id, Status::Paused); });
  connect(executor_, &RunExecutor::resumed, this, [this](int id) { setStatus(id, Status::Running); });
  connect(executor_, &RunExecutor::finished, this, [this](const RunOutcome& o) {
    if (auto* r = findRun(o.run_id)) {
      r->status = Status::Finished;
      r->run_dir = o.run_dir;
      r->calibration_sha256 = o.calibration_sha256;
      r->seconds = o.seconds;
      r->perplexity = o.perplexity;
      r->peak_memory_bytes = o.peak_memory_bytes;
      logger()->info("{} finished in {:.1f} s{}", utf8(r->name), o.seconds,
                     o.perplexity > 0 ? ", perplexity " + std::to_string(o.perplexity) : std::string());
    }
    runEnded(o.run_id);
  });
  connect(executor_, &RunExecutor::failed, this, [this](int id, const QString& message) {
    auto* r = findRun(id);
    if (r) {
      r->status = Status::Failed;
      r->error = message;
      failures_ << tr("%1: %2").arg(r->name, message);
    }
    logger()->error("{} failed: {}", r ? utf8(r->name) : std::string("run"), utf8(message));
    runEnded(id);
  });
  connect(executor_, &RunExecutor::cancelled, this, [this](int id) {
    setStatus(id, Status::Cancelled);
    logger()->warn("run cancelled");
    runEnded(id);
  });

  // The reference evaluation that precedes a comparison.
  connect(evals_, &EvalExecutor::finished, this, [this](const api::EvalReport& report) {
    if (!reference_pending_) return;
    reference_pending_ = false;
    setReference(report.perplexity, QString::fromStdString(report.text_path));
    startNext();
  });
  connect(evals_, &EvalExecutor::failed, this, [this](const QString& message) {
    if (!reference_pending_) return;
    reference_pending_ = false;  // the comparison goes on without its reference line
    logger()->warn("the unquantized model's perplexity is not available: {}", utf8(message));
    startNext();
  });
  connect(evals_, &EvalExecutor::cancelled, this, [this] {
    if (!reference_pending_) return;
    reference_pending_ = false;
    cancelQueued();
    emit changed();
    emit queueFinished(true, {});
  });
}

widgets::SessionRun* RunQueue::findRun(int id) {
  for (auto& r : runs_)
    if (r.id == id) return &r;
  return nullptr;
}

bool RunQueue::isBusy() const { return executor_->isRunning() || !queue_.empty() || reference_pending_; }

void RunQueue::setReference(double perplexity, const QString& text) {
  reference_ppl_ = perplexity;
  reference_text_ = text;
  emit changed();
}

QString RunQueue::newRunDir(const pipeline::RunConfig& c, int id) const {
  const QString group = c.weight.group_size > 0 ? QString("g%1").arg(c.weight.group_size) : QString("pc");
  const QString name = QString("%1-%2-w%3%4%5-%6")
                           .arg(QDateTime::currentDateTime().toString("yyyyMMdd-HHmmss"))
                           .arg(QString::fromStdString(c.method))
                           .arg(c.weight.bits)
                           .arg(group)
                           .arg(c.act_bits ? QString("a%1").arg(c.act_bits) : QString())
                           .arg(id);
  return runs_root_ + "/" + name;
}

std::vector<int> RunQueue::enqueue(const std::vector<pipeline::RunConfig>& configs, const QString& eval_text,
                                   const std::optional<api::EvalRequest>& reference) {
  if (isBusy()) throw Error("a run is going; wait for it to end or cancel it first");
  failures_.clear();
  std::vector<int> ids;
  for (const auto& config : configs) {
    widgets::SessionRun r;
    r.id = next_run_id_++;
    r.config = config;
    r.name = QString("%1 #%2").arg(widgets::describeConfig(config)).arg(r.id);
    r.run_dir = newRunDir(config, r.id);
    r.eval_text = eval_text;
    r.status = widgets::SessionRun::Status::Queued;
    runs_.push_back(r);
    ids.push_back(r.id);
  }
  queue_.assign(ids.begin(), ids.end());
  emit changed();
  const bool reference_known = reference_ppl_ > 0 && reference_text_ == eval_text;
  if (reference && configs.size() > 1 && !eval_text.isEmpty() && !reference_known && !evals_->isRunning())
    reference_pending_ = evals_->start(*reference);
  if (!reference_pending_) startNext();
  return ids;
}

void RunQueue::resume(int run_id) {
  widgets::SessionRun* r = findRun(run_id);
  using Status = widgets::SessionRun::Status;
  if (!r || (r->status != Status::Cancelled && r->status != Status::Failed))
    throw Error("only a cancelled or failed run can be resumed");
  if (isBusy()) throw Error("a run is going; wait for it to end or cancel it first");
  // The core refuses, naming the difference, when the model, settings or calibration changed.
  r->status = Status::Queued;
  r->error.clear();
  resume_.insert(run_id);
  queue_ = {run_id};
  failures_.clear();
  emit changed();
  startNext();
}

void RunQueue::pause() { executor_->pause(); }
void RunQueue::resumePaused() { executor_->resume(); }

void RunQueue::cancel() {
  if (reference_pending_) evals_->cancel();
  cancelQueued();
  executor_->cancel();
  emit changed();
}

void RunQueue::cancelQueued() {
  for (int id : queue_)
    if (auto* r = findRun(id)) r->status = widgets::SessionRun::Status::Cancelled;
  queue_.clear();
}

int RunQueue::addRun(widgets::SessionRun run) {
  run.id = next_run_id_++;
  if (run.name.isEmpty()) run.name = QString("%1 #%2").arg(widgets::describeConfig(run.config)).arg(run.id);
  runs_.push_back(run);
  emit changed();
  return run.id;
}

void RunQueue::replaceRuns(std::vector<widgets::SessionRun> runs) {
  runs_ = std::move(runs);
  for (const auto& r : runs_) next_run_id_ = std::max(next_run_id_, r.id + 1);
  emit changed();
}

void RunQueue::setStatus(int run_id, widgets::SessionRun::Status status) {
  if (auto* r = findRun(run_id)) r->status = status;
  emit changed();
}

void RunQueue::startNext() {
  while (!queue_.empty()) {
    const int id = queue_.front();
    queue_.pop_front();
    widgets::SessionRun* r = findRun(id);
    if (!r) continue;
    RunJob job;
    job.run_id = id;
    job.config = r->config;
    job.run_dir = r->run_dir;
    job.resume = resume_.erase(id) > 0;
    job.eval_text = r->eval_text;
    logger()->info("starting {} in {}", utf8(r->name), utf8(r->run_dir));
    if (executor_->start(job)) return;
    r->status = widgets::SessionRun::Status::Failed;
    r->error = tr("the run executor was busy");
    failures_ << tr("%1: %2").arg(r->name, r->error);
  }
  emit changed();
}

void RunQueue::runEnded(int run_id) {
  const auto* r = findRun(run_id);
  const bool cancelled = r && r->status == widgets::SessionRun::Status::Cancelled;
  if (cancelled) cancelQueued();  // cancel stops the whole comparison, not only the run that was going
  emit changed();
  if (!queue_.empty()) {
    startNext();
    return;
  }
  const QStringList failures = failures_;
  failures_.clear();
  emit queueFinished(cancelled, failures);
}

}  // namespace tessera::workbench
