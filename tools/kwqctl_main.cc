// kwqctl: the kwq command line (dev grid, submission, job monitor, admin,
// simulator).
#include <algorithm>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "glog/logging.h"
#include "server/util/mutex_mode.h"
#include "tools/ctl/commands.h"

namespace {

constexpr char kUsage[] = R"(kwqctl: the kwq command line

Usage: kwqctl <noun> <verb> [args] [flags]

  dev                          scheduler + tracker + embedded Kafka in this process
                               [--scheduler-listen 127.0.0.1:50051] [--tracker-listen 127.0.0.1:50052]
                               [--console-listen 127.0.0.1:8080] (web console; "" turns it off)
                               [--bootstrap-servers HOST:PORT] [--kafka-config FILE]
                               [--topic-prefix kwq]
  submit                       one task from flags: --job J [--id ID] [--priority 0-9]
                               [--tag k=v]... [--affinity K]... [--label L]... [--max-attempts N]
                               [--timeout 30s] [--payload TEXT | --payload-file F]
                               or many: --file F.jsonl (or - for stdin), one kwq.v1.Task as
                               JSON per line (flags fill what a line leaves out) [--batch 1000]
  job list                     jobs, newest first [--page-size N] [--page-token T]
  job get JOB                  counts per state, per tag, rate, ETA, latest errors
  job watch JOB                the live job monitor; exit 0 if every task completed, 1 if any failed
  job pause|resume|cancel JOB  (scheduler control)
  job results JOB              results of completed tasks, from <prefix>.results in Kafka
                               --bootstrap-servers HOST:PORT [--kafka-config FILE]
                               [--topic-prefix kwq]
  task get ID                  a task with every attempt and its stage times
  task list --job J            [--state S] [--tag k=v] [--page-size N] [--page-token T]
  task why ID                  what holds a queued task back (scheduler's explanation)
  queue list                   depth and oldest age per priority, in flight, pauses
                               (of the instance at --scheduler)
  queue pause|resume           [--priority P] (everything without it)
  worker list                  connected workers, slots, in flight, heartbeats
  dlq list                     dead letters, from <prefix>.dlq in Kafka [--job J]
                               --bootstrap-servers HOST:PORT [--kafka-config FILE] [--topic-prefix kwq]
  dlq get ID                   one dead letter (by task id or TOPIC/PARTITION/OFFSET), as JSON
  dlq resubmit ID              submit a dead-lettered task again as a new task [--as NEW_ID]
                               (default id: ID.r<unix seconds>)
  token new --principal P --roles R[,R]
                               a new bearer token and its identities-file line (roles:
                               submit, work, operate, view, admin; server/auth/README.md)
  simulate                     a simulated job on SDK workers in this process, with the monitor
                               [--tasks 100000] [--workers 8] [--slots 16] [--prefetch 0]
                               (tasks a worker queues beyond its slots) [--payload-bytes 0]
                               [--duration-ms 0]
                               [--jitter-ms 0] [--error-rate 0] [--priorities 10]
                               [--affinity-keys K] [--batch 1000] [--bootstrap-servers HOST:PORT]
                               [--kafka-config FILE] [--partitions 4] (per topic of the
                               grid it starts) [--console-listen 127.0.0.1:0] (its console;
                               "" turns it off)
                               [--rate R] (one task per Submit at R/s: latency)
                               [--cpu-of-pid PID] (also report PID's CPU seconds
                               in the measured window, e.g. the Kafka broker's)
                               [--inline] (workers run tasks on their stream's
                               thread: WorkerOptions::run_inline, for tiny tasks)
                               (without --scheduler it starts the dev grid itself)

Global flags:
  --scheduler HOST:PORT   default 127.0.0.1:50051
  --tracker HOST:PORT     default 127.0.0.1:50052
  -h, --help              this text; kwqctl COMMAND --help: that command with examples
  --version               kwqctl's version (also: kwqctl version)
  -o table|json|jsonl     output (JSON only on stdout; progress and monitors on stderr
                          unless the monitor is the command's output)
  --timeout-s N           per-RPC deadline, default 10
  --tls-ca FILE           TLS to the scheduler and tracker, trusting this CA (env KWQ_TLS_CA;
                          --tls alone: the system roots)
  --tls-cert FILE, --tls-key FILE
                          client certificate for mutual TLS (env KWQ_TLS_CERT, KWQ_TLS_KEY)
  --token TOKEN           bearer token (env KWQ_TOKEN; prefer the env: flags show in ps)
  --tls-server-name NAME  the name the server certificate holds, when the address is not it

--kafka-config FILE: librdkafka properties (key=value lines, # comments) for every Kafka
client of the command, e.g. security.protocol=SASL_SSL, ssl.ca.location=/etc/kafka/ca.pem,
sasl.mechanisms=PLAIN, sasl.username=..., sasl.password=... (real Kafka only).
)";

constexpr char kVersion[] = "kwqctl 0.4.0 (kwq.v1 protocol)";

// Examples per command, shown by `kwqctl COMMAND --help`.
const std::map<std::string, std::string>& Examples() {
  static const auto* m = new std::map<std::string, std::string>{
      {"dev",
       "  kwqctl dev\n  kwqctl dev --bootstrap-servers 127.0.0.1:9092\n"},
      {"submit",
       "  kwqctl submit --job eod --priority 7 --tag book=rates --payload "
       "'price swap 42'\n"
       "  kwqctl submit --job eod --file tasks.jsonl   # one kwq.v1.Task as "
       "JSON per line\n"},
      {"job",
       "  kwqctl job list\n  kwqctl job watch eod\n  kwqctl job pause eod\n"
       "  kwqctl job results eod --bootstrap-servers 127.0.0.1:9092\n"},
      {"task",
       "  kwqctl task get eod-17\n  kwqctl task list --job eod "
       "--state FAILED\n  kwqctl task why eod-17\n"},
      {"queue",
       "  kwqctl queue list\n  kwqctl queue pause --priority 0\n"
       "  kwqctl queue resume\n"},
      {"worker", "  kwqctl worker list -o json\n"},
      {"simulate", "  kwqctl simulate --tasks 20000 --workers 4 --slots 8\n"},
      {"token",
       "  kwqctl token new --principal risk-batch --roles submit,view\n"},
  };
  return *m;
}

// The usage lines of one command (its entry and the lines continuing it).
std::string CommandUsage(const std::string& noun) {
  std::string out;
  bool in = false;
  std::istringstream lines(kUsage);
  for (std::string line; std::getline(lines, line);) {
    const bool entry =
        line.size() > 2 && line[0] == ' ' && line[1] == ' ' && line[2] != ' ';
    if (entry)
      in = line.compare(2, noun.size() + 1, noun + " ") == 0 ||
           line.substr(2) == noun;
    else if (line.rfind("      ", 0) != 0)
      in = false;
    if (in) out += line + "\n";
  }
  return out;
}

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min(
          {row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// "unknown command 'jbo'; did you mean 'job'?"
std::string UnknownCommand(const std::string& noun) {
  std::string best;
  size_t best_d = 3;  // suggest within 2 edits
  for (const auto& [name, unused] : Examples()) {
    const size_t d = EditDistance(noun, name);
    if (d < best_d) {
      best_d = d;
      best = name;
    }
  }
  std::string msg = "unknown command '" + noun + "'";
  if (!best.empty()) msg += "; did you mean '" + best + "'?";
  return msg + " (see kwqctl --help)";
}

}  // namespace

int main(int argc, char** argv) {
  FLAGS_logtostderr = true;
  if (!getenv("GLOG_minloglevel"))
    FLAGS_minloglevel = 2;  // only errors from libraries
  google::InitGoogleLogging(argv[0]);
  kwq::DisableMutexDeadlockDetection();
  kwq::ctl::Args args;
  std::string error;
  if (!args.Parse(argc, argv, &error))
    return kwq::ctl::Fail(kwq::ctl::kExitUsage, error);
  if (args.GetBool("version") ||
      (!args.words().empty() && args.word(0) == "version")) {
    std::cout << kVersion << "\n";
    return kwq::ctl::kExitOk;
  }
  // `kwqctl job --help`, `kwqctl help job`: that command's usage and examples.
  const std::string asked = !args.words().empty() && args.word(0) == "help"
                                ? (args.words().size() > 1 ? args.word(1) : "")
                                : (args.words().empty() ? "" : args.word(0));
  if ((args.GetBool("help") ||
       (!args.words().empty() && args.word(0) == "help")) &&
      Examples().count(asked) > 0) {
    std::cout << "Usage:\n"
              << CommandUsage(asked) << "\nExamples:\n"
              << Examples().at(asked) << "\nGlobal flags: kwqctl --help\n";
    return kwq::ctl::kExitOk;
  }
  if (args.GetBool("help") || args.words().empty() || args.word(0) == "help") {
    std::cout << kUsage;
    return args.words().empty() && !args.GetBool("help") ? kwq::ctl::kExitUsage
                                                         : kwq::ctl::kExitOk;
  }
  kwq::ctl::Context c{args};
  c.scheduler = args.Get("scheduler", c.scheduler);
  c.tracker = args.Get("tracker", c.tracker);
  const std::string o = args.Get("o", "table");
  if (o == "table") {
    c.format = kwq::ctl::Format::kTable;
  } else if (o == "json") {
    c.format = kwq::ctl::Format::kJson;
  } else if (o == "jsonl") {
    c.format = kwq::ctl::Format::kJsonl;
  } else {
    return kwq::ctl::Fail(kwq::ctl::kExitUsage,
                          "-o must be table, json or jsonl");
  }
  long long t = 10;
  if (!args.GetInt("timeout_s", 10, &t, &error) || t < 1) {
    return kwq::ctl::Fail(
        kwq::ctl::kExitUsage,
        error.empty() ? "--timeout-s must be at least 1" : error);
  }
  c.timeout_s = static_cast<int>(t);
  c.security = kwq::ClientSecurity::FromEnv();
  c.security.ca_file = args.Get("tls_ca", c.security.ca_file);
  c.security.cert_file = args.Get("tls_cert", c.security.cert_file);
  c.security.key_file = args.Get("tls_key", c.security.key_file);
  c.security.token = args.Get("token", c.security.token);
  c.security.server_name = args.Get("tls_server_name", c.security.server_name);
  if (args.GetBool("tls")) c.security.tls = true;
  auto credentials = c.security.Credentials();
  if (!credentials.ok()) {
    return kwq::ctl::Fail(kwq::ctl::kExitUsage,
                          std::string(credentials.status().message()));
  }
  c.credentials = *credentials;
  const std::string noun = args.word(0);
  if (noun == "dev") return kwq::ctl::RunDev(c);
  if (noun == "submit") return kwq::ctl::RunSubmit(c);
  if (noun == "job") return kwq::ctl::RunJob(c);
  if (noun == "task") return kwq::ctl::RunTask(c);
  if (noun == "queue") return kwq::ctl::RunQueue(c);
  if (noun == "worker") return kwq::ctl::RunWorker(c);
  if (noun == "simulate") return kwq::ctl::RunSimulate(c);
  if (noun == "token") return kwq::ctl::RunToken(c);
  if (noun == "dlq") return kwq::ctl::RunDlq(c);
  return kwq::ctl::Fail(kwq::ctl::kExitUsage, UnknownCommand(noun));
}
