#include "tools/ctl/args.h"

#include <algorithm>
#include <cstdlib>

namespace kwq::ctl {

namespace {
// Flags that take no value.
const std::set<std::string>& BoolFlags() {
  static const auto* s = new std::set<std::string>{
      "help", "h", "version", "rebuild", "all", "tls", "no_color", "inline"};
  return *s;
}
const std::set<std::string>& GlobalFlags() {
  static const auto* s = new std::set<std::string>{
      "scheduler",      "tracker", "o",      "help",     "h",       "version",
      "timeout_s",      "tls",     "tls_ca", "tls_cert", "tls_key", "token",
      "tls_server_name"};
  return *s;
}
}  // namespace

std::string Args::Norm(std::string name) {
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

bool Args::Parse(int argc, char** argv, std::string* error) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      for (++i; i < argc; ++i) words_.push_back(argv[i]);
      break;
    }
    if (a.size() > 1 && a[0] == '-' && a != "-") {
      std::string body = a.substr(a[1] == '-' ? 2 : 1);
      std::string name, value;
      auto eq = body.find('=');
      if (eq != std::string::npos) {
        name = Norm(body.substr(0, eq));
        value = body.substr(eq + 1);
      } else {
        name = Norm(body);
        if (name == "h") name = "help";
        if (BoolFlags().count(name)) {
          value = "true";
        } else if (i + 1 < argc) {
          value = argv[++i];
        } else {
          *error = "flag --" + name + " needs a value";
          return false;
        }
      }
      if (name.empty()) {
        *error = "empty flag name in '" + a + "'";
        return false;
      }
      flags_.emplace(name, value);
      order_.push_back(name);
    } else {
      words_.push_back(a);
    }
  }
  return true;
}

std::string Args::Get(const std::string& name,
                      const std::string& fallback) const {
  auto range = flags_.equal_range(Norm(name));
  if (range.first == range.second) return fallback;
  return std::prev(range.second)->second;
}

std::vector<std::string> Args::GetAll(const std::string& name) const {
  std::vector<std::string> out;
  auto range = flags_.equal_range(Norm(name));
  for (auto it = range.first; it != range.second; ++it)
    out.push_back(it->second);
  return out;
}

bool Args::GetInt(const std::string& name, long long fallback, long long* out,
                  std::string* error) const {
  if (!Has(name)) {
    *out = fallback;
    return true;
  }
  const std::string v = Get(name);
  char* end = nullptr;
  *out = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || end == nullptr || *end != '\0') {
    *error = "--" + Norm(name) + " must be an integer, not '" + v + "'";
    return false;
  }
  return true;
}

bool Args::GetDouble(const std::string& name, double fallback, double* out,
                     std::string* error) const {
  if (!Has(name)) {
    *out = fallback;
    return true;
  }
  const std::string v = Get(name);
  char* end = nullptr;
  *out = std::strtod(v.c_str(), &end);
  if (v.empty() || end == nullptr || *end != '\0') {
    *error = "--" + Norm(name) + " must be a number, not '" + v + "'";
    return false;
  }
  return true;
}

bool Args::GetBool(const std::string& name) const {
  const std::string v = Get(name, "false");
  return v == "true" || v == "1" || v == "yes";
}

bool Args::CheckAllowed(const std::set<std::string>& allowed,
                        std::string* error) const {
  for (const auto& name : order_) {
    if (!allowed.count(name) && !GlobalFlags().count(name)) {
      *error =
          "unknown flag --" + name + " for this command (see kwqctl --help)";
      return false;
    }
  }
  return true;
}

}  // namespace kwq::ctl
