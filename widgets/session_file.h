#pragma once
// The workbench session file (JSON, *.tessera-session): every run with its settings, results and
// recorded curves, so that closing the window loses nothing. Run directories stay where they are;
// the file refers to them by path.
#include <QString>
#include <vector>

#include "run_metrics_store.h"
#include "session_run.h"
#include "worker_endpoint.h"

namespace tessera::widgets {

struct Session {
  std::vector<SessionRun> runs;
  std::vector<std::pair<int, RunTrace>> traces;  // by run id
  double reference_perplexity = 0;               // the unquantized model on the evaluation text, 0 = unknown
  QString model, tokenizer, calib, eval_text;    // paths on the worker's host
  WorkerEndpoint worker;                         // where the session's jobs run
};

// Both throw tessera::Error naming the file and what is wrong with it.
void saveSession(const QString& path, const Session& session);
Session loadSession(const QString& path);

}  // namespace tessera::widgets
