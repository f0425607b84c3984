#include "server/kafka/kafka_cluster.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "glog/logging.h"

namespace kwq {
namespace {

struct RdKafkaDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using RdKafkaPtr = std::unique_ptr<rd_kafka_t, RdKafkaDeleter>;

// The last error a client reported (e.g. "SASL authentication error: ..."),
// kept by its error callback: the reason a probe got no answer.
struct LastError {
  absl::Mutex mu;
  std::string text ABSL_GUARDED_BY(mu);
  static void Callback(rd_kafka_t*, int, const char* reason, void* opaque) {
    auto* e = static_cast<LastError*>(opaque);
    absl::MutexLock lock(&e->mu);
    e->text = reason;
  }
};

absl::StatusOr<RdKafkaPtr> NewCHandle(const KafkaConfigMap& settings,
                                      rd_kafka_type_t type,
                                      LastError* last_error = nullptr) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (last_error != nullptr) {
    rd_kafka_conf_set_opaque(conf, last_error);
    rd_kafka_conf_set_error_cb(conf, &LastError::Callback);
  }
  char err[512];
  for (const auto& [k, v] : settings) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof(err)) !=
        RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return absl::InvalidArgumentError(
          absl::StrCat("kafka setting ", k, ": ", err));
    }
  }
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof(err));
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    return absl::InternalError(absl::StrCat("rd_kafka_new: ", err));
  }
  return RdKafkaPtr(rk);
}

}  // namespace

KafkaConfigMap MergeConfig(KafkaConfigMap base,
                           const KafkaConfigMap& overrides) {
  for (const auto& [k, v] : overrides) base[k] = v;
  return base;
}

absl::StatusOr<KafkaConfigMap> ReadKafkaProperties(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("cannot read the Kafka properties file ", path));
  }
  KafkaConfigMap out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    const absl::string_view l = absl::StripAsciiWhitespace(line);
    if (l.empty() || l[0] == '#') continue;
    const size_t eq = l.find('=');
    const absl::string_view key =
        eq == absl::string_view::npos
            ? absl::string_view()
            : absl::StripAsciiWhitespace(l.substr(0, eq));
    if (key.empty()) {
      // The line itself is not repeated: it may hold a secret.
      return absl::InvalidArgumentError(absl::StrCat(
          path, ":", n, ": expected key=value (a librdkafka property)"));
    }
    out[std::string(key)] =
        std::string(absl::StripAsciiWhitespace(l.substr(eq + 1)));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<RdKafka::Conf>> MakeKafkaConf(
    const KafkaConfigMap& settings) {
  std::unique_ptr<RdKafka::Conf> conf(
      RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  for (const auto& [k, v] : settings) {
    if (conf->set(k, v, err) != RdKafka::Conf::CONF_OK) {
      return absl::InvalidArgumentError(
          absl::StrCat("kafka setting ", k, ": ", err));
    }
  }
  return conf;
}

absl::StatusOr<std::unique_ptr<KafkaCluster>> KafkaCluster::Connect(
    const std::string& bootstrap_servers, absl::Duration wait,
    KafkaConfigMap client_properties) {
  if (bootstrap_servers.empty()) {
    return absl::InvalidArgumentError("bootstrap servers are empty");
  }
  KafkaCluster probe(bootstrap_servers, nullptr, nullptr, client_properties);
  LastError last_error;
  auto handle =
      NewCHandle(MergeConfig(probe.ClientConfig(), {{"log_level", "3"}}),
                 RD_KAFKA_PRODUCER, &last_error);
  if (!handle.ok()) return handle.status();
  const absl::Time deadline = absl::Now() + wait;
  rd_kafka_resp_err_t last = RD_KAFKA_RESP_ERR_NO_ERROR;
  do {
    const struct rd_kafka_metadata* md = nullptr;
    last = rd_kafka_metadata(handle->get(), 0, nullptr, &md, 1000);
    rd_kafka_poll(handle->get(), 0);  // serves the error callback
    if (last == RD_KAFKA_RESP_ERR_NO_ERROR) {
      const int brokers = md->broker_cnt;
      rd_kafka_metadata_destroy(md);
      if (brokers > 0) {
        return std::unique_ptr<KafkaCluster>(new KafkaCluster(
            bootstrap_servers, nullptr, nullptr, std::move(client_properties)));
      }
    }
  } while (absl::Now() < deadline);
  std::string why = rd_kafka_err2str(last);
  {
    absl::MutexLock lock(&last_error.mu);
    if (!last_error.text.empty())
      absl::StrAppend(&why, " (", last_error.text, ")");
  }
  return absl::UnavailableError(
      absl::StrCat("Kafka at ", bootstrap_servers, " did not answer within ",
                   absl::FormatDuration(wait), ": ", why));
}

absl::StatusOr<std::unique_ptr<KafkaCluster>> KafkaCluster::StartEmbedded(
    int brokers) {
  auto host = NewCHandle({{"log_level", "3"}}, RD_KAFKA_PRODUCER);
  if (!host.ok()) return host.status();
  rd_kafka_mock_cluster_t* mock =
      rd_kafka_mock_cluster_new(host->get(), brokers);
  if (mock == nullptr) {
    return absl::InternalError("rd_kafka_mock_cluster_new failed");
  }
  std::string bootstrap = rd_kafka_mock_cluster_bootstraps(mock);
  return std::unique_ptr<KafkaCluster>(
      new KafkaCluster(std::move(bootstrap), host->release(), mock));
}

KafkaCluster::~KafkaCluster() {
  if (mock_ != nullptr) rd_kafka_mock_cluster_destroy(mock_);
  if (mock_host_ != nullptr) rd_kafka_destroy(mock_host_);
}

KafkaConfigMap KafkaCluster::ClientConfig() const {
  // Metadata every 10 s (librdkafka's default is 5 min): partitions added to a
  // topic are produced to and consumed (a group rebalances) within seconds of
  // each other, so a record sent to a new partition does not wait minutes for
  // the group to notice it.
  KafkaConfigMap base = {{"socket.connection.setup.timeout.ms", "5000"},
                         {"topic.metadata.refresh.interval.ms", "10000"},
                         {"log_level", "4"}};
  // The user's properties over kwq's defaults; the cluster's address always
  // comes from the bootstrap servers given.
  base = MergeConfig(std::move(base), client_properties_);
  base["bootstrap.servers"] = bootstrap_;
  return base;
}

KafkaConfigMap KafkaCluster::ConsumerConfig(const std::string& group) const {
  // A real broker holds a fetch until data arrives (then answers at once) or
  // fetch.wait.max.ms passes: a long wait costs no latency, and idle fetches
  // are 100x rarer (measured: an idle dev grid cost the broker 12% of a core
  // at 5-10 ms). The mock cluster does not answer early, so it keeps it short.
  KafkaConfigMap consumer =
      MergeConfig(ClientConfig(),
                  {{"group.id", group},
                   {"enable.auto.commit", "false"},
                   {"enable.auto.offset.store", "false"},
                   {"auto.offset.reset", "earliest"},
                   {"session.timeout.ms", "6000"},
                   {"heartbeat.interval.ms", "500"},
                   {"fetch.wait.max.ms", mock_ != nullptr ? "5" : "500"}});
  // The group's liveness may be tuned in --kafka_config: a shorter session
  // moves a dead instance's partitions sooner (the failover time is about one
  // session) but needs the broker's group.min.session.timeout.ms at or below
  // it (Kafka's default is 6000).
  for (const char* key : {"session.timeout.ms", "heartbeat.interval.ms"}) {
    if (auto it = client_properties_.find(key); it != client_properties_.end()) {
      consumer[key] = it->second;
    }
  }
  return consumer;
}

absl::Status KafkaCluster::EnsureTopics(const std::vector<TopicSpec>& topics,
                                        absl::Duration timeout) const {
  if (mock_ != nullptr) {
    // The mock cluster has no CreateTopics API; it has a direct call instead.
    for (const TopicSpec& t : topics) {
      rd_kafka_resp_err_t err =
          rd_kafka_mock_topic_create(mock_, t.name.c_str(), t.partitions, 1);
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR &&
          err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        return absl::InternalError(absl::StrCat("creating mock topic ", t.name,
                                                ": ", rd_kafka_err2str(err)));
      }
    }
    return absl::OkStatus();
  }
  auto handle = NewCHandle(ClientConfig(), RD_KAFKA_PRODUCER);
  if (!handle.ok()) return handle.status();
  rd_kafka_t* rk = handle->get();
  std::vector<rd_kafka_NewTopic_t*> new_topics;
  char err[512];
  for (const TopicSpec& t : topics) {
    rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(
        t.name.c_str(), t.partitions, -1, err, sizeof(err));
    if (nt == nullptr) {
      for (auto* p : new_topics) rd_kafka_NewTopic_destroy(p);
      return absl::InvalidArgumentError(
          absl::StrCat("topic ", t.name, ": ", err));
    }
    for (const auto& [k, v] : t.config) {
      rd_kafka_NewTopic_set_config(nt, k.c_str(), v.c_str());
    }
    new_topics.push_back(nt);
  }
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t* options =
      rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_request_timeout(
      options, static_cast<int>(absl::ToInt64Milliseconds(timeout)), err,
      sizeof(err));
  rd_kafka_CreateTopics(rk, new_topics.data(), new_topics.size(), options,
                        queue);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(
      queue, static_cast<int>(absl::ToInt64Milliseconds(timeout)) + 1000);
  absl::Status status;
  if (ev == nullptr) {
    status = absl::DeadlineExceededError("CreateTopics: no answer from Kafka");
  } else if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    status = absl::UnavailableError(
        absl::StrCat("CreateTopics: ", rd_kafka_event_error_string(ev)));
  } else {
    const rd_kafka_CreateTopics_result_t* res =
        rd_kafka_event_CreateTopics_result(ev);
    size_t n = 0;
    const rd_kafka_topic_result_t** results =
        rd_kafka_CreateTopics_result_topics(res, &n);
    for (size_t i = 0; i < n; ++i) {
      rd_kafka_resp_err_t e = rd_kafka_topic_result_error(results[i]);
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        LOG(INFO) << "created topic " << rd_kafka_topic_result_name(results[i]);
      } else if (e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        status = absl::UnavailableError(absl::StrCat(
            "creating topic ", rd_kafka_topic_result_name(results[i]), ": ",
            rd_kafka_topic_result_error_string(results[i])));
        break;
      }
    }
  }
  if (ev != nullptr) rd_kafka_event_destroy(ev);
  rd_kafka_AdminOptions_destroy(options);
  rd_kafka_queue_destroy(queue);
  for (auto* p : new_topics) rd_kafka_NewTopic_destroy(p);
  if (!status.ok()) return status;
  // The controller answers once a topic is created; the broker's metadata
  // shows it a moment later (a listing right after missed a new topic in CI).
  // Return only when every topic is visible, so callers see what they made.
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    const struct rd_kafka_metadata* md = nullptr;
    size_t visible = 0;
    if (rd_kafka_metadata(rk, 1, nullptr, &md, 1000) ==
        RD_KAFKA_RESP_ERR_NO_ERROR) {
      for (const TopicSpec& t : topics) {
        for (int i = 0; i < md->topic_cnt; ++i) {
          if (t.name == md->topics[i].topic &&
              md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            ++visible;
            break;
          }
        }
      }
      rd_kafka_metadata_destroy(md);
    }
    if (visible == topics.size()) return absl::OkStatus();
    if (absl::Now() >= deadline) {
      return absl::UnavailableError(
          absl::StrCat("created topics not in the cluster's metadata after ",
                       absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(20));  // metadata catching up: poll
  }
}

absl::StatusOr<int> KafkaCluster::DeleteTopicsWithPrefix(
    const std::string& prefix, absl::Duration timeout) const {
  if (prefix.empty()) {
    return absl::InvalidArgumentError("refusing to delete every topic");
  }
  auto handle = NewCHandle(ClientConfig(), RD_KAFKA_PRODUCER);
  if (!handle.ok()) return handle.status();
  rd_kafka_t* rk = handle->get();
  const int timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(timeout));
  const rd_kafka_metadata_t* md = nullptr;
  if (rd_kafka_resp_err_t e =
          rd_kafka_metadata(rk, 1, nullptr, &md, timeout_ms);
      e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::UnavailableError(
        absl::StrCat("listing topics: ", rd_kafka_err2str(e)));
  }
  std::vector<rd_kafka_DeleteTopic_t*> doomed;
  for (int i = 0; i < md->topic_cnt; ++i) {
    const std::string name = md->topics[i].topic;
    if (name.rfind(prefix, 0) == 0) {
      doomed.push_back(rd_kafka_DeleteTopic_new(name.c_str()));
    }
  }
  rd_kafka_metadata_destroy(md);
  if (doomed.empty()) return 0;
  if (mock_ != nullptr) {  // the mock cluster vanishes with the process
    for (auto* d : doomed) rd_kafka_DeleteTopic_destroy(d);
    return 0;
  }
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t* options =
      rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DELETETOPICS);
  char err[512];
  rd_kafka_AdminOptions_set_request_timeout(options, timeout_ms, err,
                                            sizeof(err));
  rd_kafka_DeleteTopics(rk, doomed.data(), doomed.size(), options, queue);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(queue, timeout_ms + 1000);
  absl::StatusOr<int> result = static_cast<int>(doomed.size());
  if (ev == nullptr) {
    result = absl::DeadlineExceededError("DeleteTopics: no answer from Kafka");
  } else if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    result = absl::UnavailableError(
        absl::StrCat("DeleteTopics: ", rd_kafka_event_error_string(ev)));
  }
  if (ev != nullptr) rd_kafka_event_destroy(ev);
  rd_kafka_AdminOptions_destroy(options);
  rd_kafka_queue_destroy(queue);
  for (auto* d : doomed) rd_kafka_DeleteTopic_destroy(d);
  return result;
}

}  // namespace kwq
