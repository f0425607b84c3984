#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

namespace kwq::scheduler {

// Tracks the records of one partition from receipt to decision and yields the
// offset that may be committed: one past the longest prefix of decided records.
// Records arrive in offset order (a Kafka partition guarantees it). Not
// thread-safe (owned by the core).
class OffsetTracker {
 public:
  // `first_expected`: the offset the first record should have (the committed
  // offset the partition was assigned with), or -1 when unknown.
  explicit OffsetTracker(int64_t first_expected = -1)
      : first_expected_(first_expected) {}

  // A record was received. Returns false, and tracks nothing, when the offset
  // is not above every offset received before: the consumer rewound (an offset
  // reset, a re-fetch) and this is a record this owner already has. Otherwise
  // `*skipped` (when given) is the number of offsets between the one expected
  // next (first_expected, then one past the last record) and this one: records
  // never received (0 when none, or when nothing was expected yet).
  bool Received(int64_t offset, int64_t* skipped = nullptr);
  // The record reached a decision. Returns the new committable offset when the
  // prefix moved (offset+1 of the last decided record of the prefix), or
  // nullopt.
  std::optional<int64_t> Decided(int64_t offset);
  // Whether `offset` was received and is not decided yet.
  bool Open(int64_t offset) const;
  // The highest offset received, or -1.
  int64_t last_received() const { return last_received_; }
  // Records received and not yet decided.
  size_t open() const { return open_; }
  // The committable offset now (one past the decided prefix), or -1 before any
  // record.
  int64_t committable() const;
  // The decided records above the prefix, for the commit metadata: a restart
  // then skips them instead of running them again. "v1:" and comma-separated
  // ranges of offsets relative to committable() ("2-4,9"). At most `max_bytes`:
  // ranges that do not fit are left out (they would run again; nothing is
  // lost). Empty when there are none.
  std::string DecidedAboveMetadata(size_t max_bytes = 3000) const;
  // The offsets a DecidedAboveMetadata() string names, given the committed
  // offset it was committed with. Unparsable metadata names none.
  static std::vector<int64_t> ParseMetadata(const std::string& metadata,
                                            int64_t committed);

 private:
  struct Entry {
    int64_t offset;
    bool decided;
  };
  std::deque<Entry> entries_;
  size_t open_ = 0;
  int64_t first_expected_;
  int64_t last_received_ = -1;
};

}  // namespace kwq::scheduler
