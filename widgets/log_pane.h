#pragma once
// The workbench's log: a read-only plain-text view that keeps the last lines and colours warnings
// and errors. Lines arrive through appendLine(), usually connected to QtLogSink::lineLogged.
#include <QPlainTextEdit>

namespace tessera::widgets {

class LogPane : public QPlainTextEdit {
  Q_OBJECT

 public:
  explicit LogPane(QWidget* parent = nullptr);

 public slots:
  void appendLine(int level, const QString& line);  // level: spdlog::level::level_enum
};

}  // namespace tessera::widgets
