#pragma once
// A value or a one-line error a user can act on. Decoders of untrusted input return
// this instead of throwing, so the network path never unwinds through a parser.
#include <optional>
#include <string>
#include <utility>

namespace annexswarm {

struct Error {
  std::string message;
};

template <class T>
class Result {
public:
  Result(T value) : value_(std::move(value)) {}
  Result(Error error) : error_(std::move(error.message)) {}

  explicit operator bool() const { return value_.has_value(); }
  bool ok() const { return value_.has_value(); }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  const std::string& error() const { return error_; }

private:
  std::optional<T> value_;
  std::string error_;
};

}  // namespace annexswarm
