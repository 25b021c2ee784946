#include "architecture_view.h"

#include <QFileInfo>
#include <QHeaderView>
#include <QLocale>
#include <algorithm>

namespace tessera::widgets {
namespace {

QString number(std::int64_t n) { return QLocale(QLocale::English).toString(static_cast<qlonglong>(n)); }

// 260032 -> "260,032  (260.0 K)", 6738415616 -> "6,738,415,616 (6.74 B)"
QString parameter_text(std::int64_t n) {
  const double v = static_cast<double>(n);
  QString scaled;
  if (v >= 1e9)
    scaled = QString::number(v / 1e9, 'f', 2) + " B";
  else if (v >= 1e6)
    scaled = QString::number(v / 1e6, 'f', 2) + " M";
  else
    scaled = QString::number(v / 1e3, 'f', 1) + " K";
  return number(n) + "  (" + scaled + ")";
}

QString yes_no(bool b) { return b ? QObject::tr("yes") : QObject::tr("no"); }

}  // namespace

ArchitectureView::ArchitectureView(QWidget* parent) : QTreeWidget(parent) {
  setColumnCount(2);
  setHeaderLabels({tr("Property"), tr("Value")});
  setRootIsDecorated(true);
  setAlternatingRowColors(true);
  setUniformRowHeights(true);
  setSelectionMode(QAbstractItemView::SingleSelection);
  header()->setSectionResizeMode(0, QHeaderView::ResizeToContents);
  header()->setStretchLastSection(true);
  clearModel();
}

QTreeWidgetItem* ArchitectureView::section(const QString& title) {
  auto* item = new QTreeWidgetItem(this, {title});
  QFont bold = item->font(0);
  bold.setBold(true);
  item->setFont(0, bold);
  item->setFirstColumnSpanned(true);
  item->setExpanded(true);
  return item;
}

QTreeWidgetItem* ArchitectureView::row(QTreeWidgetItem* parent, const QString& property, const QString& value,
                                       const QString& tooltip) {
  auto* item = new QTreeWidgetItem(parent, {property, value});
  item->setToolTip(1, tooltip.isEmpty() ? value : tooltip);
  return item;
}

void ArchitectureView::clearModel() {
  clear();
  auto* placeholder = new QTreeWidgetItem(this, {tr("No model loaded"), tr("File > Open Model...")});
  placeholder->setDisabled(true);
  runtime_ = nullptr;
  tokenizer_ = nullptr;
}

void ArchitectureView::showModel(const api::ModelSummary& s) {
  clear();
  const auto& c = s.config;
  const QString path = QString::fromStdString(s.path);

  QTreeWidgetItem* model = section(tr("Model"));
  row(model, tr("Name"), QFileInfo(path).fileName(), path);
  row(model, tr("Format"), QString::fromStdString(s.format));
  row(model, tr("Architecture"), QString::fromStdString(c.architecture));
  row(model, tr("Parameters"), parameter_text(s.parameters));
  row(model, tr("Stored dtype"), QString::fromStdString(c.torch_dtype));

  QTreeWidgetItem* dims = section(tr("Dimensions"));
  row(dims, tr("Layers"), number(c.num_layers));
  row(dims, tr("Hidden size"), number(c.hidden_size));
  row(dims, tr("FFN size"), number(c.intermediate_size));
  row(dims, tr("Vocabulary"), number(c.vocab_size));
  row(dims, tr("Context"), number(c.max_position_embeddings));
  row(dims, tr("Tied embeddings"), yes_no(c.tie_word_embeddings));

  QTreeWidgetItem* attention = section(tr("Attention"));
  row(attention, tr("Heads"), number(c.num_heads));
  row(attention, tr("KV heads"), number(c.num_kv_heads),
      c.num_kv_heads < c.num_heads ? tr("grouped-query attention, %1 query heads per KV head")
                                         .arg(c.num_heads / std::max<std::int64_t>(1, c.num_kv_heads))
                                   : tr("multi-head attention"));
  row(attention, tr("Head dim"), number(c.head_dim));
  row(attention, tr("QKV bias"), yes_no(c.attention_bias));

  QTreeWidgetItem* positions = section(tr("Positions"));
  row(positions, tr("RoPE theta"), QString::number(c.rope_theta, 'g', 8));
  QString scaling = QString::fromStdString(c.rope_scaling.type);
  if (c.rope_scaling.type != "none") scaling += tr(" (factor %1)").arg(c.rope_scaling.factor);
  row(positions, tr("RoPE scaling"), scaling);
  row(positions, tr("RMSNorm eps"), QString::number(c.rms_norm_eps, 'g', 6));

  QTreeWidgetItem* tok = section(tr("Tokenizer"));
  tokenizer_ = row(tok, tr("File"), QString());
  setTokenizer(QString::fromStdString(s.tokenizer_path));
  row(tok, tr("BOS / EOS ids"), QString("%1 / %2").arg(c.bos_token_id).arg(c.eos_token_id));

  runtime_ = section(tr("Runtime"));
  row(runtime_, tr("Device"), device_);
  row(runtime_, tr("Compute dtype"), dtype_);

  addLayers(c);
  setCurrentItem(nullptr);  // no row looks selected until the user picks one
}

void ArchitectureView::addLayers(const model::LlamaConfig& c) {
  // The weight matrices of one decoder layer, [out x in] as stored; every layer has the same
  // shapes. These rows are where per-layer results (quantization error, bits) will go.
  struct Linear {
    const char* name;
    std::int64_t out, in;
  };
  const std::int64_t q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  const Linear linears[] = {{"q_proj", q, c.hidden_size},
                            {"k_proj", kv, c.hidden_size},
                            {"v_proj", kv, c.hidden_size},
                            {"o_proj", c.hidden_size, q},
                            {"gate_proj", c.intermediate_size, c.hidden_size},
                            {"up_proj", c.intermediate_size, c.hidden_size},
                            {"down_proj", c.hidden_size, c.intermediate_size}};
  std::int64_t per_layer = 2 * c.hidden_size;  // the two RMSNorm weights
  for (const Linear& l : linears) per_layer += l.out * l.in;
  if (c.attention_bias) per_layer += q + 2 * kv;

  QTreeWidgetItem* layers = section(tr("Decoder layers"));
  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    auto* layer = row(layers, tr("layer %1").arg(i), tr("%1 parameters").arg(number(per_layer)));
    for (const Linear& l : linears) row(layer, l.name, QString("%1 x %2").arg(number(l.out), number(l.in)));
    layer->setExpanded(i == 0);  // one open as an example; the rest stay compact
  }
}

void ArchitectureView::setTokenizer(const QString& path) {
  if (!tokenizer_) return;
  tokenizer_->setText(1, path.isEmpty() ? tr("(none beside the model)") : QFileInfo(path).fileName());
  tokenizer_->setToolTip(1, path);
}

void ArchitectureView::setRuntime(const QString& device, const QString& dtype) {
  device_ = device;
  dtype_ = dtype;
  if (!runtime_) return;
  runtime_->child(0)->setText(1, device);
  runtime_->child(1)->setText(1, dtype);
}

QString ArchitectureView::value(const QString& property) const {
  const auto found = findItems(property, Qt::MatchExactly | Qt::MatchRecursive, 0);
  return found.isEmpty() ? QString() : found.first()->text(1);
}

}  // namespace tessera::widgets
