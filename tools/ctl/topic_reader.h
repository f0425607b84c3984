#pragma once

#include <functional>
#include <string>

#include "librdkafka/rdkafkacpp.h"
#include "tools/ctl/commands.h"

namespace kwq::ctl {

// Reads every partition of `topic` from its beginning to where it ends at the
// time of the call (Kafka at --bootstrap-servers, --kafka-config), calling
// `fn` for each record. Returns kExitOk, or prints why not and returns the
// exit code (no bootstrap servers: usage; no topic, timeout: failure).
int ReadTopicToEnd(const Context& c, const std::string& topic,
                   const std::function<void(const RdKafka::Message&)>& fn);

}  // namespace kwq::ctl
