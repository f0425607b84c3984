#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace kwq::testing {

// A kwq binary run as a child process (a real process, so that tests can kill
// -9 it). Start() execs it and reads its stdout until the line that says
// "listening on HOST:PORT"; the address is then available. The child is killed
// by its own pid (SIGKILL) in the destructor at the latest. Its stderr is the
// test's.
class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess() { Kill(9); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // `binary` is relative to the runfiles root of workspace kwq, e.g.
  // "server/kwq_scheduler". Returns false when it did not start or never said
  // where it listens.
  bool Start(const std::string& binary, const std::vector<std::string>& args);
  // Sends `sig` and waits for the child to end; no-op once it ended.
  void Kill(int sig);
  // True once the child ended on its own (exit_status() then holds its waitpid
  // status); polls for up to `timeout_ms`.
  bool WaitExit(int timeout_ms);

  const std::string& address() const { return address_; }
  // The whole line that named the address.
  const std::string& line() const { return line_; }
  int port() const;
  // waitpid status after Kill, -1 before.
  int exit_status() const { return exit_status_; }

 private:
  pid_t pid_ = -1;
  std::string address_;
  std::string line_;
  int exit_status_ = -1;
};

// Runs a kwq binary (runfiles-relative like ChildProcess) to its end with
// `input` on its stdin, killing it (SIGKILL, by its pid) after `timeout_s`.
// Captures stdout and stderr.
struct CommandResult {
  int exit_code = -1;  // -1: killed or did not start
  std::string out;
  std::string err;
};
CommandResult RunCommand(const std::string& binary,
                         const std::vector<std::string>& args,
                         const std::string& input = "", int timeout_s = 120);

}  // namespace kwq::testing
