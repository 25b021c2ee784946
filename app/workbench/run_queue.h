#pragma once
// The session's quantization runs and the queue that runs them one after another: "Start run"
// queues one, "Compare baselines" several with the same settings (after the unquantized model's
// perplexity on the evaluation text, once per model and text: the comparison's reference line).
// A failed run is marked with its error and the queue goes on; a cancel stops the whole queue; a
// cancelled or failed run can be resumed from its last finished block. Jobs run through a
// RunExecutor and an EvalExecutor (worker processes in the workbench, stubs in the tests); the
// window only shows what this class holds.
#include <QObject>
#include <QString>
#include <QStringList>
#include <deque>
#include <optional>
#include <set>
#include <vector>

#include "job_executors.h"
#include "session_run.h"

namespace tessera::workbench {

class RunQueue : public QObject {
  Q_OBJECT

 public:
  RunQueue(RunExecutor* runs, EvalExecutor* evals, QObject* parent = nullptr);

  // Where new run directories go, on the worker's host.
  void setRunsRoot(const QString& folder) { runs_root_ = folder; }
  QString runsRoot() const { return runs_root_; }

  const std::vector<widgets::SessionRun>& runs() const { return runs_; }
  widgets::SessionRun* findRun(int id);
  bool isBusy() const;  // a run, a queued run or the reference evaluation
  bool isReferencePending() const { return reference_pending_; }

  // The unquantized model's perplexity and the text it was measured on (0 = unknown).
  double referencePerplexity() const { return reference_ppl_; }
  QString referenceText() const { return reference_text_; }
  void setReference(double perplexity, const QString& text);

  // Queues runs with these settings, each evaluated on `eval_text` ("" = not evaluated) after
  // quantizing. With several runs and a `reference` request, that evaluation runs first unless the
  // reference for `eval_text` is known. Returns the new runs' ids; throws tessera::Error when busy.
  std::vector<int> enqueue(const std::vector<pipeline::RunConfig>& configs, const QString& eval_text,
                           const std::optional<api::EvalRequest>& reference = std::nullopt);
  // Continues a cancelled or failed run from its last finished block; throws tessera::Error why not.
  void resume(int run_id);
  void pause();
  void resumePaused();
  // Cancels the running run (or the reference evaluation) and every queued run.
  void cancel();

  // Runs that did not come from the queue: added from disk (gets an id) or from a session file.
  int addRun(widgets::SessionRun run);
  void replaceRuns(std::vector<widgets::SessionRun> runs);

 signals:
  void changed();  // a run was added, or its status or results changed
  // The queue has emptied, whichever way: `failures` lists "run: why" for the runs that failed.
  void queueFinished(bool cancelled, const QStringList& failures);

 private:
  QString newRunDir(const pipeline::RunConfig& config, int id) const;
  void startNext();
  void runEnded(int run_id);
  void cancelQueued();
  void setStatus(int run_id, widgets::SessionRun::Status status);

  RunExecutor* executor_;
  EvalExecutor* evals_;
  QString runs_root_;
  std::vector<widgets::SessionRun> runs_;
  std::deque<int> queue_;  // run ids waiting for the executor
  std::set<int> resume_;   // queued runs that continue their run directory
  bool reference_pending_ = false;
  double reference_ppl_ = 0;
  QString reference_text_;
  QStringList failures_;
  int next_run_id_ = 1;
};

}  // namespace tessera::workbench
