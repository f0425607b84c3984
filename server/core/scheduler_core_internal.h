#pragma once

// Names shared by SchedulerCore's own .cc files (scheduler_core.cc and the
// _dispatch, _events and _workers parts); not part of its interface: include
// it nowhere else.
#include <utility>
#include <vector>

#include "kwq/v1/task.pb.h"
#include "kwq/v1/worker.pb.h"
#include "server/api/ack_codes.h"
#include "server/api/priorities.h"
#include "server/core/effects.h"

namespace kwq::scheduler {

using api::kAckFailedPrecondition;
using api::kAckInvalidArgument;
using api::kAckOk;
using api::kAckUnavailable;
using api::kMaxPriority;
using api::kNumPriorities;
using kwq::v1::SchedulerMessage;
using kwq::v1::Task;
using kwq::v1::TaskEvent;
using kwq::v1::TaskState;

// Records to produce, moved in (a braced list would copy each record).
template <typename... Records>
std::vector<OutRecord> RecordsOf(Records&&... records) {
  std::vector<OutRecord> v;
  v.reserve(sizeof...(records));
  (v.push_back(std::forward<Records>(records)), ...);
  return v;
}

}  // namespace kwq::scheduler
