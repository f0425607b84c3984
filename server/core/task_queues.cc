#include "server/core/task_queues.h"

#include <algorithm>

namespace kwq::scheduler {
namespace {

int PriorityOf(const QueuedTask& q) {
  return std::clamp(q.task.priority(), 0, api::kMaxPriority);
}

}  // namespace

void TaskQueues::PushReady(QueuedTask q) {
  q.hold_start = absl::InfiniteFuture();
  ready_[PriorityOf(q)].push_back(std::move(q));
}

void TaskQueues::PushDelayed(absl::Time due, QueuedTask q) {
  ++delayed_count_[PriorityOf(q)];
  delayed_.emplace(due, std::move(q));
}

void TaskQueues::Park(QueuedTask q) {
  ++parked_count_[PriorityOf(q)];
  std::string job = q.task.job_id();
  parked_[job].push_back(std::move(q));
}

void TaskQueues::ReleaseDue(absl::Time now) {
  while (!delayed_.empty() && delayed_.begin()->first <= now) {
    QueuedTask q = std::move(delayed_.begin()->second);
    delayed_.erase(delayed_.begin());
    --delayed_count_[PriorityOf(q)];
    PushReady(std::move(q));
  }
}

void TaskQueues::Unpark(const std::string& job_id) {
  auto it = parked_.find(job_id);
  if (it == parked_.end()) return;
  for (QueuedTask& q : it->second) {
    --parked_count_[PriorityOf(q)];
    PushReady(std::move(q));
  }
  parked_.erase(it);
}

std::vector<TaskQueues::Removed> TaskQueues::RemoveIf(const Pred& pred) {
  std::vector<Removed> out;
  for (auto& queue : ready_) {
    for (auto it = queue.begin(); it != queue.end();) {
      if (pred(*it)) {
        out.push_back({Where::kReady, std::move(*it)});
        it = queue.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto it = delayed_.begin(); it != delayed_.end();) {
    if (pred(it->second)) {
      --delayed_count_[PriorityOf(it->second)];
      out.push_back({Where::kDelayed, std::move(it->second)});
      it = delayed_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto job = parked_.begin(); job != parked_.end();) {
    auto& tasks = job->second;
    for (auto t = tasks.begin(); t != tasks.end();) {
      if (pred(*t)) {
        --parked_count_[PriorityOf(*t)];
        out.push_back({Where::kParked, std::move(*t)});
        t = tasks.erase(t);
      } else {
        ++t;
      }
    }
    job = tasks.empty() ? parked_.erase(job) : std::next(job);
  }
  return out;
}

std::optional<QueuedTask> TaskQueues::Take(const std::string& task_id,
                                           int attempt) {
  auto match = [&](const QueuedTask& q) {
    return q.task.id() == task_id && q.task.attempt() == attempt;
  };
  for (auto& queue : ready_) {
    auto it = std::find_if(queue.begin(), queue.end(), match);
    if (it != queue.end()) {
      QueuedTask q = std::move(*it);
      queue.erase(it);
      return q;
    }
  }
  for (auto job = parked_.begin(); job != parked_.end(); ++job) {
    auto& tasks = job->second;
    auto it = std::find_if(tasks.begin(), tasks.end(), match);
    if (it == tasks.end()) continue;
    QueuedTask q = std::move(*it);
    tasks.erase(it);
    --parked_count_[PriorityOf(q)];
    if (tasks.empty()) parked_.erase(job);
    return q;
  }
  return std::nullopt;
}

std::optional<TaskQueues::Found> TaskQueues::Find(
    const std::string& task_id) const {
  for (const auto& [due, q] : delayed_) {
    if (q.task.id() == task_id) return Found{Where::kDelayed, &q, due};
  }
  for (const auto& queue : ready_) {
    for (const QueuedTask& q : queue) {
      if (q.task.id() == task_id) {
        return Found{Where::kReady, &q, absl::InfinitePast()};
      }
    }
  }
  for (const auto& [job, tasks] : parked_) {
    for (const QueuedTask& q : tasks) {
      if (q.task.id() == task_id) {
        return Found{Where::kParked, &q, absl::InfinitePast()};
      }
    }
  }
  return std::nullopt;
}

size_t TaskQueues::buffered() const {
  size_t n = 0;
  for (int p = 0; p < api::kNumPriorities; ++p) n += buffered(p);
  return n;
}

std::optional<bool> TaskQueues::UpdateBackpressure(int p, int limit) {
  const int n = static_cast<int>(buffered(p));
  if (!backpressured_[p] && n >= limit) {
    backpressured_[p] = true;
    return true;
  }
  if (backpressured_[p] && n <= limit / 2) {
    backpressured_[p] = false;
    return false;
  }
  return std::nullopt;
}

}  // namespace kwq::scheduler
