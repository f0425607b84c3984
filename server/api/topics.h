#pragma once

#include <optional>
#include <string>
#include <vector>

namespace kwq::api {

// The names of kwq's Kafka topics under one prefix (default "kwq"):
// <prefix>.tasks.p0 ... p9, .events, .results, .dlq, .control, .jobs, .parked.
class Topics {
 public:
  explicit Topics(std::string prefix = "kwq");

  const std::string& prefix() const { return prefix_; }
  // <prefix>.tasks.p<priority>; priority must be valid (IsValidPriority).
  const std::string& ForPriority(int priority) const;
  const std::vector<std::string>& Priorities() const { return priorities_; }
  // The priority whose topic `topic` is, or nullopt for any other name.
  std::optional<int> PriorityOf(const std::string& topic) const;

  const std::string& Events() const { return events_; }
  const std::string& Results() const { return results_; }
  const std::string& Dlq() const { return dlq_; }
  const std::string& Control() const { return control_; }
  const std::string& Jobs() const { return jobs_; }
  const std::string& Parked() const { return parked_; }

 private:
  std::string prefix_;
  std::vector<std::string> priorities_;
  std::string events_, results_, dlq_, control_, jobs_, parked_;
};

}  // namespace kwq::api
