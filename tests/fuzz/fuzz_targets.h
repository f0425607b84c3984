#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

// The fuzz targets of issue 18: each takes arbitrary bytes and must neither
// crash nor trip a check. Run by libFuzzer with ASan/UBSan (tools/fuzz/run)
// and, on their seed corpora plus deterministic mutations, by fuzz_replay_test
// in every CI run.
namespace kwq::fuzz {

// A task record as read from a priority topic: decoded, validated, dead-
// lettered or queued by the scheduler core.
int TaskRecord(const uint8_t* data, size_t size);
// A worker session: the bytes are a script of hellos, worker messages (any
// bytes parsed as WorkerMessage), disconnects, ticks, records and durability
// answers fed to one SchedulerCore.
int WorkerSession(const uint8_t* data, size_t size);
// A record of the control topic (key and value from the bytes).
int ControlRecord(const uint8_t* data, size_t size);
// A status event applied by the tracker's model.
int TrackerEvent(const uint8_t* data, size_t size);

// The targets by name ("task_record", ...), or null.
using Target = int (*)(const uint8_t*, size_t);
Target ByName(const std::string& name);

}  // namespace kwq::fuzz
