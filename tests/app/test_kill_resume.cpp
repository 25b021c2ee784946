// Kill -9 and resume (issue 14): `tessera quantize` killed with SIGKILL at seeded pseudo-random
// points (early in a block, after a number of optimisation steps, the moment a block's codes or
// statistics file is being written or renamed into place, during the final evaluation) and then
// resumed with --resume, several times in one run, ends with block files (codes, scales, zeros,
// norms) byte-identical to an uninterrupted run and the same perplexity. `tessera export` killed
// midway leaves its destination either absent or complete (identical to an export that was never
// interrupted), and whatever a killed export left behind does not stop the next one.
//
// The seed is printed; TESSERA_KILL_SEED=<n> replays another one.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli_runner.h"
#include "tessera_test.h"
#include "test_data.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string block_name(std::int64_t k, const char* ext) {
  char name[64];
  std::snprintf(name, sizeof(name), "block_%03lld.%s", static_cast<long long>(k), ext);
  return name;
}

// Every regular file under `root`, by relative path, with its bytes.
std::map<std::string, std::string> folder_contents(const std::string& root) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file()) out[fs::relative(e.path(), root).string()] = read_bytes(e.path().string());
  return out;
}

// Names in `dir` that start with `prefix` (temporary files and folders left by killed writers).
std::vector<std::string> entries_starting_with(const std::string& dir, const std::string& prefix) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const auto name = e.path().filename().string();
    if (name.rfind(prefix, 0) == 0) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// One line of events.jsonl that matters here.
struct RunEventLine {
  std::string kind;  // "block_started", "step_loss", "block_finished", "run_finished", ...
  std::int64_t block = -1, step = 0, total_steps = 0;
};

// Reads the lines appended to a run's events.jsonl since it was created (or since `from` bytes).
class EventsTail {
 public:
  EventsTail(std::string path, std::uintmax_t from) : path_(std::move(path)), offset_(from) {}
  std::vector<RunEventLine> poll() {
    std::vector<RunEventLine> out;
    std::ifstream in(path_, std::ios::binary);
    if (!in) return out;
    in.seekg(0, std::ios::end);
    const auto size = static_cast<std::uintmax_t>(in.tellg());
    if (size <= offset_) return out;
    in.seekg(static_cast<std::streamoff>(offset_));
    std::string chunk(size - offset_, '\0');
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    offset_ = size;
    pending_ += chunk;
    std::size_t start = 0, end;
    while ((end = pending_.find('\n', start)) != std::string::npos) {
      const auto j = json::parse(pending_.substr(start, end - start), nullptr, false);
      start = end + 1;
      if (j.is_discarded() || !j.is_object() || j.value("type", "") != "event" || !j.contains("event")) continue;
      const auto& e = j["event"];
      RunEventLine line;
      line.kind = e.value("kind", "");
      line.block = e.value("block", std::int64_t{-1});
      line.step = e.value("step", std::int64_t{0});
      line.total_steps = e.value("total_steps", std::int64_t{0});
      out.push_back(line);
    }
    pending_.erase(0, start);
    return out;
  }

 private:
  std::string path_;
  std::uintmax_t offset_;
  std::string pending_;
};

// A file-system event in one of the watched folders.
struct FsEvent {
  std::string dir, name;
  std::uint32_t mask = 0;
};

// inotify on a few folders, added as soon as they exist.
class FolderWatch {
 public:
  FolderWatch() : fd_(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) {}
  ~FolderWatch() {
    if (fd_ >= 0) ::close(fd_);
  }
  FolderWatch(const FolderWatch&) = delete;
  FolderWatch& operator=(const FolderWatch&) = delete;
  bool ok() const { return fd_ >= 0; }
  void want(const std::string& dir) {
    if (std::find(wanted_.begin(), wanted_.end(), dir) == wanted_.end()) wanted_.push_back(dir);
    add_existing();
  }
  void add_existing() {
    for (const auto& dir : wanted_) {
      bool have = false;
      for (const auto& [wd, d] : dirs_) have = have || d == dir;
      if (have) continue;
      const int wd =
          ::inotify_add_watch(fd_, dir.c_str(), IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE | IN_DELETE);
      if (wd >= 0) dirs_[wd] = dir;
    }
  }
  // Waits up to `ms` for events.
  std::vector<FsEvent> read(int ms) {
    std::vector<FsEvent> out;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, ms) <= 0) return out;
    alignas(inotify_event) char buf[16384];
    for (;;) {
      const ssize_t n = ::read(fd_, buf, sizeof(buf));
      if (n <= 0) break;
      for (ssize_t i = 0; i < n;) {
        const auto* e = reinterpret_cast<const inotify_event*>(buf + i);
        const auto it = dirs_.find(e->wd);
        if (it != dirs_.end()) out.push_back({it->second, e->len ? std::string(e->name) : std::string(), e->mask});
        i += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
      }
    }
    return out;
  }

 private:
  int fd_;
  std::vector<std::string> wanted_;
  std::map<int, std::string> dirs_;
};

// `tessera <args>` in its own process group, stdout and stderr into `log`.
pid_t spawn_cli(const std::vector<std::string>& args, const std::string& log) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    const std::string s = *e;
    if (s.rfind("TESSERA_THREADS=", 0) == 0 || s.rfind("OMP_NUM_THREADS=", 0) == 0) continue;
    env_strings.push_back(s);
  }
  // One thread: the same arithmetic in every process whatever the machine's load.
  env_strings.push_back("TESSERA_THREADS=1");
  env_strings.push_back("OMP_NUM_THREADS=1");
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  const std::string binary = tessera_test::cli_binary();
  std::vector<std::string> argv_strings = {binary};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  pid_t pid = -1;
  if (::posix_spawn(&pid, binary.c_str(), &actions, &attr, argv.data(), envp.data()) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  return pid;
}

// When to kill: the first event or file-system event for which a trigger returns true starts the
// clock; `delay_s` later the process group gets SIGKILL.
struct KillPlan {
  std::string label;
  std::function<bool(const RunEventLine&)> on_event;
  std::function<bool(const FsEvent&)> on_fs;
  std::function<double()> delay_s = [] { return 0.0; };
  double after_start_s = -1;  // >= 0: trigger this long after the start instead
};

struct Outcome {
  bool killed = false;  // SIGKILL was sent and the process died of it (not exited before it)
  int signal = 0;       // the signal it died of, 0 if it exited
  bool exited = false;  // it exited on its own (before any kill)
  int exit_code = -1;
  double seconds = 0;  // start to exit or kill
  std::string out;     // stdout + stderr
  // Seconds since the start of the first occurrence of an event ("run_finished", "block_started 2")
  // or a file-system event ("create <name>", "moved_to <name>", "moved_from <name>").
  std::map<std::string, double> first_seen;
};

// Runs the CLI with `args` under `plan` (or to the end when plan.label is empty), watching `folders`
// and, for a quantization, `events_path`.
Outcome supervise(const std::vector<std::string>& args, const std::string& log, const std::string& events_path,
                  const std::vector<std::string>& folders, const KillPlan& plan, double timeout_s = 300) {
  Outcome o;
  FolderWatch watch;
  for (const auto& f : folders) watch.want(f);
  std::error_code ec;
  const auto events_size = events_path.empty() || !fs::exists(events_path, ec) ? 0 : fs::file_size(events_path, ec);
  EventsTail tail(events_path, ec ? 0 : events_size);
  const auto start = Clock::now();
  const pid_t pid = spawn_cli(args, log);
  if (pid <= 0) {
    o.out = "cannot start " + tessera_test::cli_binary();
    return o;
  }
  std::optional<Clock::time_point> kill_at;
  auto fire = [&](double delay) {
    if (!kill_at)
      kill_at = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(delay));
  };
  if (plan.after_start_s >= 0) fire(plan.after_start_s);
  int status = 0;
  bool reaped = false, sent = false;
  for (;;) {
    if (kill_at && Clock::now() >= *kill_at) {
      // Whether it landed is read from the exit status below: a process that exited first (a
      // zombie until reaped) reports its exit, one that was killed reports SIGKILL.
      ::kill(-pid, SIGKILL);
      sent = true;
      break;
    }
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      reaped = true;
      break;
    }
    if (seconds_since(start) > timeout_s) {
      ::kill(-pid, SIGKILL);
      o.out = "timed out after " + std::to_string(timeout_s) + " s\n";
      break;
    }
    watch.add_existing();
    const int wait_ms = kill_at ? 1 : 2;
    for (const auto& e : watch.read(wait_ms)) {
      const char* what = (e.mask & IN_CREATE)        ? "create "
                         : (e.mask & IN_MOVED_TO)    ? "moved_to "
                         : (e.mask & IN_MOVED_FROM)  ? "moved_from "
                         : (e.mask & IN_CLOSE_WRITE) ? "close_write "
                                                     : "other ";
      o.first_seen.emplace(what + e.name, seconds_since(start));
      if (plan.on_fs && !kill_at && plan.on_fs(e)) fire(plan.delay_s());
    }
    if (kill_at && *kill_at <= Clock::now()) continue;  // kill at once, before the child goes on
    if (!events_path.empty()) {
      for (const auto& e : tail.poll()) {
        const std::string key = e.kind + (e.block >= 0 && e.kind != "step_loss" ? " " + std::to_string(e.block) : "");
        o.first_seen.emplace(key, seconds_since(start));
        if (plan.on_event && !kill_at && plan.on_event(e)) fire(plan.delay_s());
      }
    }
  }
  if (!reaped) ::waitpid(pid, &status, 0);
  o.seconds = seconds_since(start);
  o.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  o.killed = sent && o.signal == SIGKILL;
  o.exited = WIFEXITED(status);
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  o.out += read_bytes(log);
  return o;
}

std::uint32_t kill_seed() {
  if (const char* env = std::getenv("TESSERA_KILL_SEED"); env && *env)
    return static_cast<std::uint32_t>(std::strtoul(env, nullptr, 10));
  return 14;
}

// The first block a resumed run computes (not restored: codes and statistics both on disk).
std::int64_t first_unfinished_block(const std::string& run, std::int64_t blocks) {
  for (std::int64_t k = 0; k < blocks; ++k)
    if (!fs::exists(run + "/blocks/" + block_name(k, "safetensors")) ||
        !fs::exists(run + "/stats/" + block_name(k, "json")))
      return k;
  return blocks;
}

// The reference: an uninterrupted run, its JSON, its timings.
struct Reference {
  std::string base, run;
  json result;
  std::int64_t blocks = 0;
  double block_seconds = 0;  // block_started 1 -> block_started 2
  double eval_seconds = 0;   // run_finished -> exit
};

}  // namespace

class TestKillResume : public QObject {
  Q_OBJECT
  TESSERA_TEST_FRIEND

 public:
  TestKillResume() : rng_(kill_seed()) {}

 private:
  std::mt19937 rng_;
  std::optional<Reference> ref_;
  std::string model_, calib_, text_;

  double uniform(double a, double b) { return std::uniform_real_distribution<double>(a, b)(rng_); }
  int pick(int a, int b) { return std::uniform_int_distribution<int>(a, b)(rng_); }

  std::vector<std::string> quantize_args(const std::string& out, bool resume) const {
    std::vector<std::string> a = {"quantize", "--model",   model_,        "--calib", calib_,   "--out", out,
                                  "--preset", "cpu-quick", "--par-steps", "5",       "--eval", text_,   "--json"};
    if (resume) a.push_back("--resume");
    return a;
  }

  bool have_data() {
    model_ = tessera_test::shared_data("models/stories260K/stories260K.bin");
    // Calibration windows from the small text too: every process tokenizes its calibration file,
    // and a 2 MB one costs a second per process here, for nothing this test is about.
    calib_ = tessera_test::shared_data("text/tinystories/sample.txt");
    text_ = tessera_test::shared_data("text/tinystories/sample.txt");
    return !model_.empty() && !calib_.empty() && !text_.empty();
  }

  // The uninterrupted run (once per process; both tests use it).
  std::string make_reference() {
    if (ref_) return "";
    Reference r;
    r.base = tessera_test::fresh_temp_dir("kill-resume");
    r.run = r.base + "/reference";
    const auto o = supervise(quantize_args(r.run, false), r.base + "/reference.log", r.run + "/events.jsonl",
                             {r.base, r.run, r.run + "/blocks"}, KillPlan{});
    if (!o.exited || o.exit_code != 0) return "the uninterrupted run failed:\n" + o.out;
    r.result = tessera_test::last_json(o.out);
    if (!r.result.is_object() || !r.result.contains("ppl")) return "no JSON with \"ppl\" from the run:\n" + o.out;
    r.blocks = r.result["blocks"].get<std::int64_t>();
    if (r.blocks < 4) return "expected a model of at least 4 blocks";
    const auto& seen = o.first_seen;
    if (!seen.count("block_started 1") || !seen.count("block_started 2") || !seen.count("run_finished"))
      return "the run's events.jsonl lacks block_started / run_finished events";
    r.block_seconds = seen.at("block_started 2") - seen.at("block_started 1");
    r.eval_seconds = o.seconds - seen.at("run_finished");
    std::printf("reference run: %.1f s, %lld blocks, %.2f s per block, %.2f s from run_finished to exit, ppl %.17g\n",
                o.seconds, static_cast<long long>(r.blocks), r.block_seconds, r.eval_seconds,
                r.result["ppl"].get<double>());
    ref_ = r;
    return "";
  }

  // Every block and statistics file the interrupted run has on disk is the reference's, byte for byte.
  std::string compare_finished_blocks(const std::string& run, bool require_all) {
    for (std::int64_t k = 0; k < ref_->blocks; ++k) {
      for (const auto& [folder, ext] :
           {std::pair<const char*, const char*>{"blocks", "safetensors"}, {"stats", "json"}}) {
        const auto rel = std::string(folder) + "/" + block_name(k, ext);
        if (!fs::exists(run + "/" + rel)) {
          if (require_all) return rel + " is missing";
          continue;
        }
        if (read_bytes(run + "/" + rel) != read_bytes(ref_->run + "/" + rel))
          return rel + " differs from the uninterrupted run's";
      }
    }
    const auto manifest = json::parse(read_bytes(run + "/run.json"), nullptr, false);
    if (fs::exists(run + "/run.json") && manifest.is_discarded()) return "run.json does not parse";
    return "";
  }

 private slots:
  void quantizeKilledAndResumedMatchesUninterruptedRun() {
    if (!have_data())
      QFAIL(tessera_test::missing_message("models/stories260K/stories260K.bin + tinystories texts").c_str());
    std::printf("kill seed %u (TESSERA_KILL_SEED to change)\n", kill_seed());
    const auto t0 = Clock::now();
    const auto err = make_reference();
    QVERIFY2(err.empty(), err.c_str());
    const auto& R = *ref_;
    const std::string run = R.base + "/interrupted";
    const std::string events = run + "/events.jsonl";
    const std::vector<std::string> folders = {R.base, run, run + "/blocks", run + "/stats"};

    // The kill plan: each entry is one process, killed at its point, then resumed.
    std::vector<KillPlan> plans;
    std::int64_t tb = 0;  // the targeted block of the current plan (set before it runs)
    {
      KillPlan p;  // early in a block: a moment after it started (AWQ initialisation or the first steps)
      p.label = "early in a block";
      p.on_event = [&](const RunEventLine& e) { return e.kind == "block_started" && e.block == tb; };
      const double d = uniform(0.0, 0.5) * R.block_seconds;
      p.delay_s = [d] { return d; };
      plans.push_back(p);
    }
    {
      KillPlan p;  // the block's codes file exists only under its temporary name, being written
      p.label = "writing a block's codes file";
      p.on_fs = [&](const FsEvent& e) {
        return (e.mask & IN_CREATE) && e.name.rfind(block_name(tb, "safetensors") + ".tmp", 0) == 0;
      };
      plans.push_back(p);
    }
    {
      KillPlan p;  // the codes file has just been renamed into place, its statistics not written yet
      p.label = "codes renamed into place, statistics not yet written";
      p.on_fs = [&](const FsEvent& e) { return (e.mask & IN_MOVED_TO) && e.name == block_name(tb, "safetensors"); };
      plans.push_back(p);
    }
    {
      KillPlan p;  // mid-optimisation: after a random number of the block's steps
      p.label = "mid-optimisation";
      const double frac = uniform(0.1, 0.9);
      p.on_event = [&, frac](const RunEventLine& e) {
        return e.kind == "step_loss" && e.block == tb && e.total_steps > 0 &&
               static_cast<double>(e.step) >= frac * static_cast<double>(e.total_steps);
      };
      plans.push_back(p);
    }
    {
      KillPlan p;  // the block's statistics file being written (its codes are in place)
      p.label = "writing a block's statistics file";
      p.on_fs = [&](const FsEvent& e) {
        return (e.mask & IN_CREATE) && e.name.rfind(block_name(tb, "json") + ".tmp", 0) == 0;
      };
      plans.push_back(p);
    }
    // Shuffle the order of the block-level points; the final evaluation comes last.
    std::shuffle(plans.begin(), plans.end(), rng_);
    {
      KillPlan p;
      p.label = "during the final evaluation";
      p.on_event = [](const RunEventLine& e) { return e.kind == "run_finished"; };
      const double d = uniform(0.05, 0.6) * R.eval_seconds;
      p.delay_s = [d] { return d; };
      plans.push_back(p);
    }

    int attempt = 0, tmp_left_during_write = 0;
    for (std::size_t i = 0; i < plans.size(); ++i) {
      const auto& plan = plans[i];
      const bool eval_kill = plan.label == "during the final evaluation";
      const auto first = first_unfinished_block(run, R.blocks);
      if (!eval_kill && first >= R.blocks) {
        // Only when a kill landed late enough for the block to finish (its statistics written).
        std::printf("skipped: %s (every block is finished already)\n", plan.label.c_str());
        continue;
      }
      tb = eval_kill ? -1 : std::min<std::int64_t>(first + pick(0, 1), R.blocks - 1);
      // A kill meant for the evaluation may miss it (the process exits first): resume and retry.
      // Kills meant for a file being written: did they land before its rename (its temporary stays)?
      const bool writing = plan.label.rfind("writing", 0) == 0;
      const auto tmp_folder = run + (plan.label == "writing a block's codes file" ? "/blocks" : "/stats");
      const auto tmp_prefix =
          block_name(tb, plan.label == "writing a block's codes file" ? "safetensors" : "json") + ".tmp";
      const auto tmp_before = entries_starting_with(tmp_folder, tmp_prefix).size();
      Outcome o;
      for (int tries = 0; tries < 4; ++tries) {
        ++attempt;
        o = supervise(quantize_args(run, attempt > 1), R.base + "/attempt-" + std::to_string(attempt) + ".log", events,
                      folders, plan);
        std::string note;
        if (writing && o.killed) {
          const bool before_rename = entries_starting_with(tmp_folder, tmp_prefix).size() > tmp_before;
          tmp_left_during_write += before_rename ? 1 : 0;
          note = before_rename ? " (before its rename)" : " (its rename had happened)";
        }
        const std::string where = eval_kill ? "" : " (block " + std::to_string(tb) + ")";
        std::printf("attempt %d: %-67s %s after %.2f s%s\n", attempt, (plan.label + where).c_str(),
                    o.killed ? "killed" : "NOT killed", o.seconds, note.c_str());
        if (o.killed || !eval_kill) break;
      }
      QVERIFY2(o.killed, (plan.label + ": the process was not killed at that point (exit " +
                          std::to_string(o.exit_code) + "):\n" + o.out)
                             .c_str());
      if (eval_kill) {
        // Killed after the run finished: every block is complete.
        const auto cmp = compare_finished_blocks(run, true);
        QVERIFY2(cmp.empty(), ("after a kill " + plan.label + ": " + cmp).c_str());
      } else {
        const auto cmp = compare_finished_blocks(run, false);
        QVERIFY2(cmp.empty(), ("after a kill " + plan.label + ": " + cmp).c_str());
        // A block killed in the middle of its optimisation is not finished.
        if (plan.label == "mid-optimisation")
          QVERIFY2(!fs::exists(run + "/stats/" + block_name(tb, "json")),
                   (plan.label + ": block " + std::to_string(tb) + " has statistics on disk").c_str());
      }
    }

    // The last resume runs to the end.
    ++attempt;
    const auto last = supervise(quantize_args(run, true), R.base + "/attempt-" + std::to_string(attempt) + ".log",
                                events, folders, KillPlan{});
    QVERIFY2(last.exited && last.exit_code == 0, ("the final --resume failed:\n" + last.out).c_str());
    const auto j = tessera_test::last_json(last.out);
    QVERIFY2(j.is_object() && j.contains("ppl"), ("no JSON with \"ppl\":\n" + last.out).c_str());
    std::printf("attempt %d: resumed to the end (%lld blocks restored) in %.2f s, ppl %.17g\n", attempt,
                static_cast<long long>(j["restored_blocks"].get<std::int64_t>()), last.seconds, j["ppl"].get<double>());
    std::printf("kills that landed while a file was written, before its rename: %d\n", tmp_left_during_write);
    // The resumed writers removed the temporaries of the killed ones.
    QCOMPARE(entries_starting_with(run + "/blocks", "block_").size(), static_cast<std::size_t>(R.blocks));
    QCOMPARE(entries_starting_with(run + "/stats", "block_").size(), static_cast<std::size_t>(R.blocks));

    // Bit-identical codes (every block file: codes, scales, zeros, norms, method state) and stats.
    const auto cmp = compare_finished_blocks(run, true);
    QVERIFY2(cmp.empty(), cmp.c_str());
    QCOMPARE(j["restored_blocks"].get<std::int64_t>(), R.blocks);
    QCOMPARE(j["ppl"].get<double>(), R.result["ppl"].get<double>());
    QCOMPARE(j["eval_windows"].get<std::int64_t>(), R.result["eval_windows"].get<std::int64_t>());
    QCOMPARE(j["calibration_sha256"].get<std::string>(), R.result["calibration_sha256"].get<std::string>());
    // The losses are recomputed for restored blocks, on the restored chain: equal means the chain is too.
    QVERIFY2(j["loss"] == R.result["loss"], (j["loss"].dump() + " vs " + R.result["loss"].dump()).c_str());
    QVERIFY2(j["loss_rtn"] == R.result["loss_rtn"],
             (j["loss_rtn"].dump() + " vs " + R.result["loss_rtn"].dump()).c_str());
    const auto manifest = json::parse(read_bytes(run + "/run.json"), nullptr, false);
    QVERIFY(!manifest.is_discarded() && manifest.value("finished", false));
    std::printf("quantize kill/resume: %d processes, %.1f s in all\n", attempt, seconds_since(t0));
  }

  void exportKilledLeavesNothingOrACompleteFolder() {
    if (!have_data())
      QFAIL(tessera_test::missing_message("models/stories260K/stories260K.bin + tinystories texts").c_str());
    const auto t0 = Clock::now();
    const auto err = make_reference();
    QVERIFY2(err.empty(), err.c_str());
    const auto& R = *ref_;

    // A packed format this run can be written in.
    auto formats = tessera_test::run_cli("export --run \"" + R.run + "\" --formats --json");
    QCOMPARE(formats.status, 0);
    std::string format;
    // One JSON array (last_json picks objects only).
    const auto list =
        json::parse(formats.out.substr(std::min(formats.out.find('['), formats.out.size())), nullptr, false);
    QVERIFY2(list.is_array(), formats.out.c_str());
    for (const auto& f : list)
      if (format.empty() && f.value("available", false) &&
          (f["id"] == "gptq" || f["id"] == "gptq-v1" || f["id"] == "awq"))
        format = f["id"].get<std::string>();
    QVERIFY2(!format.empty(), ("no packed format available for the run:\n" + formats.out).c_str());

    // The reference export, never interrupted.
    const std::string base = R.base + "/export";
    fs::create_directories(base + "/reference");
    fs::create_directories(base + "/killed");
    const std::string ref_out = base + "/reference/model";
    const std::string out = base + "/killed/model";
    auto export_args = [&](const std::string& dest, bool force) {
      std::vector<std::string> a = {"export", "--run", R.run, "--out", dest, "--format", format, "--json"};
      if (force) a.push_back("--force");
      return a;
    };
    const auto ref =
        supervise(export_args(ref_out, false), base + "/reference.log", "", {base + "/reference"}, KillPlan{});
    QVERIFY2(ref.exited && ref.exit_code == 0, ("the reference export failed:\n" + ref.out).c_str());
    QCOMPARE(tessera_test::last_json(ref.out)["self_check"].get<std::string>(), std::string("passed"));
    const auto expected = folder_contents(ref_out);
    QVERIFY(expected.size() >= 2);
    double t_tmp = -1, t_rename = -1;
    for (const auto& [what, t] : ref.first_seen) {
      if (what.rfind("create model.tmp-", 0) == 0) t_tmp = t;
      if (what == "moved_to model") t_rename = t;
    }
    QVERIFY2(t_tmp > 0 && t_rename > t_tmp, "the reference export did not write a temporary folder and rename it");
    std::printf("reference %s export: %.2f s (temporary folder at %.2f s, renamed at %.2f s), %zu files\n",
                format.c_str(), ref.seconds, t_tmp, t_rename, expected.size());

    std::vector<KillPlan> plans;
    {
      KillPlan p;
      p.label = "at a random moment";
      p.after_start_s = uniform(0.2, 0.95) * ref.seconds;
      plans.push_back(p);
    }
    {
      KillPlan p;
      p.label = "while the temporary folder is filled";
      p.on_fs = [](const FsEvent& e) { return (e.mask & IN_CREATE) && e.name.rfind("model.tmp-", 0) == 0; };
      const double d = uniform(0.0, 0.9) * (t_rename - t_tmp);
      p.delay_s = [d] { return d; };
      plans.push_back(p);
    }
    {
      KillPlan p;
      p.label = "the moment the folder is renamed into place";
      p.on_fs = [](const FsEvent& e) { return (e.mask & IN_MOVED_TO) && e.name == "model"; };
      plans.push_back(p);
    }
    {
      KillPlan p;
      p.label = "--force: while the new folder is filled";
      p.on_fs = [](const FsEvent& e) { return (e.mask & IN_CREATE) && e.name.rfind("model.tmp-", 0) == 0; };
      const double d = uniform(0.0, 0.9) * (t_rename - t_tmp);
      p.delay_s = [d] { return d; };
      plans.push_back(p);
    }
    {
      KillPlan p;
      p.label = "--force: as the new folder replaces the old";
      p.on_fs = [](const FsEvent& e) { return (e.mask & IN_MOVED_FROM) && e.name == "model"; };
      plans.push_back(p);
    }

    int killed = 0, attempt = 0;
    for (const auto& plan : plans) {
      const bool force = plan.label.rfind("--force", 0) == 0;
      if (force && !fs::exists(out)) {
        // --force needs something to replace: a plain export first (also: leftovers must not stop it).
        const auto r = tessera_test::run_cli("export --run \"" + R.run + "\" --out \"" + out + "\" --format " + format +
                                             " --json");
        QVERIFY2(r.status == 0, ("an export after killed ones failed:\n" + r.out).c_str());
      }
      if (!force && fs::exists(out)) fs::remove_all(out);
      ++attempt;
      const auto o = supervise(export_args(out, force), base + "/killed-" + std::to_string(attempt) + ".log", "",
                               {base + "/killed"}, plan);
      killed += o.killed ? 1 : 0;
      const bool present = fs::exists(out);
      QVERIFY2(o.killed || (o.exited && o.exit_code == 0),
               (plan.label + ": the export neither finished nor was killed (exit code " + std::to_string(o.exit_code) +
                ", signal " + std::to_string(o.signal) + "):\n" + o.out)
                   .c_str());
      if (!o.killed) QVERIFY2(present, (plan.label + ": the export finished but its destination is missing").c_str());
      if (present) {
        QVERIFY2(fs::is_directory(out), "the destination is not a folder");
        const auto got = folder_contents(out);
        std::string diff;
        for (const auto& [name, bytes] : expected)
          if (!got.count(name))
            diff += " missing " + name;
          else if (got.at(name) != bytes)
            diff += " differs " + name;
        for (const auto& [name, bytes] : got)
          if (!expected.count(name)) diff += " extra " + name;
        QVERIFY2(diff.empty(),
                 (plan.label + ": the destination exists but is not the complete export:" + diff).c_str());
      }
      std::printf("export %d: %-45s %s after %.2f s; destination %s\n", attempt, plan.label.c_str(),
                  o.killed ? "killed" : "exited", o.seconds,
                  present ? "complete (identical to the reference)" : "absent");
    }
    QVERIFY2(killed >= 3, ("only " + std::to_string(killed) + " of the exports were killed midway").c_str());

    // Whatever the kills left beside the destination does not stop the next export, to the same
    // destination, with or without --force.
    const auto leftovers = entries_starting_with(base + "/killed", "model.");
    std::printf("left beside the destination by the kills: %zu (%s%s)\n", leftovers.size(),
                leftovers.empty() ? "" : leftovers.front().c_str(), leftovers.size() > 1 ? ", ..." : "");
    if (fs::exists(out)) {
      const auto refused =
          tessera_test::run_cli("export --run \"" + R.run + "\" --out \"" + out + "\" --format " + format);
      QCOMPARE(refused.status, 1);
      QVERIFY2(refused.out.find("already exists") != std::string::npos, refused.out.c_str());
      const auto forced = tessera_test::run_cli("export --run \"" + R.run + "\" --out \"" + out + "\" --format " +
                                                format + " --force --json");
      QVERIFY2(forced.status == 0, ("--force over a complete export after kills failed:\n" + forced.out).c_str());
      QVERIFY(folder_contents(out) == expected);
      fs::remove_all(out);
    }
    const auto fresh =
        tessera_test::run_cli("export --run \"" + R.run + "\" --out \"" + out + "\" --format " + format + " --json");
    QVERIFY2(fresh.status == 0, ("an export to the killed exports' destination failed:\n" + fresh.out).c_str());
    QCOMPARE(tessera_test::last_json(fresh.out)["self_check"].get<std::string>(), std::string("passed"));
    QVERIFY(folder_contents(out) == expected);
    // The next writer removed what the killed ones left (their processes are gone).
    const auto after = entries_starting_with(base + "/killed", "model.");
    QVERIFY2(after.empty(),
             ("left beside the destination after the next export: " + (after.empty() ? "" : after.front())).c_str());
    std::printf("export kills: %d of %d killed midway, %.1f s in all\n", killed, attempt, seconds_since(t0));
  }
};

TESSERA_TEST_MAIN(TestKillResume, quantizeKilledAndResumedMatchesUninterruptedRun,
                  exportKilledLeavesNothingOrACompleteFolder)
#ifdef TESSERA_TEST_WITH_QT
#include "test_kill_resume.moc"
#endif
