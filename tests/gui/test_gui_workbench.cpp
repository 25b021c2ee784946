// The workbench's widgets and window: the locked run store under a writing thread and the plots'
// coalescing, inline refusal of bad run settings, the session file round trip (file and window),
// the comparison table's calibration flag and the heatmap's tooltips; then, with tiny real runs of
// stories260K, the baseline comparison queue and resuming a cancelled run.
#include <QElapsedTimer>
#include <QLineEdit>
#include <QListWidget>
#include <QSignalSpy>
#include <QThread>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>

#include "event_loop_gap.h"
#include "export_dialog.h"
#include "gui_test_main.h"
#include "gui_test_runs.h"
#include "hardening_plot.h"
#include "layer_heatmap.h"
#include "log_pane.h"
#include "loss_plot.h"
#include "main_window.h"
#include "memory_plot.h"
#include "run_controller.h"
#include "run_controls.h"
#include "run_metrics_store.h"
#include "run_panel.h"
#include "run_table.h"
#include "session_file.h"
#include "session_perplexity_plot.h"
#include "test_data.h"

using tessera::widgets::RunMetricsStore;
using tessera::widgets::RunTrace;
using tessera::widgets::SessionRun;
using tessera::workbench::MainWindow;

namespace {
constexpr const char* kModel = "models/stories260K/stories260K.bin";
constexpr const char* kCalib = "text/tinystories/train-sample.txt";
constexpr const char* kText = "text/tinystories/sample.txt";
constexpr int kRunTimeoutMs = 240000;

// The window's run settings at W2 g32, shrunk for CI.
void useTinySettings(MainWindow& window, std::int64_t tq_steps) {
  auto c = window.runPanel()->config();
  c.weight.bits = 2;
  c.weight.group_size = 32;
  tessera_test::shrink_for_ci(c, tq_steps);
  window.runPanel()->setConfig(c);
}

SessionRun sampleRun(int id, const std::string& method, const QString& hash, double ppl) {
  SessionRun r;
  r.id = id;
  r.config.model = "/models/m.bin";
  r.config.calib = "/data/calib.txt";
  r.config.method = method;
  r.config.weight.bits = 2;
  r.config.weight.group_size = 64;
  r.config.settings.set("tesseraq", "schedule", "0.5,0");
  r.name = QString("%1 #%2").arg(QString::fromStdString(method)).arg(id);
  r.run_dir = QString("/runs/%1").arg(id);
  r.status = SessionRun::Status::Finished;
  r.calibration_sha256 = hash;
  r.eval_text = "/data/sample.txt";
  r.perplexity = ppl;
  r.seconds = 12.5 * id;
  r.peak_memory_bytes = 3e8;
  r.export_bytes = 123456;
  return r;
}

RunTrace sampleTrace(int id) {
  RunTrace t;
  t.progress.total_blocks = 2;
  for (int i = 0; i < 10; ++i) t.steps.push_back({i / 10.0, 1.0 / (i + 1) + id, i / 5});
  t.hardening.push_back({0.5, 0.5, 0.5});
  t.blocks.push_back({0, 2.0, 1.0 + id, 3.0});
  t.memory.push_back({0.5, 0, 2e8});
  for (int b = 0; b < 2; ++b)
    for (const char* l : {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"})
      t.layers.push_back({b, l, 0.01 * id, 1e-4 * (b + 1), 0.1, 0.9, 1.1, 0.05});
  return t;
}
}  // namespace

class TestGuiWorkbench : public QObject {
  Q_OBJECT
  TESSERA_TEST_FRIEND

 private slots:
  void initTestCase();
  void storeTakesConcurrentWritesAndPlotsCoalesce();
  void badSettingsAreRefusedInline();
  void sessionFileRoundTrip();
  void windowSavesAndReopensSession();
  void tableFlagsOtherCalibration();
  void heatmapTooltipsShowExactValues();
  void exportDialogGreysOutFormatsWithTheReason();
  void baselineComparisonFillsTablePlotsAndHeatmap();
  void cancelledRunResumesFromItsLastBlock();
};

void TestGuiWorkbench::initTestCase() {
  // Its own name: the autosaved session of these tests must not reach test_gui_main_window's.
  tessera_test::use_fresh_settings("Tessera Workbench Widgets Test");
}

void TestGuiWorkbench::storeTakesConcurrentWritesAndPlotsCoalesce() {
  auto store = std::make_shared<RunMetricsStore>();
  tessera::widgets::LossPlot plot(store);
  plot.resize(400, 300);
  plot.setRuns({{1, "run", Qt::blue}});
  const int rebuilds_before = plot.rebuildCount();
  // A worker writing far faster than anyone could repaint: 20000 steps as fast as it can, in
  // bursts, for at least 400 ms.
  constexpr int kSteps = 20000;
  std::atomic<bool> done{false};
  std::thread worker([&] {
    for (int i = 0; i < kSteps; ++i) {
      store->update(1, [&](RunTrace& t) {
        t.progress.total_blocks = 4;
        t.steps.push_back({4.0 * i / kSteps, 1.0 + (i % 100), 0});
      });
      if (i % 1000 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    done = true;
  });
  QElapsedTimer clock;
  clock.start();
  QTRY_VERIFY_WITH_TIMEOUT(done.load(), 30000);
  worker.join();
  QTest::qWait(3 * tessera::widgets::RunPlot::kTickMs);  // the last tick picks up the rest
  const qint64 ms = clock.elapsed();
  QCOMPARE(store->trace(1).steps.size(), static_cast<std::size_t>(kSteps));
  const int rebuilds = plot.rebuildCount() - rebuilds_before;
  qInfo("%d steps written, plot rebuilt %d times in %lld ms", kSteps, rebuilds, ms);
  QVERIFY(rebuilds >= 1);
  QVERIFY2(rebuilds <= ms / tessera::widgets::RunPlot::kTickMs + 2, "more rebuilds than timer ticks");
  QVERIFY(plot.graphCount() >= 1);
  QCOMPARE(plot.graph(0)->dataCount(), kSteps);
  // A full rebuild of 20000 points is far below the 100 ms the GUI thread may block.
  QElapsedTimer rebuild_clock;
  rebuild_clock.start();
  plot.setRuns({{1, "run", Qt::blue}});
  const qint64 rebuild_ms = rebuild_clock.elapsed();
  plot.replot();
  qInfo("rebuild of %d points: %lld ms, with replot %lld ms", kSteps, rebuild_ms, rebuild_clock.elapsed());
  QVERIFY(rebuild_clock.elapsed() < 100);
  // An idle tick does not rebuild.
  const int idle = plot.rebuildCount();
  QTest::qWait(4 * tessera::widgets::RunPlot::kTickMs);
  QCOMPARE(plot.rebuildCount(), idle);
}

void TestGuiWorkbench::badSettingsAreRefusedInline() {
  TESSERA_REQUIRE_DATA(model, kModel);
  TESSERA_REQUIRE_DATA(calib, kCalib);
  MainWindow window;
  window.setDialogsEnabled(false);
  QVERIFY(window.openModel(QString::fromStdString(model)));
  window.setCalibPath(QString::fromStdString(calib));
  auto* panel = window.runPanel();
  QVERIFY2(panel->isValid(), qPrintable(panel->validationError()));
  auto* start = window.findChild<tessera::widgets::RunControls*>()->startButton();
  QVERIFY(start->isEnabled());

  QSignalSpy validity(panel, &tessera::widgets::RunPanel::validityChanged);
  auto* samples = qobject_cast<QSpinBox*>(panel->editor("samples"));
  samples->setValue(0);
  QVERIFY(!panel->isValid());
  QVERIFY2(panel->validationError().contains("samples"), qPrintable(panel->validationError()));
  QVERIFY(samples->styleSheet().contains("c62828"));  // the field at fault is outlined
  QVERIFY(!validity.isEmpty() && !validity.last().at(0).toBool());
  QVERIFY(!start->isEnabled());
  QVERIFY(!window.startRun());  // refused, nothing started
  QVERIFY(!window.runController()->isRunning());
  QVERIFY(window.sessionRuns().empty());
  samples->setValue(16);
  QVERIFY(panel->isValid());
  QVERIFY(samples->styleSheet().isEmpty());
  QVERIFY(start->isEnabled());

  // The memory forecast (what `tessera plan` prints) follows the settings; hidden while invalid.
  const QString forecast = panel->forecastText();
  QVERIFY2(forecast.startsWith("Memory forecast: "), qPrintable(forecast));
  samples->setValue(4096);
  QVERIFY2(panel->forecastText().startsWith("Memory forecast: ") && panel->forecastText() != forecast,
           qPrintable(panel->forecastText()));
  samples->setValue(0);
  QVERIFY(panel->forecastText().isEmpty());
  samples->setValue(16);
  QCOMPARE(panel->forecastText(), forecast);

  qobject_cast<QSpinBox*>(panel->editor("wbits"))->setValue(9);
  QVERIFY2(panel->validationError().contains("weight bits"), qPrintable(panel->validationError()));
  qobject_cast<QSpinBox*>(panel->editor("wbits"))->setValue(2);

  panel->setConfig([&] {
    auto c = panel->config();
    c.method = "tesseraq";
    return c;
  }());
  qobject_cast<QComboBox*>(panel->editor("tesseraq.schedule"))->setCurrentText("0.5,abc");
  QVERIFY2(panel->validationError().contains("tesseraq.schedule") && panel->validationError().contains("abc"),
           qPrintable(panel->validationError()));
  QVERIFY(panel->editor("tesseraq.schedule")->styleSheet().contains("c62828"));
  qobject_cast<QComboBox*>(panel->editor("tesseraq.schedule"))->setCurrentText("0.2,0.5");
  QVERIFY2(panel->validationError().contains("must not increase"), qPrintable(panel->validationError()));
  qobject_cast<QComboBox*>(panel->editor("tesseraq.schedule"))->setCurrentText("paper10");
  QVERIFY(panel->isValid());

  qobject_cast<QLineEdit*>(panel->editor("tesseraq.lr"))->setText("fast");
  QVERIFY2(panel->validationError().contains("fast"), qPrintable(panel->validationError()));
  qobject_cast<QLineEdit*>(panel->editor("tesseraq.lr"))->setText("-1");
  QVERIFY2(panel->validationError().contains("tesseraq.lr"), qPrintable(panel->validationError()));
  qobject_cast<QLineEdit*>(panel->editor("tesseraq.lr"))->setText("2e-3");
  QVERIFY(panel->isValid());
  QCOMPARE(panel->config().settings.number("tesseraq", "lr"), 2e-3);

  // A GGUF grid target fixes bits, group and symmetry (shown, locked) and goes into the config.
  auto* target = qobject_cast<QComboBox*>(panel->editor("target"));
  QVERIFY(target);
  target->setCurrentIndex(target->findData("gguf-q5_0"));
  QVERIFY2(panel->isValid(), qPrintable(panel->validationError()));
  QCOMPARE(qobject_cast<QSpinBox*>(panel->editor("wbits"))->value(), 5);
  QCOMPARE(qobject_cast<QSpinBox*>(panel->editor("group"))->value(), 32);
  QVERIFY(!panel->editor("wbits")->isEnabled() && !panel->editor("group")->isEnabled());
  QCOMPARE(panel->config().target, std::string("gguf-q5_0"));
  QVERIFY(panel->config().weight.symmetric && panel->config().weight.scale_bits == 11);
  target->setCurrentIndex(0);
  QVERIFY(panel->editor("wbits")->isEnabled());
  QVERIFY(panel->config().target.empty());

  // A preset applies over the settings and keeps the data paths.
  QVERIFY(panel->applyPreset("cpu-quick"));
  QCOMPARE(panel->config().samples, static_cast<std::int64_t>(16));
  QCOMPARE(panel->config().calib, calib);
  QVERIFY(panel->isValid());
}

void TestGuiWorkbench::sessionFileRoundTrip() {
  tessera::widgets::Session s;
  s.runs = {sampleRun(1, "rtn", "aaa", 400.5), sampleRun(2, "tesseraq", "aaa", 20.25)};
  s.runs[1].config.settings.set("tesseraq", "steps", 123);
  s.runs[1].config.settings.set("tesseraq", "lr", 5e-4);
  s.traces = {{1, sampleTrace(1)}, {2, sampleTrace(2)}};
  s.reference_perplexity = 6.5893;
  s.model = "/models/m.bin";
  s.calib = "/data/calib.txt";
  s.eval_text = "/data/sample.txt";
  const QString path = QString::fromStdString(tessera_test::fresh_temp_dir("gui-session")) + "/s.tessera-session";
  tessera::widgets::saveSession(path, s);
  const auto back = tessera::widgets::loadSession(path);
  QCOMPARE(back.runs.size(), std::size_t{2});
  QCOMPARE(back.reference_perplexity, 6.5893);
  QCOMPARE(back.eval_text, s.eval_text);
  for (std::size_t i = 0; i < 2; ++i) {
    const auto& a = s.runs[i];
    const auto& b = back.runs[i];
    QCOMPARE(b.id, a.id);
    QCOMPARE(b.name, a.name);
    QCOMPARE(b.config.to_json_text(), a.config.to_json_text());
    QCOMPARE(b.run_dir, a.run_dir);
    QCOMPARE(b.status, a.status);
    QCOMPARE(b.calibration_sha256, a.calibration_sha256);
    QCOMPARE(b.perplexity, a.perplexity);
    QCOMPARE(b.seconds, a.seconds);
    QCOMPARE(b.peak_memory_bytes, a.peak_memory_bytes);
    QCOMPARE(b.export_bytes, a.export_bytes);
  }
  QCOMPARE(back.runs[1].config.settings.integer("tesseraq", "steps"), static_cast<std::int64_t>(123));
  QCOMPARE(back.traces.size(), std::size_t{2});
  const RunTrace& t = back.traces[1].second;
  const RunTrace& u = s.traces[1].second;
  QCOMPARE(t.steps.size(), u.steps.size());
  QCOMPARE(t.steps.back().loss, u.steps.back().loss);
  QCOMPARE(t.steps.back().iteration, u.steps.back().iteration);
  QCOMPARE(t.hardening.size(), u.hardening.size());
  QCOMPARE(t.blocks.front().loss, u.blocks.front().loss);
  QCOMPARE(t.memory.front().rss_bytes, u.memory.front().rss_bytes);
  QCOMPARE(t.layers.size(), u.layers.size());
  QCOMPARE(t.layers[9].layer, u.layers[9].layer);
  QCOMPARE(t.layers[9].output_mse, u.layers[9].output_mse);
  QCOMPARE(t.layers[9].dst_std, u.layers[9].dst_std);

  // A file that is not a session is refused with a message naming it.
  QFile bad(path + ".bad");
  QVERIFY(bad.open(QIODevice::WriteOnly));
  bad.write("{\"format\": \"something-else\"}");
  bad.close();
  bool refused = false;
  try {
    tessera::widgets::loadSession(path + ".bad");
  } catch (const std::exception& e) {
    refused = QString(e.what()).contains(path + ".bad");
  }
  QVERIFY(refused);
}

void TestGuiWorkbench::windowSavesAndReopensSession() {
  const QString dir = QString::fromStdString(tessera_test::fresh_temp_dir("gui-window-session"));
  tessera::widgets::Session s;
  s.runs = {sampleRun(3, "awq", "aaa", 75.3), sampleRun(4, "tesseraq", "aaa", 40.4)};
  s.traces = {{3, sampleTrace(3)}, {4, sampleTrace(4)}};
  s.reference_perplexity = 6.59;
  tessera::widgets::saveSession(dir + "/in.tessera-session", s);
  {
    MainWindow window;
    window.setDialogsEnabled(false);
    QVERIFY(window.openSessionFrom(dir + "/in.tessera-session"));
    QCOMPARE(window.sessionRuns().size(), std::size_t{2});
    QCOMPARE(window.runTable()->rowCount(), 2);
    QCOMPARE(window.sessionPerplexityPlot()->barCount(), 2);
    QCOMPARE(window.referencePerplexity(), 6.59);
    QCOMPARE(window.runMetrics()->trace(4).steps.size(), std::size_t{10});
    window.selectRuns({4});
    QCOMPARE(window.heatmap()->cellsWithData(), 14);
    QVERIFY(window.saveSessionTo(dir + "/out.tessera-session"));
  }
  MainWindow second;
  second.setDialogsEnabled(false);
  QVERIFY(second.openSessionFrom(dir + "/out.tessera-session"));
  QCOMPARE(second.sessionRuns().size(), std::size_t{2});
  QCOMPARE(second.sessionRuns()[1].name, s.runs[1].name);
  QCOMPARE(second.sessionRuns()[1].perplexity, 40.4);
  QCOMPARE(second.runMetrics()->trace(3).layers.size(), std::size_t{14});
  // A session file that cannot be read leaves the window as it was, with the reason in the log.
  QVERIFY(!second.openSessionFrom(dir + "/missing.tessera-session"));
  QCOMPARE(second.sessionRuns().size(), std::size_t{2});

  // Closing the window saves the session; the next launch restores it.
  second.show();
  QVERIFY(second.close());
  MainWindow third;
  third.setDialogsEnabled(false);
  third.restoreSession();
  QCOMPARE(third.sessionRuns().size(), std::size_t{2});
  QCOMPARE(third.sessionRuns()[0].name, s.runs[0].name);
  QCOMPARE(third.runMetrics()->trace(4).steps.size(), std::size_t{10});
}

void TestGuiWorkbench::tableFlagsOtherCalibration() {
  tessera::widgets::RunTable table;
  table.setRuns({sampleRun(1, "rtn", "aaa", 10), sampleRun(2, "awq", "aaa", 9), sampleRun(3, "tesseraq", "bbb", 8)});
  QVERIFY(!table.isCalibrationFlagged(1));
  QVERIFY(!table.isCalibrationFlagged(2));
  QVERIFY(table.isCalibrationFlagged(3));
  QVERIFY(table.item(2, tessera::widgets::RunTable::Calib)->toolTip().contains("different data"));
  QSignalSpy selection(&table, &tessera::widgets::RunTable::selectionChangedIds);
  table.selectRuns({1, 3});
  QCOMPARE(table.selectedRunIds(), (std::vector<int>{1, 3}));
  QVERIFY(!selection.isEmpty());
}

void TestGuiWorkbench::heatmapTooltipsShowExactValues() {
  tessera::widgets::LayerHeatmap heatmap;
  std::vector<tessera::eval::LayerStats> stats = sampleTrace(1).layers;
  stats[3].output_mse = 1.234567e-5;  // block 0, o_proj
  heatmap.showRun("tesseraq #1", stats, 2);
  QCOMPARE(heatmap.cellsWithData(), 14);
  QVERIFY2(heatmap.cellText(0, 3).contains("1.2346e-05"), qPrintable(heatmap.cellText(0, 3)));
  QVERIFY(heatmap.cellText(0, 3).contains("o_proj"));
  heatmap.setMetric(tessera::widgets::LayerHeatmap::Metric::FlipRatio);
  QVERIFY2(heatmap.cellText(1, 0).contains("10.000 %"), qPrintable(heatmap.cellText(1, 0)));
  QVERIFY(heatmap.cellText(5, 0).isEmpty());  // no block 5
  std::vector<tessera::eval::LayerStats> other = sampleTrace(2).layers;
  heatmap.showDiff("rtn #1", stats, "tesseraq #2", other, 2);
  QVERIFY(heatmap.isDiff());
  QVERIFY(heatmap.cellText(0, 0).contains("rtn #1"));
}

void TestGuiWorkbench::exportDialogGreysOutFormatsWithTheReason() {
  // Whatever the core offers is listed; one it says cannot hold the run is greyed out with why.
  auto lister = [](const std::string&) {
    return std::vector<tessera::api::ExportFormatInfo>{{"hf", "Fake-quant Hugging Face folder", true, ""},
                                                       {"awq", "AWQ-GEMM folder", false, "AWQ-GEMM holds 4-bit only"},
                                                       {"gguf-q4_1", "GGUF Q4_1", true, ""}};
  };
  tessera::widgets::ExportDialog dialog({{1, "tesseraq W2 g32 #1", "/runs/1"}}, 1, tessera::widgets::WorkerEndpoint(),
                                        nullptr, lister);
  QVERIFY(dialog.isFormatAvailable("hf"));
  QVERIFY(!dialog.isFormatAvailable("awq"));
  QCOMPARE(dialog.formatReason("awq"), QString("AWQ-GEMM holds 4-bit only"));
  auto* list = dialog.findChild<QListWidget*>();
  QCOMPARE(list->count(), 3);
  QVERIFY(list->item(1)->text().contains("AWQ-GEMM holds 4-bit only"));
  QVERIFY(!(list->item(1)->flags() & Qt::ItemIsEnabled));
  QVERIFY(!dialog.selectFormat("awq"));  // greyed out: cannot be chosen
  // The suggested output follows the format: a folder, or one .gguf file for the gguf-* formats.
  auto* path = dialog.findChild<QLineEdit*>();
  QCOMPARE(path->text(), QString("/runs/1-export"));
  QVERIFY(dialog.selectFormat("gguf-q4_1"));
  QCOMPARE(list->currentItem()->data(Qt::UserRole).toString(), QString("gguf-q4_1"));
  QCOMPARE(path->text(), QString("/runs/1-export.gguf"));
  QVERIFY(dialog.selectFormat("hf"));
  QCOMPARE(path->text(), QString("/runs/1-export"));
  // A path the user chose is never replaced.
  dialog.setOutputPath("/elsewhere/model.gguf");
  QVERIFY(dialog.selectFormat("gguf-q4_1"));
  QCOMPARE(path->text(), QString("/elsewhere/model.gguf"));
}

void TestGuiWorkbench::baselineComparisonFillsTablePlotsAndHeatmap() {
  TESSERA_REQUIRE_DATA(model, kModel);
  TESSERA_REQUIRE_DATA(calib, kCalib);
  TESSERA_REQUIRE_DATA(text, kText);
  MainWindow window;
  window.setDialogsEnabled(false);
  window.show();
  QVERIFY(window.openModel(QString::fromStdString(model)));
  window.setCalibPath(QString::fromStdString(calib));
  window.setTextPath(QString::fromStdString(text));
  window.setRunsRoot(QString::fromStdString(tessera_test::fresh_temp_dir("gui-compare")));
  useTinySettings(window, 5);
  QVERIFY2(window.runPanel()->isValid(), qPrintable(window.runPanel()->validationError()));
  QSignalSpy done(&window, &MainWindow::queueFinished);
  // The whole window (plots, table, heatmap, status bar) keeps the event loop turning.
  tessera_test::EventLoopGapMeter gaps;
  gaps.start();
  QVERIFY(window.compareBaselines());
  QVERIFY(window.isBusy());
  QVERIFY(!window.compareBaselines());  // one comparison at a time
  QVERIFY(done.wait(kRunTimeoutMs));
  gaps.stop();
  QVERIFY(!window.isBusy());
  qInfo("baseline comparison: %lld ms, longest event-loop gap %lld ms", gaps.elapsedMs(), gaps.maxGapMs());
  QVERIFY2(gaps.problem().isEmpty(), qPrintable(gaps.problem()));

  const auto& runs = window.sessionRuns();
  QCOMPARE(runs.size(), std::size_t{4});
  const char* methods[] = {"rtn", "awq", "omniquant", "tesseraq"};
  for (std::size_t i = 0; i < 4; ++i) {
    const auto& r = runs[i];
    QCOMPARE(r.config.method, std::string(methods[i]));
    QCOMPARE(r.config.weight.bits, 2);  // the same settings for every method
    QCOMPARE(r.config.samples, static_cast<std::int64_t>(4));
    QVERIFY2(r.finished(), qPrintable(r.name + ": " + r.error));
    QVERIFY(r.perplexity > 1);
    QCOMPARE(r.calibration_sha256, runs[0].calibration_sha256);
  }
  const int finished = 4;
  // The unquantized model's perplexity was measured first: the reference line.
  QVERIFY(std::fabs(window.referencePerplexity() - 5.5583) < 1e-3);
  QCOMPARE(window.sessionPerplexityPlot()->barCount(), finished);
  QCOMPARE(window.runTable()->rowCount(), 4);
  window.selectRuns({runs[3].id});
  window.refreshAll();
  QCOMPARE(window.heatmap()->cellsWithData(), 5 * 7);
  QVERIFY(window.lossPlot()->graphCount() >= 1);
  QVERIFY(window.hardeningPlot()->graphCount() >= 1);
  QVERIFY(window.memoryPlot()->graphCount() >= 1);
  window.selectRuns({runs[0].id, runs[3].id});
  QVERIFY(window.heatmap()->isDiff());
  QCOMPARE(window.heatmap()->cellsWithData(), 5 * 7);
}

void TestGuiWorkbench::cancelledRunResumesFromItsLastBlock() {
  TESSERA_REQUIRE_DATA(model, kModel);
  TESSERA_REQUIRE_DATA(calib, kCalib);
  MainWindow window;
  window.setDialogsEnabled(false);
  QVERIFY(window.openModel(QString::fromStdString(model)));
  window.setCalibPath(QString::fromStdString(calib));
  window.setTextPath(QString());  // quantize only
  window.setRunsRoot(QString::fromStdString(tessera_test::fresh_temp_dir("gui-resume")));
  useTinySettings(window, 40);
  auto c = window.runPanel()->config();
  c.method = "tesseraq";
  window.runPanel()->setConfig(c);
  QSignalSpy done(&window, &MainWindow::queueFinished);
  QVERIFY(window.startRun());
  const int id = window.sessionRuns().back().id;
  // Cancel once two blocks are on disk.
  QTRY_VERIFY_WITH_TIMEOUT(window.runMetrics()->trace(id).blocks.size() >= 2, kRunTimeoutMs);
  window.cancelRun();
  QVERIFY(done.wait(kRunTimeoutMs));
  QCOMPARE(window.sessionRuns().back().status, SessionRun::Status::Cancelled);

  window.selectRuns({id});
  QVERIFY(window.resumeSelectedRun());
  QVERIFY(done.wait(kRunTimeoutMs));
  const SessionRun& r = window.sessionRuns().back();
  QVERIFY2(r.finished(), qPrintable(r.error));
  QCOMPARE(window.sessionRuns().size(), std::size_t{1});  // the same run, continued
  QVERIFY2(window.logPane()->toPlainText().contains("restored from"), "the finished blocks were not restored");
  const RunTrace t = window.runMetrics()->trace(id);
  QCOMPARE(t.blocks.size(), std::size_t{5});
  QCOMPARE(t.layers.size(), std::size_t{35});
}

TESSERA_GUI_TEST_MAIN(TestGuiWorkbench, storeTakesConcurrentWritesAndPlotsCoalesce, badSettingsAreRefusedInline,
                      sessionFileRoundTrip, windowSavesAndReopensSession, tableFlagsOtherCalibration,
                      heatmapTooltipsShowExactValues, exportDialogGreysOutFormatsWithTheReason,
                      baselineComparisonFillsTablePlotsAndHeatmap, cancelledRunResumesFromItsLastBlock)
#ifdef TESSERA_TEST_WITH_QT
#include "test_gui_workbench.moc"
#endif
