#pragma once
// The relay: reservations held by members nobody can dial directly, and circuits to
// them. A reservation lives on the member's own authenticated link; a circuit is two
// plain TCP connections (dialer's and target's) that present the same one-time token
// and are then joined: bytes are copied both ways and never looked at. The two ends run
// TLS between themselves, so the relay sees ciphertext only.
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>

#include "protocol/peer_frames.hpp"
#include "transfer/rate_limiter.hpp"

namespace annexswarm {

struct RelayLimits {
  std::size_t max_reservations = 64;
  std::size_t max_circuits_per_reservation = 8;  // open at once
  std::uint64_t max_circuit_bytes = 0;            // both ways together; 0: unlimited
  std::chrono::seconds max_circuit_duration{3600};
  double rate = 0;  // bytes per second over all circuits; 0: unlimited
  std::chrono::seconds reservation_ttl{120};
  std::chrono::seconds join_timeout{15};  // for both ends to show up with the token
};

struct RelayStats {
  std::uint64_t reservations_refused = 0;
  std::uint64_t circuits_opened = 0;
  std::uint64_t circuits_refused = 0;
  std::uint64_t circuits_cut = 0;  // over a byte or time limit
  std::uint64_t joins_refused = 0;  // unknown or expired tokens
  std::uint64_t bytes_relayed = 0;
};

class RelayServer {
public:
  RelayServer(asio::io_context& io, RelayLimits limits);
  ~RelayServer();

  // A member asks for a reservation (again, to renew it). `notify` sends a frame on its
  // link; the reservation ends when `alive` expires or the ttl passes without renewal.
  Result<std::uint32_t> reserve(const NodeId& node, std::function<void(const peer::Frame&)> notify,
                                std::weak_ptr<void> alive);
  // A member asks for a circuit to `target`; the token goes to both.
  Result<Bytes> connect(const NodeId& from, const NodeId& target);
  // A plain connection that presented a circuit token.
  void join(asio::ip::tcp::socket socket, Bytes token);

  struct ReservationInfo {
    NodeId node;
    std::size_t circuits_open = 0;
    std::chrono::seconds expires_in{0};
  };
  std::vector<ReservationInfo> reservations() const;
  std::size_t circuits_open() const { return circuits_open_; }
  const RelayStats& stats() const { return stats_; }
  // Test only: every byte the relay copies is appended to this file.
  void capture_for_test(std::filesystem::path file) { capture_ = std::move(file); }

private:
  struct Reservation {
    std::function<void(const peer::Frame&)> notify;
    std::weak_ptr<void> alive;
    std::chrono::steady_clock::time_point expires;
    std::size_t circuits_open = 0;
  };
  struct Pending {
    NodeId target;
    std::chrono::steady_clock::time_point expires;
    std::unique_ptr<asio::ip::tcp::socket> first;
  };
  class Circuit;
  void sweep();
  bool live(const Reservation& r, std::chrono::steady_clock::time_point now) const;
  void circuit_closed(const NodeId& target, std::uint64_t bytes, bool cut);

  asio::io_context& io_;
  RelayLimits limits_;
  RelayStats stats_;
  RateLimiter rate_;
  std::map<NodeId, Reservation> reservations_;
  std::map<Bytes, Pending> pending_;
  std::size_t circuits_open_ = 0;
  asio::steady_timer sweep_timer_;
  std::filesystem::path capture_;
  std::shared_ptr<int> lifetime_ = std::make_shared<int>(0);
};

}  // namespace annexswarm
