#pragma once

#include <string>

#include "kwq/v1/task.pb.h"

namespace kwq::api {

// The PENDING event that announces a task's first attempt, with the task's
// attributes (priority, tags, affinity keys: the tracker learns them from it),
// stamped with its submit time, into `ev` (cleared first: a caller may reuse
// one). `id` and `submit_time` stand for the task's own (Submit decides them
// without writing them into a copy of the task). One builder for Submit and
// for records a foreign producer wrote.
inline void FillFirstPendingEvent(
    const kwq::v1::Task& task, const std::string& id,
    const google::protobuf::Timestamp& submit_time,
    const std::string& scheduler_id, kwq::v1::TaskEvent* ev) {
  ev->Clear();
  ev->set_task_id(id);
  ev->set_job_id(task.job_id());
  ev->set_attempt(1);
  ev->set_state(kwq::v1::PENDING);
  *ev->mutable_time() = submit_time;
  ev->set_scheduler_id(scheduler_id);
  ev->set_priority(task.priority());
  *ev->mutable_tags() = task.tags();
  *ev->mutable_affinity_keys() = task.affinity_keys();
}

inline kwq::v1::TaskEvent FirstPendingEvent(const kwq::v1::Task& task,
                                            const std::string& scheduler_id) {
  kwq::v1::TaskEvent ev;
  FillFirstPendingEvent(task, task.id(), task.submit_time(), scheduler_id, &ev);
  return ev;
}

}  // namespace kwq::api
