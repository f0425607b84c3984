// kwqctl against a dev grid (`kwqctl dev`, a real child process on embedded
// Kafka): exit codes, JSON output parsed and checked, bad input messages, the
// piped job monitor.
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/child_process.h"

namespace kwq {
namespace {

using testing::CommandResult;
using testing::RunCommand;

google::protobuf::Struct ParseJson(const std::string& line) {
  google::protobuf::Struct s;
  auto st = google::protobuf::util::JsonStringToMessage(line, &s);
  EXPECT_TRUE(st.ok()) << "not JSON: " << line;
  return s;
}

std::string LastLine(const std::string& out) {
  std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
  return lines.empty() ? "" : lines.back();
}

double Num(const google::protobuf::Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  EXPECT_TRUE(it != s.fields().end()) << "missing " << key;
  return it == s.fields().end() ? -1 : it->second.number_value();
}

class KwqctlTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dev_ = new testing::ChildProcess();
    ASSERT_TRUE(
        dev_->Start("tools/kwqctl", {"dev", "--scheduler-listen", "127.0.0.1:0",
                                     "--tracker-listen", "127.0.0.1:0",
                                     "--console-listen", "127.0.0.1:0"}))
        << "kwqctl dev did not start";
    // "ready: scheduler listening on A tracker B"
    const std::string& line = dev_->line();
    tracker_ = line.substr(line.find(" tracker ") + 9);
    tracker_ = tracker_.substr(0, tracker_.find_first_of(" \n"));
    kafka_ = line.substr(line.find(" kafka ") + 7);
    kafka_ = kafka_.substr(0, kafka_.find_first_of(" \n"));
  }
  static void TearDownTestSuite() {
    dev_->Kill(15);
    delete dev_;
  }
  CommandResult Ctl(std::vector<std::string> args,
                    const std::string& input = "") {
    args.insert(args.end(),
                {"--scheduler", dev_->address(), "--tracker", tracker_});
    return RunCommand("tools/kwqctl", args, input);
  }
  static testing::ChildProcess* dev_;
  static std::string tracker_;
  static std::string kafka_;
};
testing::ChildProcess* KwqctlTest::dev_ = nullptr;
std::string KwqctlTest::tracker_;
std::string KwqctlTest::kafka_;

// --kafka-config against the test broker's secured listeners
// (tools/kafka/start.sh): every client of a simulated grid (scheduler,
// tracker, their producers and consumers) must carry the settings for the job
// to complete, and wrong ones are refused with the client's reason.
class KwqctlKafkaConfigTest : public ::testing::Test {
 protected:
  // The environment variable's value; skips (fails under
  // KWQ_REQUIRE_REAL_BROKER=1) when it is unset.
  static std::string Env(const char* name) {
    const char* v = std::getenv(name);
    if (v != nullptr && *v != '\0') return v;
    const char* req = std::getenv("KWQ_REQUIRE_REAL_BROKER");
    if (req != nullptr && std::string(req) == "1") {
      ADD_FAILURE() << "KWQ_REQUIRE_REAL_BROKER=1 but " << name << " is unset";
    }
    return "";
  }
  // Writes `properties` to a file of the test's temp dir; its path.
  static std::string Write(const std::string& name,
                           const std::string& properties) {
    const char* tmp = std::getenv("TEST_TMPDIR");
    const std::string path = std::string(tmp ? tmp : "/tmp") + "/" + name;
    std::ofstream(path) << properties;
    return path;
  }
  // A 500-task simulated grid over `bootstrap` with `config` completes.
  static void ExpectAGridRuns(const std::string& bootstrap,
                              const std::string& config) {
    auto r = RunCommand("tools/kwqctl",
                        {"simulate", "--tasks", "500", "--workers", "2",
                         "--slots", "4", "--bootstrap-servers", bootstrap,
                         "--kafka-config", config, "-o", "json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto j = ParseJson(LastLine(r.out));
    EXPECT_EQ(Num(j, "completed"), 500);
    EXPECT_EQ(Num(j, "tracker_completed"), 500);
    EXPECT_EQ(Num(j, "duplicates"), 0);
  }
  // A grid with `config` does not start, and says `why`.
  // The client is refused, and its message gives the reason in one of the
  // wordings `why` lists: OpenSSL and JDK versions word the same TLS alert
  // differently (e.g. "certificate required" or "sslv3 alert bad
  // certificate"), so a test names the stable part, not one pairing's text.
  static void ExpectRefused(const std::string& bootstrap,
                            const std::string& config,
                            const std::vector<std::string>& why) {
    auto bad = RunCommand("tools/kwqctl",
                          {"simulate", "--tasks", "10", "--bootstrap-servers",
                           bootstrap, "--kafka-config", config, "-o", "json"});
    EXPECT_NE(bad.exit_code, 0);
    EXPECT_TRUE(absl::StrContains(bad.err, "did not answer")) << bad.err;
    const std::string err = absl::AsciiStrToLower(bad.err);
    bool named = false;
    for (const std::string& w : why) {
      named |= absl::StrContains(err, absl::AsciiStrToLower(w));
    }
    EXPECT_TRUE(named) << "none of [" << absl::StrJoin(why, " | ")
                       << "] in: " << bad.err;
  }
};

TEST_F(KwqctlKafkaConfigTest, OverSaslAGridRunsAndAWrongPasswordIsRefused) {
  const std::string sasl = Env("KWQ_KAFKA_SASL_BOOTSTRAP");
  if (sasl.empty()) GTEST_SKIP() << "no SASL listener";
  auto plain = [](const std::string& password) {
    return "# the test broker's SASL/PLAIN listener\n"
           "security.protocol=SASL_PLAINTEXT\nsasl.mechanisms=PLAIN\n"
           "sasl.username=kwq\nsasl.password=" +
           password + "\n";
  };
  ExpectAGridRuns(sasl, Write("sasl.properties", plain("kwq-secret")));
  ExpectRefused(sasl, Write("sasl-bad.properties", plain("wrong")),
                {"Invalid username or password", "authentication failed",
                 "SaslAuthenticate"});
}

TEST_F(KwqctlKafkaConfigTest, OverTlsAGridRunsAndAnUntrustedBrokerIsRefused) {
  const std::string tls = Env("KWQ_KAFKA_TLS_BOOTSTRAP");
  const std::string ca = Env("KWQ_KAFKA_TLS_CA");
  if (tls.empty() || ca.empty()) GTEST_SKIP() << "no TLS listener";
  ExpectAGridRuns(tls, Write("tls.properties",
                             "security.protocol=SSL\n"
                             "ssl.ca.location=" +
                                 ca + "\n"));
  // Without the test CA the broker's certificate cannot be verified.
  ExpectRefused(
      tls, Write("tls-bad.properties", "security.protocol=SSL\n"),
      {"certificate verify failed", "unable to get local issuer",
       "self-signed certificate", "self signed certificate", "unknown ca"});
}

TEST_F(KwqctlKafkaConfigTest,
       OverMutualTlsAGridRunsAndAClientWithoutACertificateIsRefused) {
  const std::string mtls = Env("KWQ_KAFKA_MTLS_BOOTSTRAP");
  const std::string ca = Env("KWQ_KAFKA_TLS_CA");
  const std::string cert = Env("KWQ_KAFKA_TLS_CLIENT_CERT");
  const std::string key = Env("KWQ_KAFKA_TLS_CLIENT_KEY");
  if (mtls.empty() || ca.empty() || cert.empty() || key.empty()) {
    GTEST_SKIP() << "no mutual-TLS listener";
  }
  const std::string tls = "security.protocol=SSL\nssl.ca.location=" + ca + "\n";
  ExpectAGridRuns(
      mtls, Write("mtls.properties", tls + "ssl.certificate.location=" + cert +
                                         "\nssl.key.location=" + key + "\n"));
  // The broker asks for a client certificate and gets none.
  // The broker asks for a client certificate and gets none: a TLS alert
  // about the certificate (116 "certificate required" with TLS 1.3, 42 "bad
  // certificate" on other OpenSSL/JDK pairs) or a failed handshake.
  ExpectRefused(mtls, Write("mtls-bad.properties", tls),
                {"certificate required", "bad certificate", "handshake failure",
                 "alert"});
}

TEST_F(KwqctlTest, SimulateEndsWithOneJsonLineOfCheckedFigures) {
  auto r = Ctl({"simulate", "--tasks", "3000", "--workers", "3", "--slots", "4",
                "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = ParseJson(LastLine(r.out));
  EXPECT_EQ(Num(j, "submitted"), 3000);
  EXPECT_EQ(Num(j, "completed"), 3000);
  EXPECT_EQ(Num(j, "failed"), 0);
  EXPECT_EQ(Num(j, "duplicates"), 0);
  EXPECT_EQ(Num(j, "tracker_completed"), 3000);
  EXPECT_GT(Num(j, "tasks_per_second"), 0);
  EXPECT_GE(Num(j, "submit_to_start_p99_ms"), Num(j, "submit_to_start_p50_ms"));
  EXPECT_FALSE(j.fields().count("affinity_hit_rate"));
  EXPECT_GT(Num(j, "cpu_seconds"), 0);  // of the measured window
  EXPECT_FALSE(j.fields().count("cpu_seconds_of_pid"));  // no --cpu-of-pid
  // Piped: the monitor (on stderr here) writes one line per update, no escape
  // codes.
  EXPECT_TRUE(absl::StrContains(r.err, "100.0% completed 3000")) << r.err;
  EXPECT_FALSE(absl::StrContains(r.err, "\x1b["))
      << "escape codes in piped output";
}

TEST_F(KwqctlTest, AJobWithFailuresExitsOneAndIsVisibleTaskByTask) {
  auto r = Ctl({"simulate", "--tasks", "40", "--workers", "1", "--slots", "4",
                "--error-rate", "0.95", "--affinity-keys", "2", "-o", "json"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  auto j = ParseJson(LastLine(r.out));
  EXPECT_GT(Num(j, "failed"), 0);
  EXPECT_EQ(Num(j, "completed") + Num(j, "failed"), 40);
  EXPECT_GT(Num(j, "retries"), 0);
  EXPECT_TRUE(j.fields().count("affinity_hit_rate"));

  // The job, from the list; its monitor ends with exit 1 (tasks failed).
  auto list = Ctl({"job", "list", "-o", "jsonl"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  std::string job;
  const std::vector<std::string> lines =
      absl::StrSplit(list.out, '\n', absl::SkipEmpty());
  for (const std::string& line : lines) {
    auto s = ParseJson(line);
    // int64 counts are JSON numbers in kwqctl (issue 17).
    if (s.fields()
            .at("counts")
            .struct_value()
            .fields()
            .at("total")
            .number_value() == 40) {
      job = s.fields().at("job_id").string_value();
    }
  }
  ASSERT_FALSE(job.empty()) << list.out;
  auto watch = Ctl({"job", "watch", job});
  EXPECT_EQ(watch.exit_code, 1) << watch.err;
  EXPECT_TRUE(absl::StrContains(watch.out, "done:")) << watch.out;

  auto failed =
      Ctl({"task", "list", "--job", job, "--state", "failed", "-o", "jsonl"});
  ASSERT_EQ(failed.exit_code, 0) << failed.err;
  const std::string first =
      std::vector<std::string>(
          absl::StrSplit(failed.out, '\n', absl::SkipEmpty()))
          .front();
  const std::string id = ParseJson(first).fields().at("task_id").string_value();
  auto task = Ctl({"task", "get", id, "-o", "json"});
  ASSERT_EQ(task.exit_code, 0) << task.err;
  auto t = ParseJson(task.out);
  EXPECT_EQ(t.fields().at("state").string_value(), "FAILED");
  EXPECT_EQ(t.fields().at("history").list_value().values_size(),
            3);  // 3 attempts
  auto table = Ctl({"task", "get", id});
  EXPECT_TRUE(absl::StrContains(table.out, "simulated error")) << table.out;

  // The completed tasks' results, read from kwq.results in Kafka (the dev
  // grid's
  // embedded cluster listens on loopback): one line per completed task.
  auto results = Ctl(
      {"job", "results", job, "--bootstrap-servers", kafka_, "-o", "jsonl"});
  ASSERT_EQ(results.exit_code, 0) << results.err;
  const std::vector<std::string> result_lines =
      absl::StrSplit(results.out, '\n', absl::SkipEmpty());
  EXPECT_EQ(static_cast<double>(result_lines.size()), Num(j, "completed"));
  for (const auto& line : result_lines) {
    EXPECT_EQ(ParseJson(line).fields().at("job_id").string_value(), job);
  }

  // Its failed tasks are dead letters (issue 17: kwqctl dlq); one goes back
  // as a new task.
  auto dlq = Ctl({"dlq", "list", "--job", job, "--bootstrap-servers", kafka_,
                  "-o", "jsonl"});
  ASSERT_EQ(dlq.exit_code, 0) << dlq.err;
  const std::vector<std::string> letters =
      absl::StrSplit(dlq.out, '\n', absl::SkipEmpty());
  EXPECT_EQ(static_cast<double>(letters.size()), Num(j, "failed"));
  auto table_dlq =
      Ctl({"dlq", "list", "--job", job, "--bootstrap-servers", kafka_});
  EXPECT_TRUE(absl::StrContains(table_dlq.out, "TASK")) << table_dlq.out;
  EXPECT_TRUE(absl::StrContains(table_dlq.out, id)) << table_dlq.out;
  auto again = Ctl({"dlq", "resubmit", id, "--as", id + ".again",
                    "--bootstrap-servers", kafka_});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_TRUE(absl::StrContains(again.out, "as " + id + ".again")) << again.out;
  auto missing =
      Ctl({"dlq", "get", "no-such-task", "--bootstrap-servers", kafka_});
  EXPECT_EQ(missing.exit_code, 1);
}

TEST_F(KwqctlTest, PauseAndResumeAnswerInSentences) {
  ASSERT_EQ(Ctl({"submit", "--job", "pausable", "--payload", "x"}).exit_code,
            0);
  auto paused = Ctl({"job", "pause", "pausable"});
  ASSERT_EQ(paused.exit_code, 0) << paused.err;
  EXPECT_EQ(paused.out.rfind("Job pausable is paused", 0), 0u) << paused.out;
  // The tracker does not know pauses; kwqctl asks the scheduler.
  ASSERT_EQ(Ctl({"submit", "--job", "pausable", "--payload", "y"}).exit_code,
            0);
  std::string got;
  for (int i = 0; i < 100 && !absl::StrContains(got, "PAUSED"); ++i) {
    got = Ctl({"job", "get", "pausable"}).out;  // known to the tracker soon
    if (!absl::StrContains(got, "PAUSED"))
      absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(absl::StrContains(got, "state PAUSED")) << got;
  auto list = Ctl({"job", "list"});
  EXPECT_TRUE(absl::StrContains(list.out, "PAUSED")) << list.out;
  auto resumed = Ctl({"job", "resume", "pausable"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(resumed.out.rfind("Job pausable is resumed", 0), 0u) << resumed.out;
}

TEST_F(KwqctlTest, QueueListShowsDepthAgeAndPauses) {
  ASSERT_EQ(
      Ctl({"submit", "--job", "queued-p6", "--priority", "6", "--payload", "x"})
          .exit_code,
      0);
  ASSERT_EQ(Ctl({"queue", "pause", "--priority", "6"}).exit_code, 0);
  auto list = Ctl({"queue", "list", "-o", "json"});
  ASSERT_EQ(Ctl({"queue", "resume", "--priority", "6"}).exit_code, 0);
  ASSERT_EQ(list.exit_code, 0) << list.err;
  auto j = ParseJson(list.out);
  bool seen = false;
  for (const auto& q : j.fields().at("queues").list_value().values()) {
    const auto& f = q.struct_value().fields();
    if (f.at("priority").number_value() != 6) continue;
    seen = true;
    EXPECT_TRUE(f.at("paused").bool_value()) << list.out;
  }
  EXPECT_TRUE(seen) << list.out;
  auto table = Ctl({"queue", "list"});
  EXPECT_TRUE(absl::StrContains(table.out, "PRIORITY")) << table.out;
  EXPECT_TRUE(absl::StrContains(table.out, "p6")) << table.out;
}

TEST_F(KwqctlTest, SubmitPrintsIdsAndRejectsBadInputWithAClearMessage) {
  auto one = Ctl({"submit", "--job", "cli-job", "--tag", "book=b1", "--payload",
                  "x", "-o", "json"});
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_EQ(
      ParseJson(one.out).fields().at("task_ids").list_value().values_size(), 1);

  auto many = Ctl({"submit", "--job", "cli-job", "--file", "-"},
                  "{\"id\":\"cli-1\",\"priority\":3}\n{\"id\":\"cli-2\","
                  "\"tags\":{\"k\":\"v\"}}\n");
  ASSERT_EQ(many.exit_code, 0) << many.err;
  EXPECT_EQ(many.out, "cli-1\ncli-2\n");

  auto bad_line = Ctl({"submit", "--job", "cli-job", "--file", "-"},
                      "{\"id\":\"cli-3\"}\n{\"priority\": \"high\"}\n");
  EXPECT_EQ(bad_line.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(bad_line.err, "-:2: not a kwq.v1.Task"))
      << bad_line.err;

  auto bad_priority = Ctl({"submit", "--job", "j", "--priority", "12"});
  EXPECT_EQ(bad_priority.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(bad_priority.err, "--priority must be 0-9"))
      << bad_priority.err;

  auto no_job = Ctl({"submit"});
  EXPECT_EQ(no_job.exit_code, 2);
  auto unknown_flag = Ctl({"job", "list", "--colour", "red"});
  EXPECT_EQ(unknown_flag.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(unknown_flag.err, "unknown flag --colour"))
      << unknown_flag.err;
  auto unknown_cmd = Ctl({"frobnicate"});
  EXPECT_EQ(unknown_cmd.exit_code, 2);
}

TEST_F(KwqctlTest, UnknownIdsAndUnreachableServersSayWhatIsWrong) {
  auto job = Ctl({"job", "get", "no-such-job"});
  EXPECT_EQ(job.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(job.err, "no job no-such-job")) << job.err;
  auto task = Ctl({"task", "get", "no-such-task"});
  EXPECT_EQ(task.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(task.err, "no task no-such-task")) << task.err;
  auto down = RunCommand("tools/kwqctl", {"worker", "list", "--scheduler",
                                          "127.0.0.1:1", "--timeout-s", "2"});
  EXPECT_EQ(down.exit_code, 1);
  EXPECT_TRUE(
      absl::StrContains(down.err, "cannot reach the scheduler at 127.0.0.1:1"))
      << down.err;
  auto workers = Ctl({"worker", "list", "-o", "json"});
  EXPECT_EQ(workers.exit_code, 0) << workers.err;
  ParseJson(workers.out);
}

// Issue 17: every binary's --help shows its own flags, not glog's first, and
// --version answers.
TEST(KwqctlCliTest, BinariesHelpShowsTheirOwnFlags) {
  for (const auto& [binary, own] :
       std::vector<std::pair<std::string, std::string>>{
           {"server/kwq_scheduler", "--listen"},
           {"tracker/kwq_tracker", "--db"},
           {"worker_sdk/examples/shell_worker", "--slots"}}) {
    auto r = RunCommand(binary, {"--help"});
    EXPECT_EQ(r.exit_code, 0) << binary;
    EXPECT_NE(r.out.find(own + " ("), std::string::npos) << binary << r.out;
    EXPECT_EQ(r.out.find("--logtostderr"), std::string::npos) << binary;
    EXPECT_NE(r.out.find("--helpfull"), std::string::npos) << binary;
    r = RunCommand(binary, {"--version"});
    EXPECT_EQ(r.exit_code, 0) << binary;
    EXPECT_NE(r.out.find("version "), std::string::npos) << binary << r.out;
  }
}

// Issue 17, point 5: a second server on a port in use is an error (exit 1,
// "cannot listen"), not a second listener sharing it.
TEST(KwqctlCliTest, ASecondServerOnABusyPortExitsWithAClearError) {
  testing::ChildProcess first;
  ASSERT_TRUE(first.Start(
      "server/kwq_scheduler",
      {"--kafka=embedded", "--listen=127.0.0.1:0", "--partitions=1"}));
  auto second = RunCommand(
      "server/kwq_scheduler",
      {"--kafka=embedded", "--listen=" + first.address(), "--partitions=1"}, "",
      60);
  EXPECT_EQ(second.exit_code, 1) << second.err;
  EXPECT_NE(second.err.find("cannot listen on " + first.address()),
            std::string::npos)
      << second.err;
  auto tracker =
      RunCommand("tracker/kwq_tracker",
                 {"--kafka=embedded", "--listen=" + first.address(),
                  "--db=" + std::string(getenv("TEST_TMPDIR")) + "/busy-db"},
                 "", 60);
  EXPECT_EQ(tracker.exit_code, 1) << tracker.err;
  EXPECT_NE(tracker.err.find("cannot listen"), std::string::npos)
      << tracker.err;
}

// Issue 17's CLI: per-command help with examples, a version, "did you mean",
// and a token for a secured grid whose line the servers accept.
TEST(KwqctlCliTest, HelpVersionAndSuggestionsForPeople) {
  auto r = RunCommand("tools/kwqctl", {"job", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("job watch JOB"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Examples:"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("simulate"), std::string::npos) << "only job's lines";
  r = RunCommand("tools/kwqctl", {"-h", "submit"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--payload"), std::string::npos) << r.out;
  r = RunCommand("tools/kwqctl", {"--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.rfind("kwqctl ", 0), 0u) << r.out;
  r = RunCommand("tools/kwqctl", {"jbo", "list"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("did you mean 'job'"), std::string::npos) << r.err;
  r = RunCommand("tools/kwqctl",
                 {"token", "new", "--principal", "ops", "--roles", "operate"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("token sha256:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" ops operate"), std::string::npos) << r.out;
  r = RunCommand("tools/kwqctl",
                 {"token", "new", "--principal", "ops", "--roles", "root"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown role"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace kwq
