#include "tests/child_process.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

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
      address_ = s.substr(at + 13, s.find(' ', at + 13) - at - 13);
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

int ChildProcess::port() const {
  return std::stoi(address_.substr(address_.rfind(':') + 1));
}

}  // namespace kwq::testing
