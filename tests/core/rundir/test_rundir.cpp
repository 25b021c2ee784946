// The run directory's files (core/rundir): a recorded run.json reads and is written again byte for
// byte, unknown keys survive, statistics files round-trip and damaged ones are read leniently, and
// events.jsonl is appended by one writer and read as it grows, including the recorded run's file.
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "rundir/block_stats.h"
#include "rundir/event_json.h"
#include "rundir/event_log.h"
#include "rundir/run_directory.h"
#include "rundir/run_manifest.h"
#include "tessera_test.h"
#include "test_data.h"

using namespace tessera;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const fs::path kRecordedRun = fs::path(TESSERA_TEST_SOURCE_DIR) / "data" / "gpu-run-stories260K";

}  // namespace

class TestRunDirectory : public QObject {
  Q_OBJECT
  TESSERA_TEST_FRIEND

 private slots:
  // A run made before core/rundir (tests/data/gpu-run-stories260K): read into the typed manifest and
  // written again, run.json keeps its bytes (its calibration has no "newlines": it predates them).
  void recordedManifestKeepsItsBytes() {
    const rundir::RunDirectory recorded(kRecordedRun.string());
    const auto m = rundir::read_manifest(recorded);
    QCOMPARE(m.blocks, std::int64_t(5));
    QVERIFY(m.finished);
    QVERIFY(m.seconds && *m.seconds > 56 && *m.seconds < 57);
    QCOMPARE(m.placement.value_or(""), std::string("gpu"));
    QVERIFY(!m.calibration.newlines);
    QCOMPARE(m.calibration.offsets.size(), std::size_t(64));
    QCOMPARE(m.fingerprint.code_version, std::string("0.1.0"));
    QVERIFY(m.other.empty());
    const rundir::RunDirectory again(tessera_test::fresh_temp_dir("rundir-manifest"));
    rundir::write_manifest(again, m);
    QVERIFY2(tessera_test::file_bytes(again.manifest_path()) == tessera_test::file_bytes(recorded.manifest_path()),
             "run.json written again differs from the recorded file");
    QVERIFY(rundir::read_manifest(again).fingerprint.differences(m.fingerprint).empty());
  }

  // Keys a later version may add are kept; a missing manifest, or one without settings, is refused.
  void manifestKeepsUnknownKeysAndRefusesOthers() {
    json j = json::parse(tessera_test::file_bytes(kRecordedRun / "run.json"));
    j["later_key"] = {{"x", 1}};
    j["calibration"]["later_too"] = "y";
    const auto m = rundir::manifest_from_json(j, "run.json");
    QCOMPARE(rundir::to_json(m).dump(), j.dump());
    TESSERA_VERIFY_THROWS_WITH(rundir::manifest_from_json(json{{"blocks", 3}}, "x/run.json"),
                               "x/run.json is not a run manifest");
    TESSERA_VERIFY_THROWS_WITH(rundir::manifest_from_json(json{{"config", json::object()}, {"blocks", "three"}}, "r"),
                               "\"blocks\" has the wrong type");
    const auto empty = tessera_test::fresh_temp_dir("rundir-empty");
    TESSERA_VERIFY_THROWS_WITH(rundir::read_manifest(rundir::RunDirectory(empty)),
                               "is not a Tessera run directory (no run.json)");
  }

  // Statistics round-trip with the block's index; damaged files and entries are left out.
  void blockStatsRoundTripAndDamagedOnesAreLenient() {
    const rundir::RunDirectory dir(tessera_test::fresh_temp_dir("rundir-stats"));
    dir.create();
    rundir::BlockStats s;
    s.loss_rtn = 0.5;
    s.loss = 0.25;
    s.layers.push_back({2, "q_proj", 0.1, 1e-3, 0.02, 0.9, 1.1, 0.05});
    rundir::write_block_stats(dir, 2, s);
    QCOMPARE(tessera_test::file_bytes(dir.stats_path(2)), rundir::to_json(s).dump(2) + "\n");
    const auto back = rundir::read_block_stats(dir, 2);
    QVERIFY(back && back->loss_rtn == 0.5 && back->loss == 0.25);
    QCOMPARE(back->layers.size(), std::size_t(1));
    QCOMPARE(back->layers[0].block, std::int64_t(2));
    QCOMPARE(back->layers[0].dst_std, 0.05);
    QVERIFY(!rundir::read_block_stats(dir, 3));  // missing
    std::ofstream(dir.stats_path(4)) << "not json";
    QVERIFY(!rundir::read_block_stats(dir, 4));
    std::ofstream(dir.stats_path(5))
        << R"({"loss": "x", "layers": [{"layer": 3}, 5, {"layer": "o_proj", "rel_weight_error": 0.2}]})";
    const auto damaged = rundir::read_block_stats(dir, 5);
    QVERIFY(damaged && !damaged->loss && !damaged->loss_rtn);
    QCOMPARE(damaged->layers.size(), std::size_t(1));
    QCOMPARE(damaged->layers[0].dst_min, 1.0);    // absent: untouched by DST
    QVERIFY(dir.has_finished_block(2) == false);  // statistics without codes
  }

  // The recorded run's events.jsonl (protocol 1.0, whose numbers were "value" and "before") reads
  // whole, each number in its own field.
  void recordedEventsAreRead() {
    rundir::RunEventReader reader(rundir::RunDirectory(kRecordedRun.string()));
    using Kind = rundir::RunEvent::Kind;
    std::map<Kind, int> kinds;
    for (const auto& e : reader.read_appended()) {
      ++kinds[e.kind];
      if (e.kind == Kind::BlockFinished) QVERIFY(e.loss > 0 && e.loss_rtn > e.loss);  // TesseraQ beats RTN
      if (e.kind == Kind::HardFraction) QVERIFY(e.target_hard_fraction > 0 && e.hard_fraction > 0);
      if (e.kind == Kind::StepLoss) QVERIFY(e.train_loss > 0);
      if (e.kind == Kind::Memory) QVERIFY(e.elapsed_seconds > 0 && e.seconds == 0);
      if (e.kind == Kind::Evaluated) {
        QCOMPARE(e.perplexity, 14.231347608356984);
        QVERIFY(!e.text_path.empty() && e.message.empty());
      }
    }
    QCOMPARE(kinds[Kind::BlockFinished], 5);
    QCOMPARE(kinds[Kind::HardFraction], 50);
    QCOMPARE(kinds[Kind::StepLoss], 1000);
    QCOMPARE(kinds[Kind::LayerStats], 35);
    QCOMPARE(kinds[Kind::Evaluated], 1);
    QVERIFY(reader.read_appended().empty());
  }

  // A 1.x event decodes into the 2.0 fields; the same JSON read as 2.0 has none of them.
  void version1EventsDecode() {
    const json finished = {{"kind", "block_finished"}, {"block", 1}, {"value", 0.25}, {"before", 0.5}};
    const auto old = rundir::run_event_from_json(finished, 1);
    QCOMPARE(old.loss, 0.25);
    QCOMPARE(old.loss_rtn, 0.5);
    QCOMPARE(rundir::run_event_from_json(finished).loss, 0.0);
    const auto again = rundir::run_event_from_json(rundir::to_json(old));
    QCOMPARE(again.loss, 0.25);
    QCOMPARE(again.loss_rtn, 0.5);
    const auto skipped = rundir::run_event_from_json({{"kind", "step_skipped"}, {"value", 0.5}}, 1);
    QCOMPARE(skipped.lr_factor, 0.5);
  }

  // One writer appends (a hello, then events); the reader sees complete lines as they come and
  // skips a line cut short; a file of another major version is refused.
  void eventLogIsFollowedAsItGrows() {
    const rundir::RunDirectory dir(tessera_test::fresh_temp_dir("rundir-events"));
    dir.create();
    TESSERA_VERIFY_THROWS_WITH(rundir::RunEventReader{dir}, "has no events.jsonl");
    rundir::RunEventLog log(dir);
    log.append(rundir::RunEvent::log(-1, "first"));
    rundir::RunEventReader reader(dir);
    auto got = reader.read_appended();
    QCOMPARE(got.size(), std::size_t(1));
    QCOMPARE(got[0].message, std::string("first"));
    {
      // A line cut short: its end is not written yet. (A plain literal: moc misreads raw strings
      // with unbalanced braces.)
      std::ofstream(dir.events_path(), std::ios::app) << "{\"type\":\"event\",\"event\":{\"kind\":\"lo";
    }
    QVERIFY(reader.read_appended().empty());  // not complete yet
    { std::ofstream(dir.events_path(), std::ios::app) << "\n"; }
    log.append(rundir::RunEvent::log(2, "second"));
    got = reader.read_appended();
    QCOMPARE(got.size(), std::size_t(1));
    QCOMPARE(got[0].block, std::int64_t(2));

    const rundir::RunDirectory other(tessera_test::fresh_temp_dir("rundir-events-other"));
    json hello = rundir::hello_message("events");
    hello["version"] = std::to_string(rundir::kProtocolMajorVersion + 1) + ".0";
    { std::ofstream(other.events_path()) << hello.dump() << "\n"; }
    rundir::RunEventReader newer(other);
    TESSERA_VERIFY_THROWS_WITH(newer.read_appended(), "was written in worker protocol");
  }
};

TESSERA_TEST_MAIN(TestRunDirectory, recordedManifestKeepsItsBytes, manifestKeepsUnknownKeysAndRefusesOthers,
                  blockStatsRoundTripAndDamagedOnesAreLenient, recordedEventsAreRead, version1EventsDecode,
                  eventLogIsFollowedAsItGrows)
#ifdef TESSERA_TEST_WITH_QT
#include "test_rundir.moc"
#endif
