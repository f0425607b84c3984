#include "tools/devgrid/event_counter.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "kwq/v1/task.pb.h"
#include "server/util/time_util.h"

namespace kwq::devgrid {

absl::StatusOr<std::unique_ptr<EventCounter>> EventCounter::Start(
    const KafkaCluster& cluster, const std::string& topic) {
  auto counter = std::unique_ptr<EventCounter>(new EventCounter());
  auto conf = MakeKafkaConf(cluster.ConsumerConfig(
      absl::StrCat("kwq-event-counter-", absl::ToUnixNanos(absl::Now()))));
  if (!conf.ok()) return conf.status();
  std::string err;
  counter->consumer_.reset(RdKafka::KafkaConsumer::create(conf->get(), err));
  if (!counter->consumer_) return absl::InternalError(err);
  if (counter->consumer_->subscribe({topic}) != RdKafka::ERR_NO_ERROR) {
    return absl::InternalError("subscribe failed");
  }
  counter->thread_ = std::thread([c = counter.get()] { c->Loop(); });
  return counter;
}

EventCounter::~EventCounter() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (consumer_) consumer_->close();
}

void EventCounter::Loop() {
  while (!stop_) {
    std::unique_ptr<RdKafka::Message> msg(consumer_->consume(50));
    if (msg->err() != RdKafka::ERR_NO_ERROR) continue;
    // A rebalance (partitions added to the topic) starts a partition again
    // from its start (nothing is committed): count each record once.
    if (int64_t& next = next_offset_[msg->partition()]; msg->offset() < next) {
      continue;
    } else {
      next = msg->offset() + 1;
    }
    kwq::v1::TaskEvent ev;
    if (!ev.ParseFromArray(msg->payload(), static_cast<int>(msg->len())))
      continue;
    const int64_t us = absl::ToUnixMicros(FromProto(ev.time()));
    absl::MutexLock lock(&mu_);
    ++events_;
    const bool terminal = ev.state() == kwq::v1::COMPLETED ||
                          ev.state() == kwq::v1::FAILED ||
                          ev.state() == kwq::v1::CANCELLED;
    if (terminal) {
      open_.erase(ev.task_id());
    } else if (!completed_.count(ev.task_id()) &&
               !failed_.count(ev.task_id())) {
      std::string& h = open_[ev.task_id()];
      // Stages folded into this event count as events of their own.
      for (const auto& [folded, state] :
           {std::pair{ev.has_allocated_time(), kwq::v1::ALLOCATED},
            std::pair{ev.has_running_time(), kwq::v1::RUNNING},
            std::pair{true, ev.state()}}) {
        if (folded && h.size() < 200) {
          absl::StrAppend(&h, h.empty() ? "" : " ",
                          kwq::v1::TaskState_Name(state), "/", ev.attempt());
        }
      }
    }
    // When the attempt started: a RUNNING event, or folded into a later one.
    const bool started =
        ev.state() == kwq::v1::RUNNING || ev.has_running_time();
    if (started) {
      const int64_t start_us =
          ev.has_running_time()
              ? absl::ToUnixMicros(FromProto(ev.running_time()))
              : us;
      if (auto it = submit_us_.find(ev.task_id());
          it != submit_us_.end() && !start_ms_.count(ev.task_id())) {
        start_ms_[ev.task_id()] =
            static_cast<double>(start_us - it->second) / 1000.0;
      }
    }
    switch (ev.state()) {
      case kwq::v1::PENDING:
        if (!ev.waiting().empty()) {
          waiting_[ev.task_id()] = ev.waiting();  // a note, not a new attempt
        } else if (ev.attempt() == 1) {
          submit_us_.emplace(ev.task_id(), us);
        } else {
          ++retries_;
        }
        break;
      case kwq::v1::COMPLETED:
        ++completed_[ev.task_id()];
        break;
      case kwq::v1::FAILED:
        failed_.insert(ev.task_id());
        break;
      case kwq::v1::CANCELLED:
        cancelled_.insert(ev.task_id());
        break;
      default:
        break;
    }
  }
}

int64_t EventCounter::completed_tasks() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(completed_.size());
}
int64_t EventCounter::duplicates() const {
  absl::MutexLock lock(&mu_);
  int64_t d = 0;
  for (auto& [id, n] : completed_) d += n - 1;
  return d;
}
int64_t EventCounter::failed_tasks() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(failed_.size());
}
int64_t EventCounter::cancelled_tasks() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(cancelled_.size());
}
int64_t EventCounter::retries() const {
  absl::MutexLock lock(&mu_);
  return retries_;
}
int64_t EventCounter::events() const {
  absl::MutexLock lock(&mu_);
  return events_;
}
std::map<std::string, std::string> EventCounter::Waiting() const {
  absl::MutexLock lock(&mu_);
  return waiting_;
}

std::vector<double> EventCounter::StartLatenciesMs() const {
  absl::MutexLock lock(&mu_);
  std::vector<double> out;
  for (auto& [id, ms] : start_ms_) out.push_back(ms);
  return out;
}
std::map<std::string, int> EventCounter::CompletedCounts() const {
  absl::MutexLock lock(&mu_);
  return completed_;
}
std::set<std::string> EventCounter::FailedIds() const {
  absl::MutexLock lock(&mu_);
  return failed_;
}

std::map<std::string, std::string> EventCounter::Unfinished() const {
  absl::MutexLock lock(&mu_);
  return open_;
}

bool EventCounter::WaitFor(const std::function<bool(const EventCounter&)>& pred,
                           absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (pred(*this)) return true;
    // Poll the counters; the consumer thread updates them as events arrive.
    absl::SleepFor(absl::Milliseconds(20));
  }
  return pred(*this);
}

}  // namespace kwq::devgrid
