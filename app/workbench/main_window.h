#pragma once
// The workbench window: File menu (model file/folder, tokenizer), the model's architecture on the
// left, the evaluation panel and its live plot on the right, the log below.
#include <QMainWindow>
#include <QString>
#include <memory>
#include <optional>

#include "api/model_jobs.h"
#include "metrics_store.h"

class QLabel;

namespace tessera::widgets {
class ArchitectureView;
class EvalPanel;
class LogPane;
class PerplexityPlot;
class QtLogSink;
}  // namespace tessera::widgets

namespace tessera::workbench {

class EvalController;

class MainWindow : public QMainWindow {
  Q_OBJECT

 public:
  explicit MainWindow(QWidget* parent = nullptr);
  ~MainWindow() override;

  // With dialogs off (offscreen, screenshots, tests) errors are logged only, never shown modally.
  void setDialogsEnabled(bool enabled) { dialogs_enabled_ = enabled; }

  // Each returns false after reporting the error (log, and a message box when dialogs are on).
  bool openModel(const QString& path);
  bool openTokenizer(const QString& path);
  void setTextPath(const QString& path);
  // Reopens the last model, tokenizer and text file from QSettings (those that still exist).
  void restoreSession();
  // Starts an evaluation with the panel's settings; false if it could not start.
  bool runEvaluation();

  EvalController* evalController() const { return controller_; }
  widgets::ArchitectureView* architectureView() const { return architecture_; }
  widgets::EvalPanel* evalPanel() const { return eval_panel_; }
  widgets::PerplexityPlot* perplexityPlot() const { return plot_; }
  widgets::LogPane* logPane() const { return log_pane_; }
  const std::optional<api::ModelSummary>& model() const { return model_; }
  QString tokenizerPath() const { return tokenizer_path_; }

 private:
  void buildMenus();
  void buildCentralArea();
  void chooseModelFile();
  void chooseModelFolder();
  void chooseTokenizer();
  void showAbout();
  void reportError(const QString& title, const QString& message);
  void updateTitle();
  QString dialogStartDir(const char* key) const;

  std::shared_ptr<widgets::MetricsStore> metrics_;
  std::shared_ptr<widgets::QtLogSink> log_sink_;
  EvalController* controller_ = nullptr;
  widgets::ArchitectureView* architecture_ = nullptr;
  widgets::EvalPanel* eval_panel_ = nullptr;
  widgets::PerplexityPlot* plot_ = nullptr;
  widgets::LogPane* log_pane_ = nullptr;
  QLabel* status_model_ = nullptr;
  std::optional<api::ModelSummary> model_;
  QString tokenizer_path_;  // "" = the one found beside the model
  bool dialogs_enabled_ = true;
};

}  // namespace tessera::workbench
