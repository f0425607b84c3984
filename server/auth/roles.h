#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kwq::auth {

// What a caller may do. Each RPC needs one role (see server/auth/README.md):
//   submit  Scheduler.Submit
//   work    Scheduler.Connect (run tasks as a worker)
//   operate Scheduler.Pause / Resume / Cancel
//   view    Scheduler.ListWorkers / ExplainTask, every Tracker RPC, /metrics
//   admin   everything above
enum class Role : uint8_t { kSubmit, kWork, kOperate, kView, kAdmin };

// A set of roles as bits; admin holds every role.
class RoleSet {
 public:
  RoleSet() = default;
  static RoleSet All();
  void Add(Role r) { bits_ |= Bit(r); }
  bool Has(Role r) const {
    return (bits_ & Bit(Role::kAdmin)) != 0 || (bits_ & Bit(r)) != 0;
  }
  bool empty() const { return bits_ == 0; }
  // "submit,view" (in the order of the enum).
  std::string ToString() const;
  bool operator==(const RoleSet& o) const { return bits_ == o.bits_; }

 private:
  static uint8_t Bit(Role r) { return uint8_t{1} << static_cast<int>(r); }
  uint8_t bits_ = 0;
};

const char* RoleName(Role r);
// "submit,view" -> the set; an unknown or empty name is an error.
absl::StatusOr<RoleSet> ParseRoles(absl::string_view text);

}  // namespace kwq::auth
