#pragma once
// How long the GUI thread's event loop was blocked: a 10 ms timer on the GUI thread; the longest
// gap between its ticks is the longest time nothing else could run there. The GUI tests require
// it to stay under 100 ms while a run or an evaluation works on its thread.
#include <QElapsedTimer>
#include <QString>
#include <QTimer>
#include <algorithm>

namespace tessera_test {

class EventLoopGapMeter {
 public:
  static constexpr int kTickMs = 10;

  EventLoopGapMeter() {
    timer_.setTimerType(Qt::PreciseTimer);
    QObject::connect(&timer_, &QTimer::timeout, &timer_, [this] {
      const qint64 now = clock_.elapsed();
      max_gap_ = std::max(max_gap_, now - last_tick_);
      last_tick_ = now;
      ++ticks_;
    });
  }
  EventLoopGapMeter(const EventLoopGapMeter&) = delete;
  EventLoopGapMeter& operator=(const EventLoopGapMeter&) = delete;

  void start() {
    last_tick_ = max_gap_ = 0;
    ticks_ = 0;
    clock_.start();
    timer_.start(kTickMs);
  }
  void stop() { timer_.stop(); }

  qint64 maxGapMs() const { return max_gap_; }
  int ticks() const { return ticks_; }
  qint64 elapsedMs() const { return clock_.elapsed(); }  // since start()
  // Empty when the loop ticked at least every other period and was never blocked for 100 ms.
  QString problem() const {
    if (ticks_ <= elapsedMs() / (2 * kTickMs)) return QStringLiteral("the 10 ms timer hardly ran");
    if (max_gap_ >= 100) return QString("the GUI thread was blocked for %1 ms").arg(max_gap_);
    return QString();
  }

 private:
  QTimer timer_;
  QElapsedTimer clock_;
  qint64 last_tick_ = 0, max_gap_ = 0;
  int ticks_ = 0;
};

}  // namespace tessera_test
