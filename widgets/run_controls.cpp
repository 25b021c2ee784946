#include "run_controls.h"

#include <QGridLayout>
#include <QPushButton>

namespace tessera::widgets {

RunControls::RunControls(QWidget* parent) : QWidget(parent) {
  start_ = new QPushButton(tr("Start run"));
  start_->setDefault(true);
  compare_ = new QPushButton(tr("Compare baselines"));
  compare_->setToolTip(tr("Queue RTN, AWQ, OmniQuant and TesseraQ with these settings, each evaluated afterwards"));
  pause_ = new QPushButton(tr("Pause"));
  cancel_ = new QPushButton(tr("Cancel"));
  auto* grid = new QGridLayout(this);
  grid->setContentsMargins(0, 0, 0, 0);
  grid->addWidget(start_, 0, 0);
  grid->addWidget(compare_, 0, 1);
  grid->addWidget(pause_, 1, 0);
  grid->addWidget(cancel_, 1, 1);
  connect(start_, &QPushButton::clicked, this, &RunControls::startRequested);
  connect(compare_, &QPushButton::clicked, this, &RunControls::compareRequested);
  connect(pause_, &QPushButton::clicked, this, [this] {
    if (state_ == State::Paused)
      emit resumeRequested();
    else
      emit pauseRequested();
  });
  connect(cancel_, &QPushButton::clicked, this, &RunControls::cancelRequested);
  update();
}

void RunControls::setState(State state) {
  state_ = state;
  update();
}

void RunControls::setCanStart(bool can_start) {
  can_start_ = can_start;
  update();
}

void RunControls::update() {
  const bool idle = state_ == State::Idle;
  start_->setEnabled(idle && can_start_);
  compare_->setEnabled(idle && can_start_);
  pause_->setEnabled(!idle);
  pause_->setText(state_ == State::Paused ? tr("Resume") : tr("Pause"));
  cancel_->setEnabled(!idle);
}

}  // namespace tessera::widgets
