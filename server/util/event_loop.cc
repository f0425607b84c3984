#include "server/util/event_loop.h"

#include <pthread.h>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"

namespace kwq {

EventLoop::EventLoop(std::function<void()> on_tick, absl::Duration tick_period,
                     std::function<void()> after_batch)
    : on_tick_(std::move(on_tick)),
      tick_period_(tick_period),
      after_batch_(std::move(after_batch)) {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "kwq-loop");
    Run();
  });
}

EventLoop::~EventLoop() { Stop(); }

void EventLoop::Post(std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(fn));
}

void EventLoop::RunSync(std::function<void()> fn) {
  absl::Notification done;
  Post([&] {
    fn();
    done.Notify();
  });
  done.WaitForNotification();
}

void EventLoop::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable() && !InLoop()) thread_.join();
}

void EventLoop::Run() {
  absl::Time next_tick = absl::Now() + tick_period_;
  while (true) {
    std::deque<std::function<void()>> batch;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this] { return !queue_.empty() || stopping_; };
      mu_.AwaitWithDeadline(absl::Condition(&ready), next_tick);
      if (stopping_ && queue_.empty()) return;
      batch.swap(queue_);
    }
    for (auto& fn : batch) fn();
    if (absl::Now() >= next_tick) {
      if (on_tick_) on_tick_();
      next_tick = absl::Now() + tick_period_;
    }
    if (after_batch_) after_batch_();
  }
}

}  // namespace kwq
