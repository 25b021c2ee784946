#include "qt_log_sink.h"

#include <spdlog/pattern_formatter.h>

namespace tessera::widgets {

QtLogSink::QtLogSink(QObject* parent) : QObject(parent) {
  // The level is passed separately (the pane colours by it), so the line carries time and text;
  // the level name stays in the text so that copied log lines keep it.
  set_pattern_("%H:%M:%S.%e  %-7l %v");
}

void QtLogSink::sink_it_(const spdlog::details::log_msg& msg) {
  spdlog::memory_buf_t formatted;
  formatter_->format(msg, formatted);
  QString line = QString::fromUtf8(formatted.data(), static_cast<qsizetype>(formatted.size()));
  while (line.endsWith('\n') || line.endsWith('\r')) line.chop(1);
  emit lineLogged(static_cast<int>(msg.level), line);
}

}  // namespace tessera::widgets
