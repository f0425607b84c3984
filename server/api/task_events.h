#pragma once

#include <string>

#include "kwq/v1/task.pb.h"

namespace kwq::api {

// The PENDING event that announces a task's first attempt, with the task's
// attributes (priority, tags, affinity keys: the tracker learns them from it),
// stamped with its submit time. One builder for Submit and for records a
// foreign producer wrote.
inline kwq::v1::TaskEvent FirstPendingEvent(const kwq::v1::Task& task,
                                            const std::string& scheduler_id) {
  kwq::v1::TaskEvent ev;
  ev.set_task_id(task.id());
  ev.set_job_id(task.job_id());
  ev.set_attempt(1);
  ev.set_state(kwq::v1::PENDING);
  *ev.mutable_time() = task.submit_time();
  ev.set_scheduler_id(scheduler_id);
  ev.set_priority(task.priority());
  *ev.mutable_tags() = task.tags();
  *ev.mutable_affinity_keys() = task.affinity_keys();
  return ev;
}

}  // namespace kwq::api
