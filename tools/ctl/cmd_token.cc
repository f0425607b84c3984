// kwqctl token new: a bearer token for a secured grid and the line that lets
// the servers accept it (only its hash goes into the identities file).
#include <iostream>

#include "server/auth/identities.h"
#include "tools/ctl/commands.h"

namespace kwq::ctl {

int RunToken(const Context& c) {
  if (c.args.word(1) != "new") {
    return Fail(kExitUsage,
                "usage: kwqctl token new --principal NAME --roles R[,R]");
  }
  std::string error;
  if (!c.args.CheckAllowed({"principal", "roles"}, &error)) {
    return Fail(kExitUsage, error);
  }
  const std::string principal = c.args.Get("principal");
  const std::string roles = c.args.Get("roles");
  const std::string token = auth::NewToken();
  if (token.empty()) return Fail(kExitFailure, "no random bytes for a token");
  const std::string line =
      "token sha256:" + auth::TokenHash(token) + " " + principal + " " + roles;
  // The same rules the servers apply when they read the file.
  if (auto parsed = auth::IdentityTable::Parse(line); !parsed.ok()) {
    return Fail(kExitUsage, std::string(parsed.status().message()));
  }
  if (c.format == Format::kTable) {
    std::cout << "token (give it to " << principal
              << "; it is shown only now):\n  " << token
              << "\nline for the servers' --identities_file:\n  " << line
              << "\n";
  } else {
    std::cout << "{\"principal\":\"" << principal << "\",\"roles\":\"" << roles
              << "\",\"token\":\"" << token << "\",\"identities_line\":\""
              << line << "\"}\n";
  }
  return kExitOk;
}

}  // namespace kwq::ctl
