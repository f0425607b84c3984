#include "tests/delete_records.h"

#include "librdkafka/rdkafka.h"

namespace kwq::testing {

std::string DeleteRecordsBefore(const std::string& bootstrap,
                                const std::string& topic, int32_t partition,
                                int64_t before) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err,
                        sizeof(err)) != RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    return err;
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (rk == nullptr) return err;
  rd_kafka_topic_partition_list_t* offsets =
      rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(offsets, topic.c_str(), partition)->offset =
      before;
  rd_kafka_DeleteRecords_t* del = rd_kafka_DeleteRecords_new(offsets);
  rd_kafka_topic_partition_list_destroy(offsets);
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_DeleteRecords(rk, &del, 1, nullptr, queue);
  rd_kafka_DeleteRecords_destroy(del);
  std::string failure = "no answer within 30 s";
  if (rd_kafka_event_t* ev = rd_kafka_queue_poll(queue, 30000)) {
    failure.clear();
    if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      failure = rd_kafka_event_error_string(ev);
    } else {
      const rd_kafka_topic_partition_list_t* result =
          rd_kafka_DeleteRecords_result_offsets(
              rd_kafka_event_DeleteRecords_result(ev));
      for (int i = 0; result != nullptr && i < result->cnt; ++i) {
        if (result->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
          failure = rd_kafka_err2str(result->elems[i].err);
        }
      }
    }
    rd_kafka_event_destroy(ev);
  }
  rd_kafka_queue_destroy(queue);
  rd_kafka_destroy(rk);
  return failure;
}

}  // namespace kwq::testing
