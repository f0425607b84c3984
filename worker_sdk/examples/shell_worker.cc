// A worker that runs each task's payload as a shell command (/bin/sh -c) and
// returns its standard output. A non-zero exit is a task error (fatal unless
// --retry_failures); a cancelled task has its command killed.
//
//   bazel-bin/worker_sdk/examples/shell_worker --scheduler=127.0.0.1:50051
//   kwqctl submit --job sh --payload 'echo hello from $(hostname)'
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <iostream>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "server/util/main_prologue.h"
#include "worker_sdk/worker.h"

DEFINE_string(scheduler, "127.0.0.1:50051", "kwq_scheduler address");
DEFINE_string(worker_id, "", "worker id (default: host-pid)");
DEFINE_int32(slots, 2, "commands run at once");
DEFINE_bool(retry_failures, false,
            "a non-zero exit is a retryable error (default: fatal)");
DEFINE_int64(max_output_bytes, 1 << 20,
             "standard output kept as the result, at most");
DEFINE_int32(grace_ms, 10000,
             "on SIGTERM, how long running commands may finish");

namespace {

kwq::worker::Outcome RunCommand(kwq::worker::TaskContext& ctx) {
  const std::string command = ctx.task().payload();
  if (command.empty())
    return kwq::worker::Outcome::Error("empty payload", false);
  int out[2];
  if (pipe(out) != 0) return kwq::worker::Outcome::Error("pipe failed");
  const pid_t pid = fork();
  if (pid < 0) return kwq::worker::Outcome::Error("fork failed");
  if (pid == 0) {
    setpgid(
        0,
        0);  // its own process group, so that a cancel kills the whole command
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    close(out[1]);
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  std::string output;
  bool truncated = false, killed = false;
  char buf[4096];
  while (true) {
    if (ctx.cancelled() && !killed) {
      kill(-pid, SIGKILL);
      killed = true;
    }
    pollfd p{out[0], POLLIN, 0};
    const int ready = poll(&p, 1, 50);  // wakes up to check for cancellation
    if (ready < 0) break;
    if (ready == 0) continue;
    const ssize_t n = read(out[0], buf, sizeof(buf));
    if (n <= 0) break;
    if (static_cast<int64_t>(output.size()) < FLAGS_max_output_bytes) {
      output.append(buf, static_cast<size_t>(n));
    } else {
      truncated = true;
    }
  }
  close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (killed) return kwq::worker::Outcome::Error("cancelled: command killed");
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    if (truncated) output.resize(static_cast<size_t>(FLAGS_max_output_bytes));
    return kwq::worker::Outcome::Success(output);
  }
  const std::string why =
      WIFEXITED(status) ? absl::StrCat("exit status ", WEXITSTATUS(status))
                        : absl::StrCat("killed by signal ", WTERMSIG(status));
  return kwq::worker::Outcome::Error(absl::StrCat("command failed: ", why),
                                     FLAGS_retry_failures);
}

}  // namespace

int main(int argc, char** argv) {
  kwq::InitBinary(

      "shell_worker --scheduler=HOST:PORT [--slots N]\n"
      "A secured scheduler: KWQ_TLS_CA, KWQ_TLS_CERT, KWQ_TLS_KEY, KWQ_TOKEN "
      "(environment) give the TLS files and the bearer token.",
      &argc, &argv);
  if (FLAGS_slots < 1 || FLAGS_max_output_bytes < 0) {
    std::cerr << "shell_worker: need --slots>=1 and --max_output_bytes>=0\n";
    return 2;
  }
  kwq::worker::WorkerOptions options;
  options.scheduler_address = FLAGS_scheduler;
  // TLS files and the bearer token: KWQ_TLS_CA, KWQ_TLS_CERT, KWQ_TLS_KEY,
  // KWQ_TOKEN.
  options.security = kwq::ClientSecurity::FromEnv();
  options.worker_id = FLAGS_worker_id;
  options.slots = FLAGS_slots;
  kwq::worker::Worker worker(options, RunCommand);
  absl::Notification& stop = kwq::StopOnSignals();
  std::thread run([&] { worker.Run(); });
  stop.WaitForNotification();
  worker.Stop(absl::Milliseconds(FLAGS_grace_ms));
  run.join();
  return 0;
}
