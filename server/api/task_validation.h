#pragma once

#include <string>

#include "absl/status/status.h"
#include "kwq/v1/task.pb.h"

namespace kwq::api {

struct ValidationLimits {
  size_t max_payload_bytes = 1 << 20;
  int max_tags = 32;
  size_t max_tag_key_bytes = 64;
  size_t max_tag_value_bytes = 256;
  int max_keys = 16;  // affinity keys and required labels, each
  size_t max_key_bytes = 128;
  int max_attempts = 100;
};

// True for 1-128 characters of [A-Za-z0-9._:-].
bool IsValidId(const std::string& id);

// Checks one submitted task. INVALID_ARGUMENT or RESOURCE_EXHAUSTED (payload
// too large), with a message naming the task (by index and id) and the field.
// An empty id is allowed (the server generates one). `index` -1: a record read
// from a topic ("the record (id ...)"), not a Submit's tasks[i].
absl::Status ValidateTask(const kwq::v1::Task& task, int index,
                          const ValidationLimits& limits);

}  // namespace kwq::api
