#include "server/util/main_prologue.h"

#include <csignal>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "gflags/gflags.h"
#include "glog/logging.h"
#include "server/util/mutex_mode.h"

namespace kwq {

namespace {

absl::Notification* g_stop = nullptr;

void OnSignal(int) {
  if (g_stop != nullptr && !g_stop->HasBeenNotified()) g_stop->Notify();
}

// Flags defined in kwq's own sources (not glog's or gflags').
bool IsOwnFlag(const gflags::CommandLineFlagInfo& f) {
  for (const char* dir : {"server/", "tracker/", "tools/", "worker_sdk/"}) {
    if (f.filename.rfind(dir, 0) == 0) return true;
  }
  return false;
}

void PrintOwnHelp(const char* argv0) {
  std::cout << gflags::ProgramUsage() << "\n\nFlags:\n";
  std::vector<gflags::CommandLineFlagInfo> flags;
  gflags::GetAllFlags(&flags);
  for (const auto& f : flags) {
    if (!IsOwnFlag(f)) continue;
    std::cout << "  --" << f.name << " (" << f.description
              << ")\n      type: " << f.type << "  default: "
              << (f.default_value.empty() ? "\"\"" : f.default_value) << "\n";
  }
  std::cout << "\nLogging (glog) and flag-library options: " << argv0
            << " --helpfull\n";
}

}  // namespace

void InitBinary(const char* usage, int* argc, char*** argv) {
  gflags::SetUsageMessage(usage);
  gflags::SetVersionString(kVersion);
  for (int i = 1; i < *argc; ++i) {
    const char* a = (*argv)[i];
    if (std::strcmp(a, "--help") == 0 || std::strcmp(a, "-help") == 0 ||
        std::strcmp(a, "-h") == 0 || std::strcmp(a, "--helpshort") == 0) {
      PrintOwnHelp((*argv)[0]);
      std::exit(0);
    }
  }
  gflags::ParseCommandLineFlags(argc, argv, true);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging((*argv)[0]);
  DisableMutexDeadlockDetection();
}

absl::Notification& StopOnSignals() {
  static absl::Notification* stop = new absl::Notification();
  g_stop = stop;
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  return *stop;
}

}  // namespace kwq
