// Result<T>: a value or an Error, shaped like std::expected. Result<void> carries only success or
// an Error. Both are [[nodiscard]]: dropping one unread needs an explicit ignoreError("why").
#pragma once

#include <cassert>
#include <optional>
#include <utility>
#include <variant>

#include "common/error.h"

namespace pgf {

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T valueOr(T fallback) const { return ok() ? std::get<0>(v_) : std::move(fallback); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : e_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return !e_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const {
    assert(!ok());
    return *e_;
  }

 private:
  std::optional<Error> e_;
};

using Status = Result<void>;

inline Status okStatus() {
  return Status();
}

// Swallows a result on purpose; `why` documents the decision where grep can find it.
template <typename R>
inline void ignoreError(R&& /*result*/, const char* /*why*/) {}

}  // namespace pgf

// Returns the error of `expr` (a Result) from the enclosing function, prefixed with `context`.
#define PGF_TRY(expr, context)                 \
  do {                                         \
    auto pgf_try_r_ = (expr);                  \
    if (!pgf_try_r_.ok())                      \
      return pgf_try_r_.error().wrap(context); \
  } while (0)

// Returns the error of `expr` (a Result) from the enclosing function as it is, for messages that
// already say everything (a configuration error naming its key).
#define PGF_RETURN_IF_ERROR(expr) \
  do {                            \
    auto pgf_try_r_ = (expr);     \
    if (!pgf_try_r_.ok())         \
      return pgf_try_r_.error();  \
  } while (0)
