#include "log_pane.h"

#include <spdlog/common.h>

#include <QFontDatabase>
#include <QScrollBar>
#include <QTextCharFormat>

namespace tessera::widgets {

LogPane::LogPane(QWidget* parent) : QPlainTextEdit(parent) {
  setReadOnly(true);
  setLineWrapMode(QPlainTextEdit::NoWrap);
  // Long runs log a lot; a bounded document keeps appends O(1) and memory flat.
  setMaximumBlockCount(5000);
  setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
  setPlaceholderText(tr("Log messages appear here."));
}

void LogPane::appendLine(int level, const QString& line) {
  QTextCharFormat format;
  if (level >= spdlog::level::err)
    format.setForeground(QColor(0xc6, 0x28, 0x28));
  else if (level == spdlog::level::warn)
    format.setForeground(QColor(0xb2, 0x6a, 0x00));
  else if (level <= spdlog::level::debug)
    format.setForeground(palette().color(QPalette::Disabled, QPalette::Text));
  else
    format.setForeground(palette().color(QPalette::Text));

  // Follow the tail only when the user has not scrolled up to read something.
  QScrollBar* bar = verticalScrollBar();
  const bool at_bottom = bar->value() == bar->maximum();
  QTextCursor cursor(document());
  cursor.movePosition(QTextCursor::End);
  if (!document()->isEmpty()) cursor.insertBlock();
  cursor.insertText(line, format);
  if (at_bottom) bar->setValue(bar->maximum());
}

}  // namespace tessera::widgets
