#include "tests/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

namespace kwq::testing {

bool ChildProcess::Start(const std::string& binary,
                         const std::vector<std::string>& args) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const std::string path =
      std::string(srcdir ? srcdir : ".") + "/kwq/" + binary;
  int out[2];
  if (pipe(out) != 0) return false;
  pid_ = fork();
  if (pid_ < 0) return false;
  if (pid_ == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(path.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(path.c_str(), argv.data());
    _exit(127);
  }
  close(out[1]);
  // The line naming the address: "... listening on 127.0.0.1:PORT (...".
  FILE* f = fdopen(out[0], "r");
  char line[1024];
  while (f != nullptr && fgets(line, sizeof(line), f) != nullptr) {
    std::string s(line);
    auto at = s.find("listening on ");
    if (at != std::string::npos) {
      address_ = s.substr(at + 13, s.find_first_of(" ,\n", at + 13) - at - 13);
      line_ = s;
      break;
    }
  }
  // Later stdout lines go nowhere; the binaries print only that line on stdout.
  if (f != nullptr) fclose(f);
  return !address_.empty();
}

void ChildProcess::Kill(int sig) {
  if (pid_ <= 0) return;
  kill(pid_, sig);
  int status = 0;
  waitpid(pid_, &status, 0);
  exit_status_ = status;
  pid_ = -1;
}

bool ChildProcess::WaitExit(int timeout_ms) {
  if (pid_ <= 0) return exit_status_ != -1;
  for (int waited = 0;; waited += 20) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_status_ = status;
      pid_ = -1;
      return true;
    }
    if (waited >= timeout_ms) return false;
    usleep(20 * 1000);
  }
}

namespace {
std::string Slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
}  // namespace

CommandResult RunCommand(const std::string& binary,
                         const std::vector<std::string>& args,
                         const std::string& input, int timeout_s) {
  CommandResult r;
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string path =
      std::string(srcdir ? srcdir : ".") + "/kwq/" + binary;
  static int counter = 0;
  const std::string base = std::string(tmp ? tmp : "/tmp") + "/cmd-" +
                           std::to_string(getpid()) + "-" +
                           std::to_string(++counter);
  {
    std::ofstream in(base + ".in", std::ios::binary);
    in << input;
  }
  const pid_t pid = fork();
  if (pid < 0) return r;
  if (pid == 0) {
    int in = open((base + ".in").c_str(), O_RDONLY);
    int out = open((base + ".out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open((base + ".err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(in, STDIN_FILENO);
    dup2(out, STDOUT_FILENO);
    dup2(err, STDERR_FILENO);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(path.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(path.c_str(), argv.data());
    _exit(127);
  }
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  int status = 0;
  while (true) {
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      status = -1;
      break;
    }
    // Waiting for the child to exit: there is no blocking wait with a timeout.
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (status != -1 && WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  r.out = Slurp(base + ".out");
  r.err = Slurp(base + ".err");
  return r;
}

int ChildProcess::port() const {
  return std::stoi(address_.substr(address_.rfind(':') + 1));
}

}  // namespace kwq::testing
