#include "run_panel.h"

#include <QCheckBox>
#include <QComboBox>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QLabel>
#include <QLineEdit>
#include <QMenu>
#include <QSpinBox>
#include <QThread>
#include <QToolButton>
#include <QVBoxLayout>
#include <algorithm>
#include <climits>

#include "pipeline/memory_forecast.h"
#include "pipeline/run_presets.h"
#include "quant/grid_target.h"
#include "util/log.h"

namespace tessera::widgets {

namespace {
std::string utf8(const QString& s) { return s.toUtf8().toStdString(); }

// Spin boxes accept more than validate() does, so that an out-of-range value is refused with
// validate()'s reason instead of being clamped silently.
QSpinBox* spin(int lo, int hi, int value) {
  auto* s = new QSpinBox;
  s->setRange(lo, hi);
  s->setValue(value);
  s->setKeyboardTracking(false);
  return s;
}
}  // namespace

RunPanel::RunPanel(QWidget* parent) : QWidget(parent) {
  method_ = new QComboBox;
  method_->addItem(tr("RTN (round to nearest)"), "rtn");
  method_->addItem(tr("AWQ"), "awq");
  method_->addItem(tr("OmniQuant"), "omniquant");
  method_->addItem(tr("TesseraQ (PAR + DST)"), "tesseraq");
  init_ = new QComboBox;
  for (const char* i : {"awq", "omniquant", "none"}) init_->addItem(i, i);
  wbits_ = spin(0, 16, base_.weight.bits);
  group_ = spin(0, 1 << 20, static_cast<int>(base_.weight.group_size));
  group_->setSpecialValueText(tr("per channel"));  // shown for 0
  symmetric_ = new QCheckBox(tr("symmetric"));
  target_ = new QComboBox;
  target_->addItem(tr("none (fp32 scales)"), QString());
  for (const auto& t : quant::grid_targets())
    target_->addItem(QString::fromStdString(t.id), QString::fromStdString(t.id));
  target_->setToolTip(
      tr("Quantize onto exactly what one GGUF block type stores (bits, groups of 32, fp16 "
         "scales), so that the GGUF export of the same name is bit-exact"));
  for (int i = 1; i < target_->count(); ++i)
    target_->setItemData(i, QString::fromStdString(quant::grid_targets()[static_cast<std::size_t>(i - 1)].description),
                         Qt::ToolTipRole);
  abits_ = spin(0, 16, base_.act_bits);
  abits_->setSpecialValueText(tr("none (A16)"));
  samples_ = spin(0, 1 << 24, static_cast<int>(base_.samples));
  seq_len_ = spin(0, 1 << 20, static_cast<int>(base_.seq_len));
  schedule_ = new QComboBox;
  schedule_->setEditable(true);
  schedule_->addItems({"paper20", "paper10", "0.5,0.2,0"});
  schedule_->setToolTip(tr("PAR soft fractions: paper20, paper10, or a non-increasing comma list in [0, 1)"));
  steps_ = spin(-1, 1 << 24, static_cast<int>(base_.tq_steps));
  lr_ = new QLineEdit(QString::number(base_.tq_lr));
  scale_lr_ = new QLineEdit(QString::number(base_.tq_scale_lr));
  oq_epochs_ = spin(0, 1 << 20, static_cast<int>(base_.oq_epochs));
  oq_epochs_->setSpecialValueText(tr("auto (40 at 2 bits, else 20)"));
  oq_lwc_lr_ = new QLineEdit(QString::number(base_.oq_lwc_lr));
  seed_ = spin(0, INT_MAX, static_cast<int>(base_.seed));
  device_ = new QComboBox;
  device_->setEditable(true);
  device_->addItems({"cpu", "cuda", "cuda:0", "cuda:1"});
  train_dtype_ = new QComboBox;
  train_dtype_->addItems({"auto", "fp32", "bf16"});
  train_dtype_->setToolTip(tr("Matmul dtype while OmniQuant/TesseraQ train: auto = bf16 on CUDA, fp32 on the CPU"));
  batch_ = spin(0, 1 << 16, static_cast<int>(base_.batch_size));
  presets_ = new QToolButton;
  presets_->setText(tr("Presets"));
  presets_->setPopupMode(QToolButton::InstantPopup);
  presets_->setToolButtonStyle(Qt::ToolButtonTextOnly);
  buildPresetMenu();

  editors_ = {{"method", method_},
              {"tesseraq.init", init_},
              {"wbits", wbits_},
              {"target", target_},
              {"group", group_},
              {"abits", abits_},
              {"samples", samples_},
              {"seq_len", seq_len_},
              {"tesseraq.schedule", schedule_},
              {"tesseraq.steps", steps_},
              {"tesseraq.lr", lr_},
              {"tesseraq.scale_lr", scale_lr_},
              {"omniquant.epochs", oq_epochs_},
              {"omniquant.lwc_lr", oq_lwc_lr_},
              {"seed", seed_},
              {"device", device_},
              {"train_dtype", train_dtype_},
              {"batch", batch_}};

  auto* form = new QFormLayout;
  form->setFieldGrowthPolicy(QFormLayout::AllNonFixedFieldsGrow);
  form->addRow(tr("Method"), method_);
  form->addRow(tr("Initialisation"), init_);
  auto* bits_row = new QHBoxLayout;
  bits_row->addWidget(wbits_);
  bits_row->addWidget(symmetric_);
  form->addRow(tr("Weight bits"), bits_row);
  form->addRow(tr("Group size"), group_);
  form->addRow(tr("GGUF grid"), target_);
  form->addRow(tr("Activation bits"), abits_);
  form->addRow(tr("Samples"), samples_);
  form->addRow(tr("Sequence length"), seq_len_);
  form->addRow(tr("PAR schedule"), schedule_);
  form->addRow(tr("Steps / iteration"), steps_);
  form->addRow(tr("Rounding lr"), lr_);
  form->addRow(tr("DST scale lr"), scale_lr_);
  form->addRow(tr("OmniQuant epochs"), oq_epochs_);
  form->addRow(tr("OmniQuant LWC lr"), oq_lwc_lr_);
  form->addRow(tr("Seed"), seed_);
  form->addRow(tr("Device"), device_);
  form->addRow(tr("Training dtype"), train_dtype_);
  form->addRow(tr("Forward batch"), batch_);

  error_label_ = new QLabel;
  error_label_->setWordWrap(true);
  error_label_->setStyleSheet("color: #c62828;");
  error_label_->setVisible(false);
  forecast_label_ = new QLabel;
  forecast_label_->setWordWrap(true);
  forecast_label_->setVisible(false);

  auto* box = new QGroupBox(tr("Run settings"));
  auto* box_layout = new QVBoxLayout(box);
  auto* top = new QHBoxLayout;
  top->addStretch();
  top->addWidget(presets_);
  box_layout->addLayout(top);
  box_layout->addLayout(form);
  box_layout->addWidget(error_label_);
  box_layout->addWidget(forecast_label_);
  auto* outer = new QVBoxLayout(this);
  outer->setContentsMargins(0, 0, 0, 0);
  outer->addWidget(box);

  for (QComboBox* c : {method_, init_, schedule_, device_, train_dtype_, target_})
    connect(c, &QComboBox::currentTextChanged, this, &RunPanel::revalidate);
  for (QSpinBox* s : {wbits_, group_, abits_, samples_, seq_len_, steps_, oq_epochs_, seed_, batch_})
    connect(s, &QSpinBox::valueChanged, this, &RunPanel::revalidate);
  for (QLineEdit* e : {lr_, scale_lr_, oq_lwc_lr_}) connect(e, &QLineEdit::textChanged, this, &RunPanel::revalidate);
  connect(symmetric_, &QCheckBox::toggled, this, &RunPanel::revalidate);
  method_->setCurrentIndex(method_->findData(QString::fromStdString(base_.method)));
  updateMethodFields();
  revalidate();
}

void RunPanel::buildPresetMenu() {
  auto* menu = new QMenu(presets_);
  try {
    for (const std::string& name : pipeline::preset_names()) {
      const QString q = QString::fromStdString(name);
      menu->addAction(q, this, [this, q] { applyPreset(q); });
    }
  } catch (const std::exception& e) {
    // No presets folder: the menu says why instead of being empty.
    menu->addAction(tr("No presets: %1").arg(QString::fromStdString(e.what())))->setEnabled(false);
  }
  presets_->setMenu(menu);
}

bool RunPanel::applyPreset(const QString& name) {
  try {
    setConfig(pipeline::apply_preset(utf8(name), config()));
    logger()->info("preset {} applied", utf8(name));
    return true;
  } catch (const std::exception& e) {
    logger()->error("cannot apply preset {}: {}", utf8(name), e.what());
    return false;
  }
}

void RunPanel::setModelConfig(const std::optional<model::LlamaConfig>& config) {
  model_config_ = config;
  revalidate();
}

QString RunPanel::forecastText() const { return forecast_label_->isHidden() ? QString() : forecast_label_->text(); }

// The same forecast as `tessera plan` for these settings, on the machine's view of the files.
void RunPanel::updateForecast() {
  forecast_label_->setVisible(false);
  if (!model_config_ || !settings_valid_) return;
  try {
    const auto c = config();
    pipeline::ForecastOptions options;
    options.corpus_bytes = static_cast<double>(QFileInfo(calib_).size());
    options.cpu_threads = std::max(1, QThread::idealThreadCount());
    const auto f = pipeline::forecast_memory(c, *model_config_, options);
    QString text = tr("Memory forecast: %1 host").arg(QString::fromStdString(pipeline::format_bytes(f.host_bytes)));
    if (f.gpu_bytes > 0) text += tr(", %1 GPU").arg(QString::fromStdString(pipeline::format_bytes(f.gpu_bytes)));
    text += tr(" at the peak (%1)").arg(QString::fromStdString(f.gpu_bytes > 0 ? f.gpu_peak_phase : f.host_peak_phase));
    forecast_label_->setText(text);
    forecast_label_->setToolTip(QString::fromStdString(pipeline::format_memory_forecast(f)));
    forecast_label_->setVisible(true);
  } catch (const std::exception& e) {
    logger()->warn("memory forecast: {}", e.what());
  }
}

void RunPanel::setDataPaths(const QString& model, const QString& tokenizer, const QString& calib) {
  model_ = model;
  tokenizer_ = tokenizer;
  calib_ = calib;
  revalidate();
}

pipeline::RunConfig RunPanel::config() const {
  pipeline::RunConfig c = base_;
  c.model = utf8(model_);
  c.tokenizer = utf8(tokenizer_);
  c.calib = utf8(calib_);
  c.method = utf8(method_->currentData().toString());
  c.tq_init = utf8(init_->currentText());
  c.weight.bits = wbits_->value();
  c.weight.group_size = group_->value();
  c.weight.symmetric = symmetric_->isChecked();
  c.target = utf8(target_->currentData().toString());
  c.weight.scale_bits = 0;                                  // fp32 scales unless a target says otherwise
  if (quant::find_grid_target(c.target)) c.apply_target();  // the target's grid, whatever the fields say
  c.act_bits = abits_->value();
  c.samples = samples_->value();
  c.seq_len = seq_len_->value();
  c.tq_schedule = utf8(schedule_->currentText().trimmed());
  c.tq_steps = steps_->value();
  bool ok = false;
  if (const double v = lr_->text().toDouble(&ok); ok) c.tq_lr = v;
  if (const double v = scale_lr_->text().toDouble(&ok); ok) c.tq_scale_lr = v;
  c.oq_epochs = oq_epochs_->value();
  if (const double v = oq_lwc_lr_->text().toDouble(&ok); ok) c.oq_lwc_lr = v;
  c.seed = static_cast<std::uint64_t>(seed_->value());
  c.device = utf8(device_->currentText().trimmed());
  c.train_dtype = utf8(train_dtype_->currentText());
  c.batch_size = batch_->value();
  return c;
}

void RunPanel::setConfig(const pipeline::RunConfig& c) {
  loading_ = true;  // one validation at the end, not one per field
  base_ = c;
  method_->setCurrentIndex(std::max(0, method_->findData(QString::fromStdString(c.method))));
  init_->setCurrentText(QString::fromStdString(c.tq_init));
  wbits_->setValue(c.weight.bits);
  group_->setValue(static_cast<int>(c.weight.group_size));
  symmetric_->setChecked(c.weight.symmetric);
  target_->setCurrentIndex(std::max(0, target_->findData(QString::fromStdString(c.target))));
  abits_->setValue(c.act_bits);
  samples_->setValue(static_cast<int>(c.samples));
  seq_len_->setValue(static_cast<int>(c.seq_len));
  schedule_->setCurrentText(QString::fromStdString(c.tq_schedule));
  steps_->setValue(static_cast<int>(c.tq_steps));
  lr_->setText(QString::number(c.tq_lr));
  scale_lr_->setText(QString::number(c.tq_scale_lr));
  oq_epochs_->setValue(static_cast<int>(c.oq_epochs));
  oq_lwc_lr_->setText(QString::number(c.oq_lwc_lr));
  seed_->setValue(static_cast<int>(c.seed));
  device_->setCurrentText(QString::fromStdString(c.device));
  train_dtype_->setCurrentText(QString::fromStdString(c.train_dtype));
  batch_->setValue(static_cast<int>(c.batch_size));
  loading_ = false;
  revalidate();
}

QWidget* RunPanel::editor(const QString& key) const {
  const auto it = editors_.find(key);
  return it == editors_.end() ? nullptr : it->second;
}

void RunPanel::updateMethodFields() {
  const QString m = method_->currentData().toString();
  const bool tq = m == "tesseraq";
  for (QWidget* w : std::initializer_list<QWidget*>{init_, schedule_, steps_, lr_, scale_lr_}) w->setEnabled(tq);
  // OmniQuant's settings also drive TesseraQ's OmniQuant initialisation.
  const bool oq = m == "omniquant" || (tq && init_->currentText() == "omniquant");
  for (QWidget* w : std::initializer_list<QWidget*>{oq_epochs_, oq_lwc_lr_}) w->setEnabled(oq);
  // A GGUF grid target fixes bits, group size and symmetry: show its values, locked.
  if (const auto* t = quant::find_grid_target(utf8(target_->currentData().toString()))) {
    const QSignalBlocker b1(wbits_), b2(group_), b3(symmetric_);
    wbits_->setValue(t->spec.bits);
    group_->setValue(static_cast<int>(t->spec.group_size));
    symmetric_->setChecked(t->spec.symmetric);
  }
  const bool free_grid = target_->currentIndex() <= 0;
  for (QWidget* w : std::initializer_list<QWidget*>{wbits_, group_, symmetric_}) w->setEnabled(free_grid);
}

void RunPanel::revalidate() {
  if (loading_) return;
  updateMethodFields();
  for (const auto& [key, w] : editors_) w->setStyleSheet(QString());
  QString error;
  QWidget* culprit = nullptr;
  bool settings_valid = false;  // the settings themselves, whatever the data paths say
  // A learning rate that is not a number never reaches validate(): say so here.
  for (const auto& [edit, name] : {std::pair<QLineEdit*, QString>{lr_, tr("Rounding lr")},
                                   {scale_lr_, tr("DST scale lr")},
                                   {oq_lwc_lr_, tr("OmniQuant LWC lr")}}) {
    bool ok = false;
    edit->text().toDouble(&ok);
    if (!ok && error.isEmpty()) {
      error = tr("%1: \"%2\" is not a number").arg(name, edit->text());
      culprit = edit;
    }
  }
  if (error.isEmpty()) {
    pipeline::RunConfig c = config();
    // Paths are the data panel's business; check the settings with placeholders, then the paths.
    const bool no_model = c.model.empty(), no_calib = c.calib.empty();
    if (no_model) c.model = "-";
    if (no_calib) c.calib = "-";
    try {
      c.validate();
      settings_valid = true;
      if (no_model)
        error = tr("Open a model to start a run (File > Open Model File...).");
      else if (no_calib)
        error = tr("Choose a calibration text in the model and data panel.");
    } catch (const std::exception& e) {
      error = QString::fromStdString(e.what());
      // validate() names the field: outline the editor it means.
      QString best;
      for (const auto& [key, w] : editors_) {
        const bool hit = error.contains(key) || (key == "wbits" && error.contains("weight bits")) ||
                         (key == "group" && error.contains("group size"));
        if (hit && key.size() > best.size()) {
          best = key;
          culprit = w;
        }
      }
    }
  }
  if (culprit) culprit->setStyleSheet("border: 1px solid #c62828;");
  settings_valid_ = settings_valid;
  error_ = error;
  error_label_->setText(error);
  error_label_->setVisible(!error.isEmpty());
  updateForecast();
  emit validityChanged(error_.isEmpty());
}

void RunPanel::setDevices(const QStringList& ids) {
  if (ids.isEmpty()) return;
  const QString current = device_->currentText();
  const QSignalBlocker block(device_);
  device_->clear();
  device_->addItems(ids);
  device_->setCurrentText(ids.contains(current) ? current : ids.front());
  revalidate();
}

}  // namespace tessera::widgets
