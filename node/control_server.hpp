#pragma once
// The control socket: a Unix socket (mode 0600) in the state dir speaking JSON lines.
// A client sends one request per line; the node answers with any number of event lines
// ({"event": ...}) and then exactly one reply line ({"ok": true|false, ...}).
#include <asio/io_context.hpp>
#include <asio/local/stream_protocol.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>

#include "protocol/result.hpp"

namespace annexswarm {

inline constexpr std::size_t kMaxControlLine = 64 * 1024;
// While a request runs, the node sends {"event":"alive"} this often; clients give up on a
// node silent for several of these (kControlClientTimeout).
inline constexpr auto kControlHeartbeat = std::chrono::seconds(5);

class ControlSession;

// Lets a handler answer later (after DHT lookups) without owning the connection.
class ControlResponder {
public:
  explicit ControlResponder(std::shared_ptr<ControlSession> session) : session_(std::move(session)) {}
  void event(nlohmann::json event) const;
  void reply(nlohmann::json reply) const;  // ends the request
  void fail(std::string_view code, std::string_view message) const;
  // Runs `fn` if the client hangs up before the reply (at once if it already has).
  void on_gone(std::function<void()> fn) const;
  // Ends the request with `reply` and gives the connection away: once the reply is written
  // it stops being a JSON-lines session, and `take` gets the socket and whatever the client
  // sent after its request line (a tunnel's first bytes). Nothing else may be asked on it.
  using Taker = std::function<void(asio::local::stream_protocol::socket socket, std::string sent_ahead)>;
  void hand_over(nlohmann::json reply, Taker take) const;

private:
  std::shared_ptr<ControlSession> session_;
};

using ControlHandler = std::function<void(const nlohmann::json& request, ControlResponder responder)>;

class ControlServer {
public:
  ControlServer(asio::io_context& io, ControlHandler handler);
  Result<bool> listen(const std::filesystem::path& socket_path);
  void close();

private:
  void accept();
  asio::io_context& io_;
  ControlHandler handler_;
  asio::local::stream_protocol::acceptor acceptor_;
  std::filesystem::path path_;
};

}  // namespace annexswarm
