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
  Result<nlohmann::json> request(const nlohmann::json& request, const EventFn& on_event = {});

private:
  explicit ControlClient(int fd) : fd_(fd) {}
  Result<std::string> read_line();
  int fd_ = -1;
  std::string buffer_;
};

}  // namespace annexswarm
