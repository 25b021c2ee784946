#pragma once
// The settings of a quantization run: method, weight bits, group size, symmetric, activation bits,
// calibration samples and length, the methods' settings that their declarations put in the form
// (methods/<id>_settings.cpp: TesseraQ's init, PAR schedule, steps and learning rates, OmniQuant's
// epochs and LWC lr, ...; enabled while the run uses that method), seed, device, training dtype and
// batch; a Presets menu (resources/presets). Every edit is checked with RunConfig::issues(): an
// invalid value is refused inline, the editor of the setting it names is outlined in red with the
// reason below, and validityChanged(false) disables starting a run. Below it, the run's
// memory forecast (pipeline/memory_forecast.h, what `tessera plan` prints) follows every edit.
#include <QString>
#include <QWidget>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "model/llama_config.h"
#include "pipeline/run_config.h"

class QCheckBox;
class QComboBox;
class QLabel;
class QLineEdit;
class QSpinBox;
class QToolButton;

namespace tessera::widgets {

class RunPanel : public QWidget {
  Q_OBJECT

 public:
  explicit RunPanel(QWidget* parent = nullptr);

  // The model, tokenizer and calibration text come from the data panel.
  void setDataPaths(const QString& model, const QString& tokenizer, const QString& calib);
  // The open model's architecture, for the memory forecast shown under the settings (none: hidden).
  void setModelConfig(const std::optional<model::LlamaConfig>& config);
  // The forecast line as shown ("" while no model is open or the settings are invalid; a missing
  // calibration text counts as empty).
  QString forecastText() const;
  // The settings as a run config (paths included). Unparseable numbers keep their defaults;
  // validationError() says which.
  pipeline::RunConfig config() const;
  void setConfig(const pipeline::RunConfig& config);  // paths are not taken over
  // The devices the worker reports ("cpu", "cuda:0", ...); the current choice stays when listed.
  void setDevices(const QStringList& ids);
  // "" when the settings are valid, else the reason (the same text as under the form).
  QString validationError() const { return error_; }
  bool isValid() const { return error_.isEmpty(); }
  // Applies a preset over the current settings; false (reason logged) when it cannot be read.
  bool applyPreset(const QString& name);

  // For tests and scripts: the editors by run.json key ("samples", "tesseraq.lr", ...).
  QWidget* editor(const QString& key) const;

 signals:
  void validityChanged(bool valid);

 private:
  void revalidate();
  void updateMethodFields();
  void buildPresetMenu();

  QComboBox* method_ = nullptr;
  QSpinBox* wbits_ = nullptr;
  QSpinBox* group_ = nullptr;
  QCheckBox* symmetric_ = nullptr;
  QComboBox* target_ = nullptr;  // a GGUF grid target fixes bits, group and symmetry
  QSpinBox* abits_ = nullptr;
  QSpinBox* samples_ = nullptr;
  QSpinBox* seq_len_ = nullptr;
  // The methods' settings shown in the form, from their declarations.
  struct MethodField {
    const methods::MethodInfo* method = nullptr;
    const methods::Setting* setting = nullptr;
    QWidget* editor = nullptr;
  };
  std::vector<MethodField> method_fields_;
  QWidget* makeMethodEditor(const methods::Setting& s);
  void readMethodField(const MethodField& f, pipeline::RunConfig& c) const;
  void showMethodField(const MethodField& f, const pipeline::RunConfig& c);
  // The first number field whose text is not a number, and why (none: {nullptr, ""}).
  std::pair<QWidget*, QString> unreadableField() const;
  QSpinBox* seed_ = nullptr;
  QComboBox* device_ = nullptr;
  QComboBox* train_dtype_ = nullptr;
  QSpinBox* batch_ = nullptr;
  QToolButton* presets_ = nullptr;
  QLabel* error_label_ = nullptr;
  QLabel* forecast_label_ = nullptr;  // pipeline::forecast_memory of the settings, live
  std::optional<model::LlamaConfig> model_config_;
  bool settings_valid_ = false;  // validate() passed (a missing data path aside): the forecast shows
  void updateForecast();
  std::map<QString, QWidget*> editors_;
  pipeline::RunConfig base_;  // settings the form does not show (AWQ's, OmniQuant's LET, ...)
  QString model_, tokenizer_, calib_;
  QString error_;
  bool loading_ = false;
};

}  // namespace tessera::widgets
