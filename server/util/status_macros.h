#pragma once

// Abseil 20220623 has no RETURN_IF_ERROR / ASSIGN_OR_RETURN; these are the local ones.

#define KWQ_RETURN_IF_ERROR(expr)               \
  do {                                          \
    const ::absl::Status _kwq_status = (expr);  \
    if (!_kwq_status.ok()) return _kwq_status;  \
  } while (0)

#define KWQ_CONCAT_INNER(a, b) a##b
#define KWQ_CONCAT(a, b) KWQ_CONCAT_INNER(a, b)

#define KWQ_ASSIGN_OR_RETURN(lhs, expr) \
  KWQ_ASSIGN_OR_RETURN_IMPL(KWQ_CONCAT(_kwq_statusor_, __LINE__), lhs, expr)

#define KWQ_ASSIGN_OR_RETURN_IMPL(statusor, lhs, expr) \
  auto statusor = (expr);                              \
  if (!statusor.ok()) return statusor.status();        \
  lhs = std::move(statusor).value()
