#include "tests/fuzz/fuzz_targets.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "kwq/v1/task.pb.h"
#include "kwq/v1/tracker.pb.h"
#include "kwq/v1/worker.pb.h"
#include "server/api/task_validation.h"
#include "server/core/control_state.h"
#include "server/core/scheduler_core.h"
#include "server/util/clock.h"
#include "tracker/model/task_model.h"

namespace kwq::fuzz {
namespace {

// Reads the script: a byte, then a length-prefixed chunk.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}
  bool done() const { return p_ >= end_; }
  uint8_t Byte() { return done() ? 0 : *p_++; }
  std::string Chunk() {
    size_t n = Byte();
    n = n < 0xf0 ? n : (n - 0xf0) * 256 + Byte();  // longer chunks, rarely
    n = std::min<size_t>(n, static_cast<size_t>(end_ - p_));
    std::string out(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return out;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

class FakeClock : public Clock {
 public:
  absl::Time Now() const override { return now_; }
  void Advance(absl::Duration d) { now_ += d; }

 private:
  absl::Time now_ = absl::FromUnixSeconds(1'800'000'000);
};

scheduler::SchedulerOptions FuzzOptions() {
  scheduler::SchedulerOptions o;
  o.scheduler_id = "fuzz";
  o.lease_key = "the-fuzzing-group-lease-key";
  o.max_buffered_per_priority = 50;
  o.max_parked_in_memory_per_priority = 5;
  o.max_result_bytes = 4096;
  o.max_record_bytes = 200'000;
  return o;
}

void Drain(scheduler::SchedulerCore& core, std::vector<uint64_t>* cookies) {
  core.FlushCommits();
  scheduler::Effects e = core.TakeEffects();
  for (const auto& p : e.produces) {
    if (p.cookie != 0) cookies->push_back(p.cookie);
  }
}

}  // namespace

int TaskRecord(const uint8_t* data, size_t size) {
  const std::string value(reinterpret_cast<const char*>(data), size);
  kwq::v1::Task task;
  if (task.ParseFromString(value)) {
    (void)api::ValidateTask(task, 0, api::ValidationLimits());
  }
  FakeClock clock;
  scheduler::SchedulerCore core(FuzzOptions(), &clock, 1);
  std::vector<uint64_t> cookies;
  core.OnTaskRecord(
      {core.topics().ForPriority(static_cast<int>(size % 10)), 0, 0}, value);
  Drain(core, &cookies);
  for (uint64_t c : cookies) core.OnDurable(c, size % 2 == 0);
  Drain(core, &cookies);
  return 0;
}

int WorkerSession(const uint8_t* data, size_t size) {
  Reader in(data, size);
  FakeClock clock;
  scheduler::SchedulerCore core(FuzzOptions(), &clock, 7);
  std::vector<uint64_t> cookies;
  int64_t offset = 0;
  int steps = 0;
  while (!in.done() && ++steps < 2000) {
    const uint8_t op = in.Byte();
    const scheduler::ConnId conn = 1 + (op >> 4) % 4;
    switch (op % 8) {
      case 0: {  // a hello: parsed from the bytes
        kwq::v1::Hello hello;
        if (hello.ParseFromString(in.Chunk()))
          core.OnWorkerConnected(conn, hello);
        break;
      }
      case 1: {  // any worker message
        kwq::v1::WorkerMessage msg;
        if (msg.ParseFromString(in.Chunk())) core.OnWorkerMessage(conn, msg);
        break;
      }
      case 2:
        core.OnWorkerDisconnected(conn, "fuzz");
        break;
      case 3:
        clock.Advance(absl::Milliseconds(in.Byte() * 100));
        core.OnTick();
        break;
      case 4: {  // a task record (a valid one often, from a few ids)
        kwq::v1::Task t;
        t.set_id("t" + std::to_string(in.Byte() % 16));
        t.set_job_id("j" + std::to_string(in.Byte() % 3));
        t.set_attempt(1 + in.Byte() % 3);
        core.OnTaskRecord(
            {core.topics().ForPriority(in.Byte() % 10), 0, offset++},
            t.SerializeAsString());
        break;
      }
      case 5:  // a durability answer for the oldest pending batch
        if (!cookies.empty()) {
          core.OnDurable(cookies.front(), in.Byte() % 4 != 0);
          cookies.erase(cookies.begin());
        }
        break;
      case 6: {  // a hello naming leases the core issued (and forged ones)
        kwq::v1::Hello hello;
        hello.set_worker_id("w" + std::to_string(conn));
        hello.set_slots(1 + in.Byte() % 4);
        hello.set_implicit_credits(in.Byte() % 2 == 0);
        for (const auto& w : core.Workers()) (void)w;
        kwq::v1::FencingToken* t = hello.add_in_flight();
        t->set_task_id("t" + std::to_string(in.Byte() % 16));
        t->set_attempt(1);
        t->set_lease_id(in.Chunk());
        core.OnWorkerConnected(conn, hello);
        break;
      }
      case 7:
        core.OnControlRecord(in.Chunk(), in.Chunk());
        break;
    }
    Drain(core, &cookies);
    // What `kwqctl worker list` shows agrees with kwq_in_flight_tasks (issue
    // 17.8): every task a worker is counted for holds a lease.
    size_t counted = 0;
    for (const auto& w : core.Workers())
      counted += static_cast<size_t>(w.in_flight);
    if (counted > core.leases()) __builtin_trap();
  }
  return 0;
}

int ControlRecord(const uint8_t* data, size_t size) {
  Reader in(data, size);
  const std::string key = in.Chunk();
  const std::string value = in.Chunk();
  auto change = scheduler::ControlState::Decode(key, value);
  scheduler::ControlState state(4);
  if (change.ok()) state.Apply(*change);
  FakeClock clock;
  scheduler::SchedulerCore core(FuzzOptions(), &clock, 3);
  core.OnControlRecord(key, value);
  core.TakeEffects();
  return 0;
}

int TrackerEvent(const uint8_t* data, size_t size) {
  Reader in(data, size);
  kwq::v1::TaskStatus task;
  for (int i = 0; i < 16 && !in.done(); ++i) {
    kwq::v1::TaskEvent ev;
    if (ev.ParseFromString(in.Chunk())) (void)tracker::ApplyEvent(ev, &task);
  }
  return 0;
}

Target ByName(const std::string& name) {
  if (name == "task_record") return TaskRecord;
  if (name == "worker_session") return WorkerSession;
  if (name == "control_record") return ControlRecord;
  if (name == "tracker_event") return TrackerEvent;
  return nullptr;
}

}  // namespace kwq::fuzz
