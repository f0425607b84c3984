#pragma once

#include <string>

#include "kwq/v1/task.pb.h"
#include "kwq/v1/tracker.pb.h"
#include "tracker/model/task_model.h"
#include "tracker/store/tracker_store.pb.h"

namespace kwq::tracker {

// The rules of the job and (job, tag) aggregates: how one applied event moves
// them. Pure (no I/O); the store reads and writes the aggregates around them.
inline constexpr int kRecentErrors = 10;   // errors kept per job, newest first
inline constexpr int kRecentSeconds = 16;  // seconds of finishes kept per job
inline constexpr size_t kMaxSummaryErrorBytes = 1024;  // each recent error

// A job's aggregate after event `ev` of task `task_id` had outcome `o`: state
// counts move from the old to the new state, a new task counts in the total,
// retries and repeated executions are counted, the first submit (a first
// attempt's PENDING) and the last finish are kept, finishes are counted per
// second for the rate (the last kRecentSeconds), and an attempt's error joins
// the recent errors (cut to kMaxSummaryErrorBytes; the whole text is on the
// task).
// Counts by priority move the same way, under the task's priority (clamped to
// 0-9); a task whose priority arrives after its first events moves from 0.
void ApplyToJob(const ApplyOutcome& o, const kwq::v1::TaskEvent& ev,
                const std::string& task_id, int32_t priority,
                internal::Aggregate* agg);

// Whether the task's (job, tag) aggregates change with this outcome.
bool TagsChange(const ApplyOutcome& o, const kwq::v1::TaskStatus& task);

// One (job, tag) aggregate of `task` after the event: a task whose tags were
// just learned joins it with its current state and its retries so far.
void ApplyToTag(const ApplyOutcome& o, const kwq::v1::TaskEvent& ev,
                const kwq::v1::TaskStatus& task, internal::Aggregate* agg);

}  // namespace kwq::tracker
