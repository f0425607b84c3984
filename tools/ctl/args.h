#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

namespace kwq::ctl {

// kwqctl's command line: positional words (noun, verb, ids) and flags. Flags
// are
// `--name=value`, `--name value` or a bare `--name` (boolean); `-o` is `--o`; a
// flag may repeat (`--tag a=1 --tag b=2`). Dashes and underscores in names are
// the same.
class Args {
 public:
  // Returns false with `error` set on a malformed command line.
  bool Parse(int argc, char** argv, std::string* error);

  const std::vector<std::string>& words() const { return words_; }
  std::string word(size_t i) const {
    return i < words_.size() ? words_[i] : "";
  }
  bool Has(const std::string& name) const {
    return flags_.count(Norm(name)) > 0;
  }
  // The last value given, or `fallback`.
  std::string Get(const std::string& name,
                  const std::string& fallback = "") const;
  std::vector<std::string> GetAll(const std::string& name) const;
  // Integer / double / bool flag; false with `error` set when the value does
  // not parse.
  bool GetInt(const std::string& name, long long fallback, long long* out,
              std::string* error) const;
  bool GetDouble(const std::string& name, double fallback, double* out,
                 std::string* error) const;
  bool GetBool(const std::string& name) const;
  // An error naming the first flag not in `allowed` (the global flags are
  // always allowed).
  bool CheckAllowed(const std::set<std::string>& allowed,
                    std::string* error) const;

 private:
  static std::string Norm(std::string name);
  std::vector<std::string> words_;
  std::multimap<std::string, std::string> flags_;
  std::vector<std::string> order_;  // flag names in order given
};

}  // namespace kwq::ctl
