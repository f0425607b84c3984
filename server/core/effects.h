#pragma once

// The vocabulary between the scheduler core and its shell: where a record came
// from, what to write, and the effects one call of the core asks for.
#include <cstdint>
#include <string>
#include <vector>

#include "kwq/v1/worker.pb.h"

namespace kwq::scheduler {

// Identifies one worker stream (assigned by the shell, never reused).
using ConnId = uint64_t;

// Where a task record came from.
struct RecordPosition {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
};

inline bool SameRecord(const RecordPosition& a, const RecordPosition& b) {
  return a.offset == b.offset && a.partition == b.partition &&
         a.topic == b.topic;
}

// A record to write to Kafka.
struct OutRecord {
  std::string topic;
  std::string key;
  std::string value;
};

// What the core decided; the shell carries it out. Filled by every On* call and
// drained by TakeEffects().
struct Effects {
  struct Send {
    ConnId conn;
    kwq::v1::SchedulerMessage msg;
  };
  // Records to produce. When cookie != 0 the shell calls OnDurable(cookie, ok)
  // once all records of the batch were acknowledged (or one failed).
  struct Produce {
    std::vector<OutRecord> records;
    uint64_t cookie = 0;
  };
  struct Commit {
    std::string topic;
    int32_t partition;
    int64_t next_offset;
    // The records decided above next_offset
    // (OffsetTracker::DecidedAboveMetadata): committed with the offset so that
    // a restart skips them.
    std::string metadata;
  };
  struct PausePriority {
    int priority;
    bool paused;
  };
  // An applied completion on a stream whose worker takes AckBatch
  // (Hello.ack_batches): the shell packs a flush's worth per stream into one
  // SchedulerMessage.acks.
  struct OkAck {
    ConnId conn;
    std::string lease_id;
  };
  // Close a worker stream (protocol violation).
  struct Close {
    ConnId conn;
    std::string reason;
  };
  std::vector<Send> sends;
  std::vector<OkAck> ok_acks;
  std::vector<Produce> produces;
  std::vector<Commit> commits;
  std::vector<PausePriority> pauses;
  std::vector<Close> closes;
  // A job resumed or was cancelled: its tasks in the parked topic should go
  // back (ParkedReplayer::RequestPass).
  bool replay_parked = false;
  bool empty() const {
    return sends.empty() && ok_acks.empty() && produces.empty() &&
           commits.empty() && pauses.empty() && closes.empty();
  }
};

}  // namespace kwq::scheduler
