#pragma once

#include "kwq/v1/task.pb.h"
#include "kwq/v1/tracker.pb.h"

namespace kwq::tracker {

// What applying one event did to a task record.
struct ApplyOutcome {
  // clang-format off
  enum Kind {
    kApplied,    // the record changed
    kDuplicate,  // this stage of this attempt was known already: no change
    kStale,      // an older attempt (or a finished task): history filled in only
    kConflict,   // a second, different terminal state for an attempt: ignored
  };
  // clang-format on
  Kind kind = kApplied;
  bool changed = false;   // the record must be written
  bool new_task = false;  // the first event ever seen for this task
  kwq::v1::TaskState old_state = kwq::v1::TASK_STATE_UNSPECIFIED;  // task-level
  kwq::v1::TaskState new_state = kwq::v1::TASK_STATE_UNSPECIFIED;
  bool tags_learned = false;  // priority/tags/affinity arrived with this event
  bool priority_learned = false;  // a priority other than 0 arrived with it
  bool retry_started = false;     // the first event of an attempt > 1
  bool finished = false;  // the task became COMPLETED, FAILED or CANCELLED now
  bool attempt_errored = false;  // an attempt ended in ERROR now
  // A second terminal report of an ended attempt from another run (another
  // time or worker): counted in TaskStatus.repeated_executions.
  bool repeated_execution = false;
};

// Applies one status event to a task record, idempotently:
// - Every stage of every attempt keeps the time it was first reported; a
//   repeat is a duplicate and changes nothing.
// - An attempt's state is the furthest stage reached; its first terminal
//   state wins (COMPLETED, ERROR or CANCELLED; a FAILED after ERROR of the
//   same attempt is the task-level verdict, not a conflict).
// - The task's state is its latest attempt's, until the task finishes:
//   COMPLETED, FAILED and CANCELLED are final, later events only fill in
//   history.
// - Events of an attempt older than the latest only fill in that attempt's
//   history. Events may come in any order; the result depends only on the set
//   of events applied, except which of two conflicting terminal states of one
//   attempt came first.
ApplyOutcome ApplyEvent(const kwq::v1::TaskEvent& event,
                        kwq::v1::TaskStatus* task);

// True for COMPLETED, FAILED and CANCELLED.
bool IsFinal(kwq::v1::TaskState state);

}  // namespace kwq::tracker
