#pragma once

#include <memory>

#include "server/kafka/memory_task_log.h"
#include "server/kafka/scheduler_backend.h"

namespace kwq {

// SchedulerBackend in memory, over a MemoryBroker (not owned): the scheduler
// service's fast tests and a grid with no Kafka at all. One member per group
// (MemoryTaskLog does not rebalance).
std::unique_ptr<SchedulerBackend> MakeMemoryBackend(MemoryBroker* broker);

}  // namespace kwq
