#pragma once
// Start, pause, resume and cancel of the current run, and "Compare baselines" (RTN, AWQ,
// OmniQuant and TesseraQ with the same settings). Only shows state and emits requests; the main
// window drives the RunController.
#include <QWidget>

class QPushButton;

namespace tessera::widgets {

class RunControls : public QWidget {
  Q_OBJECT

 public:
  enum class State { Idle, Running, Paused };
  explicit RunControls(QWidget* parent = nullptr);

  void setState(State state);
  void setCanStart(bool can_start);  // valid settings and a model
  QPushButton* startButton() const { return start_; }

 signals:
  void startRequested();
  void compareRequested();
  void pauseRequested();
  void resumeRequested();
  void cancelRequested();

 private:
  void update();

  QPushButton* start_ = nullptr;
  QPushButton* compare_ = nullptr;
  QPushButton* pause_ = nullptr;
  QPushButton* cancel_ = nullptr;
  State state_ = State::Idle;
  bool can_start_ = false;
};

}  // namespace tessera::widgets
