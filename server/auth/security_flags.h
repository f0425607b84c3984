#pragma once

#include "server/auth/server_security.h"

namespace kwq::auth {

// The servers' security flags (--tls_cert, --tls_key, --tls_client_ca,
// --identities_file, --insecure), defined once here for the scheduler and the
// tracker.
ServerSecurityOptions ServerSecurityFromFlags();

}  // namespace kwq::auth
