#pragma once
// A model's architecture as a two-column tree (property, value) grouped into sections: file,
// dimensions, attention, positions, tokenizer and the runtime the model is evaluated on. A tree
// rather than a form so that later views can hang per-layer details (quantization state) below.
#include <QString>
#include <QTreeWidget>

#include "api/job_types.h"

namespace tessera::widgets {

class ArchitectureView : public QTreeWidget {
  Q_OBJECT

 public:
  explicit ArchitectureView(QWidget* parent = nullptr);

  void showModel(const api::ModelSummary& summary);
  void clearModel();
  // The tokenizer the next run uses (the one found beside the model or the one the user chose).
  void setTokenizer(const QString& path);
  // Where and in which precision the model runs; shown with the stored dtype.
  void setRuntime(const QString& device, const QString& dtype);

  // The value shown for a property, "" if absent; for tests and status texts.
  QString value(const QString& property) const;

 private:
  void addLayers(const model::LlamaConfig& config);
  QTreeWidgetItem* section(const QString& title);
  QTreeWidgetItem* row(QTreeWidgetItem* section, const QString& property, const QString& value,
                       const QString& tooltip = QString());

  QTreeWidgetItem* runtime_ = nullptr;
  QTreeWidgetItem* tokenizer_ = nullptr;
  QString device_ = "cpu", dtype_ = "fp32";
};

}  // namespace tessera::widgets
