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

#include "methods/method_registry.h"
#include "pipeline/memory_forecast.h"
#include "pipeline/run_presets.h"
#include "qt_text.h"
#include "quant/grid_target.h"
#include "util/log.h"

namespace tessera::widgets {

namespace {

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
  for (const auto& m : methods::methods()) {
    method_->addItem(QString::fromStdString(m.label), QString::fromStdString(m.id));
    method_->setItemData(method_->count() - 1, QString::fromStdString(m.help), Qt::ToolTipRole);
  }
  wbits_ = spin(0, 16, base_.weight.bits);
  group_ = spin(0, 1 << 20, static_cast<int>(base_.weight.group_size));
  group_->setSpecialValueText(tr("per channel"));  // shown for 0
  symmetric_ = new QCheckBox(tr("symmetric"));
  target_ = new QComboBox;
  target_->addItem(tr("none (fp32 scales)"), QString());
  for (const auto& t : quant::grid_targets())
    target_->addItem(QString::fromStdString(t.id), QString::fromStdString(t.id));
  target_->setToolTip(
      tr("Quantize onto exactly what one GGUF block type stores (bits, group size, fp16 "
         "scales), so that the GGUF export of the same name is bit-exact"));
  for (int i = 1; i < target_->count(); ++i)
    target_->setItemData(i, QString::fromStdString(quant::grid_targets()[static_cast<std::size_t>(i - 1)].description),
                         Qt::ToolTipRole);
  abits_ = spin(0, 16, base_.act_bits);
  abits_->setSpecialValueText(tr("none (A16)"));
  samples_ = spin(0, 1 << 24, static_cast<int>(base_.samples));
  seq_len_ = spin(0, 1 << 20, static_cast<int>(base_.seq_len));
  for (const auto& m : methods::methods())
    for (const auto& st : m.settings)
      if (st.in_form) method_fields_.push_back({&m, &st, makeMethodEditor(st)});
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

  editors_ = {{"method", method_},   {"wbits", wbits_},
              {"target", target_},   {"group", group_},
              {"abits", abits_},     {"samples", samples_},
              {"seq_len", seq_len_}, {"seed", seed_},
              {"device", device_},   {"train_dtype", train_dtype_},
              {"batch", batch_}};
  for (const auto& f : method_fields_) editors_[QString::fromStdString(f.method->id + "." + f.setting->key)] = f.editor;

  auto* form = new QFormLayout;
  form->setFieldGrowthPolicy(QFormLayout::AllNonFixedFieldsGrow);
  form->addRow(tr("Method"), method_);
  auto* bits_row = new QHBoxLayout;
  bits_row->addWidget(wbits_);
  bits_row->addWidget(symmetric_);
  form->addRow(tr("Weight bits"), bits_row);
  form->addRow(tr("Group size"), group_);
  form->addRow(tr("GGUF grid"), target_);
  form->addRow(tr("Activation bits"), abits_);
  form->addRow(tr("Samples"), samples_);
  form->addRow(tr("Sequence length"), seq_len_);
  for (const auto& f : method_fields_) form->addRow(QString::fromStdString(f.setting->label), f.editor);
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

  for (const auto& f : method_fields_) showMethodField(f, base_);
  for (QComboBox* c : {method_, device_, train_dtype_, target_})
    connect(c, &QComboBox::currentTextChanged, this, &RunPanel::revalidate);
  for (QSpinBox* s : {wbits_, group_, abits_, samples_, seq_len_, seed_, batch_})
    connect(s, &QSpinBox::valueChanged, this, &RunPanel::revalidate);
  connect(symmetric_, &QCheckBox::toggled, this, &RunPanel::revalidate);
  for (const auto& f : method_fields_) {
    if (auto* c = qobject_cast<QComboBox*>(f.editor))
      connect(c, &QComboBox::currentTextChanged, this, &RunPanel::revalidate);
    if (auto* sb = qobject_cast<QSpinBox*>(f.editor)) connect(sb, &QSpinBox::valueChanged, this, &RunPanel::revalidate);
    if (auto* e = qobject_cast<QLineEdit*>(f.editor)) connect(e, &QLineEdit::textChanged, this, &RunPanel::revalidate);
    if (auto* b = qobject_cast<QCheckBox*>(f.editor)) connect(b, &QCheckBox::toggled, this, &RunPanel::revalidate);
  }

  method_->setCurrentIndex(method_->findData(QString::fromStdString(base_.method)));
  updateMethodFields();
  revalidate();
}

// The editor of a method's setting, by its type; Int spin boxes reach one below the range so that
// a value under it is refused with the reason (unless the lowest value has a text of its own).
QWidget* RunPanel::makeMethodEditor(const methods::Setting& s) {
  QWidget* w = nullptr;
  switch (s.type) {
    case methods::SettingType::Int: {
      const double lo = s.min_text.empty() ? s.min - 1 : s.min;
      auto* sb = spin(static_cast<int>(std::clamp<double>(lo, INT_MIN, INT_MAX)),
                      static_cast<int>(std::clamp<double>(s.max, INT_MIN, INT_MAX)), 0);
      if (!s.min_text.empty()) sb->setSpecialValueText(QString::fromStdString(s.min_text));
      w = sb;
      break;
    }
    case methods::SettingType::Number:
      w = new QLineEdit;
      break;
    case methods::SettingType::Flag:
      w = new QCheckBox;
      break;
    case methods::SettingType::Choice:
    case methods::SettingType::Text: {
      auto* c = new QComboBox;
      c->setEditable(s.type == methods::SettingType::Text);  // a Text's choices are suggestions
      for (const auto& v : s.choices) c->addItem(QString::fromStdString(v), QString::fromStdString(v));
      w = c;
      break;
    }
  }
  w->setToolTip(QString::fromStdString(s.help));
  return w;
}

void RunPanel::readMethodField(const MethodField& f, pipeline::RunConfig& c) const {
  const auto& id = f.method->id;
  const auto& key = f.setting->key;
  if (auto* sb = qobject_cast<QSpinBox*>(f.editor)) {
    c.settings.set(id, key, static_cast<std::int64_t>(sb->value()));
  } else if (auto* e = qobject_cast<QLineEdit*>(f.editor)) {
    bool ok = false;
    if (const double v = e->text().toDouble(&ok); ok) c.settings.set(id, key, v);  // else unreadableField()
  } else if (auto* b = qobject_cast<QCheckBox*>(f.editor)) {
    c.settings.set(id, key, b->isChecked());
  } else if (auto* cb = qobject_cast<QComboBox*>(f.editor)) {
    c.settings.set(id, key, utf8(cb->currentText().trimmed()));
  }
}

void RunPanel::showMethodField(const MethodField& f, const pipeline::RunConfig& c) {
  const auto& id = f.method->id;
  const auto& key = f.setting->key;
  if (auto* sb = qobject_cast<QSpinBox*>(f.editor))
    sb->setValue(static_cast<int>(std::clamp<std::int64_t>(c.settings.integer(id, key), INT_MIN, INT_MAX)));
  else if (auto* e = qobject_cast<QLineEdit*>(f.editor))
    e->setText(QString::fromStdString(c.settings.to_text(id, key)));
  else if (auto* b = qobject_cast<QCheckBox*>(f.editor))
    b->setChecked(c.settings.flag(id, key));
  else if (auto* cb = qobject_cast<QComboBox*>(f.editor))
    cb->setCurrentText(QString::fromStdString(c.settings.text(id, key)));
}

std::pair<QWidget*, QString> RunPanel::unreadableField() const {
  for (const auto& f : method_fields_)
    if (auto* e = qobject_cast<QLineEdit*>(f.editor)) {
      bool ok = false;
      e->text().toDouble(&ok);
      if (!ok) return {e, tr("%1: \"%2\" is not a number").arg(QString::fromStdString(f.setting->label), e->text())};
    }
  return {nullptr, QString()};
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
  c.weight.bits = wbits_->value();
  c.weight.group_size = group_->value();
  c.weight.symmetric = symmetric_->isChecked();
  c.target = utf8(target_->currentData().toString());
  c.weight.scale_bits = 0;                                  // fp32 scales unless a target says otherwise
  if (quant::find_grid_target(c.target)) c.apply_target();  // the target's grid, whatever the fields say
  c.act_bits = abits_->value();
  c.samples = samples_->value();
  c.seq_len = seq_len_->value();
  for (const auto& f : method_fields_) readMethodField(f, c);
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
  wbits_->setValue(c.weight.bits);
  group_->setValue(static_cast<int>(c.weight.group_size));
  symmetric_->setChecked(c.weight.symmetric);
  target_->setCurrentIndex(std::max(0, target_->findData(QString::fromStdString(c.target))));
  abits_->setValue(c.act_bits);
  samples_->setValue(static_cast<int>(c.samples));
  seq_len_->setValue(static_cast<int>(c.seq_len));
  for (const auto& f : method_fields_) showMethodField(f, c);
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
  // A method's fields are enabled while the run uses it: its own, and those of the method it
  // starts from (OmniQuant's settings drive TesseraQ's OmniQuant initialisation).
  const auto c = config();
  for (const auto& f : method_fields_) f.editor->setEnabled(c.uses_method(f.method->id));
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
  std::vector<QWidget*> culprits;
  bool settings_valid = false;  // the settings themselves, whatever the data paths say
  // A number field whose text is not a number never reaches the config: say so here.
  const auto [unreadable, why] = unreadableField();
  if (unreadable) {
    error = why;
    culprits.push_back(unreadable);
  } else {
    pipeline::RunConfig c = config();
    // Paths are the data panel's business; check the settings with placeholders, then the paths.
    const bool no_model = c.model.empty(), no_calib = c.calib.empty();
    if (no_model) c.model = "-";
    if (no_calib) c.calib = "-";
    const auto issues = c.issues();
    if (issues.empty()) {
      settings_valid = true;
      if (no_model)
        error = tr("Open a model to start a run (File > Open Model File...).");
      else if (no_calib)
        error = tr("Choose a calibration text in the model and data panel.");
    } else {
      error = QString::fromStdString(issues.front().message);
      // Each issue names its setting: outline the editors they mean.
      for (const auto& issue : issues)
        if (QWidget* w = editor(QString::fromStdString(issue.key))) culprits.push_back(w);
    }
  }
  for (QWidget* w : culprits) w->setStyleSheet("border: 1px solid #c62828;");
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
