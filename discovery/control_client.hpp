#pragma once
// Blocking client of the node's control socket (JSON lines): one request, any number
// of event lines, one reply.
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <functional>

#include "protocol/result.hpp"

namespace annexswarm {

class ControlClient {
public:
  static Result<ControlClient> connect(const std::filesystem::path& state_dir);
  ~ControlClient();
  ControlClient(ControlClient&& other) noexcept;
  ControlClient& operator=(ControlClient&&) = delete;
  ControlClient(const ControlClient&) = delete;

  using EventFn = std::function<void(const nlohmann::json& event)>;
  // Fails when the daemon sends nothing (not even its heartbeat) for the timeout.
  Result<nlohmann::json> request(const nlohmann::json& request, const EventFn& on_event = {});
  void set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }
  // After a request the node answered by handing the connection over (connect): the
  // socket, now a byte stream, and what was read past the reply. The client is empty after.
  int release(std::string& read_ahead) {
    read_ahead = std::move(buffer_);
    buffer_.clear();
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

private:
  explicit ControlClient(int fd) : fd_(fd) {}
  Result<std::string> read_line();
  int fd_ = -1;
  std::string buffer_;
  // Several heartbeats (the daemon sends one every 5 s while it works) missed in a row.
  std::chrono::milliseconds timeout_{30000};
};

}  // namespace annexswarm
