#include "server/auth/roles.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kwq::auth {

namespace {
constexpr Role kAllRoles[] = {Role::kSubmit, Role::kWork, Role::kOperate,
                              Role::kView, Role::kAdmin};
}  // namespace

RoleSet RoleSet::All() {
  RoleSet s;
  s.Add(Role::kAdmin);
  return s;
}

const char* RoleName(Role r) {
  switch (r) {
    case Role::kSubmit:
      return "submit";
    case Role::kWork:
      return "work";
    case Role::kOperate:
      return "operate";
    case Role::kView:
      return "view";
    case Role::kAdmin:
      return "admin";
  }
  return "?";
}

std::string RoleSet::ToString() const {
  std::string out;
  for (Role r : kAllRoles) {
    if ((bits_ & Bit(r)) == 0) continue;
    absl::StrAppend(&out, out.empty() ? "" : ",", RoleName(r));
  }
  return out;
}

absl::StatusOr<RoleSet> ParseRoles(absl::string_view text) {
  RoleSet set;
  for (absl::string_view name : absl::StrSplit(text, ',')) {
    bool known = false;
    for (Role r : kAllRoles) {
      if (name == RoleName(r)) {
        set.Add(r);
        known = true;
      }
    }
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown role '", name.substr(0, 32),
                       "' (roles: submit, work, operate, view, admin)"));
    }
  }
  return set;
}

}  // namespace kwq::auth
