#include "server/core/partition_ledger.h"

#include <algorithm>

#include "glog/logging.h"

namespace kwq::scheduler {

bool PartitionLedger::Received(const RecordPosition& pos) {
  auto it = offsets_.find({pos.topic, pos.partition});
  if (it == offsets_.end()) {
    // Not assigned here (a record racing a revoke): track it as if assigned
    // from here on, as the consumer delivered it.
    it = offsets_
             .emplace(TopicPartition{pos.topic, pos.partition}, OffsetTracker())
             .first;
  }
  int64_t skipped = 0;
  if (!it->second.Received(pos.offset, &skipped)) return false;
  if (skipped > 0) {
    unread_records_ += skipped;
    LOG(ERROR) << pos.topic << "/" << pos.partition << ": records ["
               << pos.offset - skipped << ", " << pos.offset
               << ") were never read here: the broker deleted them "
                  "(retention.ms or DeleteRecords) before they were "
                  "decided, so their tasks are lost. Keep the priority "
                  "topics' retention above the longest backlog.";
  }
  return true;
}

bool PartitionLedger::DecidedBefore(const RecordPosition& pos) {
  auto s = skip_.find({pos.topic, pos.partition});
  if (s == skip_.end() || s->second.erase(pos.offset) == 0) return false;
  --remembered_;
  if (s->second.empty()) skip_.erase(s);
  Decide(pos);
  return true;
}

void PartitionLedger::Remember(const TopicPartition& tp, int64_t offset) {
  if (!skip_[tp].insert(offset).second) return;
  if (++remembered_ <= kMaxRemembered) return;
  // Full: forget the lowest offset of the partition with the most entries
  // (its record runs again if it comes back; nothing is lost).
  auto most = std::max_element(skip_.begin(), skip_.end(),
                               [](const auto& a, const auto& b) {
                                 return a.second.size() < b.second.size();
                               });
  most->second.erase(most->second.begin());
  --remembered_;
  if (most->second.empty()) skip_.erase(most);
}

void PartitionLedger::Decide(const RecordPosition& pos) {
  const TopicPartition tp{pos.topic, pos.partition};
  auto it = offsets_.find(tp);
  if (it == offsets_.end()) {
    Remember(tp, pos.offset);  // away: skipped if it comes back
    return;
  }
  if (it->second.Open(pos.offset)) {
    it->second.Decided(pos.offset);
    commit_due_.insert(tp);
  } else if (pos.offset > it->second.last_received()) {
    // Back here, and its record has not come again yet (the decision was
    // made under an earlier assignment): skip it when it does.
    Remember(tp, pos.offset);
  }
}

std::vector<Effects::Commit> PartitionLedger::TakeCommits() {
  std::vector<Effects::Commit> out;
  for (const auto& tp : commit_due_) {
    auto it = offsets_.find(tp);
    if (it == offsets_.end()) continue;  // revoked meanwhile
    const int64_t next = it->second.committable();
    if (next >= 0) {
      out.push_back(
          {tp.first, tp.second, next, it->second.DecidedAboveMetadata()});
    }
  }
  commit_due_.clear();
  return out;
}

void PartitionLedger::OnAssigned(const std::vector<Assigned>& partitions) {
  for (const auto& p : partitions) {
    const TopicPartition tp{p.topic, p.partition};
    offsets_[tp] = OffsetTracker(p.committed >= 0 ? p.committed : -1);
    if (auto r = revoked_prefix_.find(tp); r != revoked_prefix_.end()) {
      const int64_t from = std::max<int64_t>(p.committed, 0);
      const int64_t upto = std::min<int64_t>(
          r->second, from + static_cast<int64_t>(kMaxRemembered));
      for (int64_t o = from; o < upto; ++o) Remember(tp, o);
      revoked_prefix_.erase(r);
    }
    for (int64_t o : OffsetTracker::ParseMetadata(p.metadata, p.committed)) {
      Remember(tp, o);
    }
    // What is below the committed offset will not come again.
    if (auto s = skip_.find(tp); s != skip_.end() && p.committed > 0) {
      auto end = s->second.lower_bound(p.committed);
      remembered_ -= static_cast<size_t>(std::distance(s->second.begin(), end));
      s->second.erase(s->second.begin(), end);
      if (s->second.empty()) skip_.erase(s);
    }
    if (auto s = skip_.find(tp); s != skip_.end()) {
      LOG(INFO) << p.topic << "/" << p.partition << ": " << s->second.size()
                << " records above the committed offset " << p.committed
                << " were decided before; they will be skipped";
    }
  }
}

void PartitionLedger::OnRevoked(const std::vector<TopicPartition>& partitions) {
  for (const auto& tp : partitions) {
    auto it = offsets_.find(tp);
    if (it == offsets_.end()) continue;
    // What this instance decided and may not have committed (the commits of
    // a session time-out fail): skipped if the partition comes back. The
    // decided prefix is covered by the committed offset once a commit lands;
    // the records above it are remembered one by one.
    for (int64_t o :
         OffsetTracker::ParseMetadata(it->second.DecidedAboveMetadata(1 << 20),
                                      it->second.committable())) {
      Remember(tp, o);
    }
    revoked_prefix_[tp] = it->second.committable();
    offsets_.erase(it);
    commit_due_.erase(tp);
  }
}

}  // namespace kwq::scheduler
