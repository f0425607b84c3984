#pragma once

#include <deque>
#include <functional>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace kwq {

// One thread that runs posted closures in order, and a tick closure at least
// every `tick_period`. Components whose state is single-threaded (the scheduler
// core) live on it: gRPC and Kafka threads only Post() into it. Post is
// thread-safe. The loop takes every closure posted since its last wake as one
// batch; `after_batch` (optional) runs after each batch and after each tick,
// before the loop sleeps: work the batch's closures deferred (e.g. stream
// writes gathered per stream) is done there.
class EventLoop {
 public:
  EventLoop(std::function<void()> on_tick, absl::Duration tick_period,
            std::function<void()> after_batch = nullptr);
  ~EventLoop();  // stops and joins

  void Post(std::function<void()> fn);
  // Runs `fn` on the loop and waits for it (never call from the loop itself).
  void RunSync(std::function<void()> fn);
  void Stop();
  bool InLoop() const { return std::this_thread::get_id() == thread_.get_id(); }

 private:
  void Run();

  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void()> on_tick_;
  absl::Duration tick_period_;
  std::function<void()> after_batch_;
  std::thread thread_;
};

}  // namespace kwq
