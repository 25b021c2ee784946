#pragma once
// The perplexity of every evaluated run of the session on one chart: a bar per run in the
// method's colour, its value above it, and the unquantized model's perplexity as a dashed line
// when it was evaluated on the same text. Log scale when the values span more than a factor 8
// (2-bit RTN is often 50x worse than the rest).
#include <qcustomplot.h>

#include <QColor>
#include <QString>
#include <vector>

namespace tessera::widgets {

class SessionPerplexityPlot : public QCustomPlot {
  Q_OBJECT

 public:
  struct Bar {
    QString label;  // run name
    QColor color;
    double perplexity = 0;
  };

  explicit SessionPerplexityPlot(QWidget* parent = nullptr);

  void setBars(const std::vector<Bar>& bars, const QString& text_name);
  void setReference(double fp_perplexity);  // 0 = none
  int barCount() const { return static_cast<int>(bars_.size()); }

 private:
  void rebuild();

  std::vector<Bar> bars_;
  QString text_name_;
  double reference_ = 0;
  QCPTextElement* subtitle_ = nullptr;
};

}  // namespace tessera::widgets
