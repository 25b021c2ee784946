#pragma once
// An spdlog sink that hands each formatted line to Qt as a signal. spdlog calls sink_it_() on
// whichever thread logged; the sink only formats and emits, and Qt queues the signal to receivers
// that live on the GUI thread, so no widget is touched from another thread.
#include <spdlog/sinks/base_sink.h>

#include <QObject>
#include <QString>
#include <mutex>

namespace tessera::widgets {

class QtLogSink : public QObject, public spdlog::sinks::base_sink<std::mutex> {
  Q_OBJECT

 public:
  explicit QtLogSink(QObject* parent = nullptr);

 signals:
  // `level` is an spdlog::level::level_enum value; `line` has no trailing newline. Connect with
  // the default (auto) connection: receivers on another thread get it queued.
  void lineLogged(int level, const QString& line);

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override;
  void flush_() override {}
};

}  // namespace tessera::widgets
