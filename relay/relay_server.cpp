#include "relay/relay_server.hpp"

#include <asio/write.hpp>

#include <cstdio>

#include "protocol/crypto.hpp"

namespace annexswarm {
using Clock = std::chrono::steady_clock;

namespace {
constexpr std::size_t kSpliceBuffer = 256 * 1024;
}

// Copies bytes both ways between two sockets until either side closes or a limit is hit.
class RelayServer::Circuit : public std::enable_shared_from_this<Circuit> {
public:
  Circuit(RelayServer& relay, NodeId target, asio::ip::tcp::socket a, asio::ip::tcp::socket b)
      : relay_(relay), lifetime_(relay.lifetime_), target_(target), timer_(relay.io_) {
    sockets_[0] = std::move(a);
    sockets_[1].emplace(std::move(b));
    buffers_[0].resize(kSpliceBuffer);
    buffers_[1].resize(kSpliceBuffer);
  }

  void start() {
    auto self = shared_from_this();
    timer_.expires_after(relay_.limits_.max_circuit_duration);
    timer_.async_wait([self](const std::error_code& ec) {
      if (!ec) self->close(true);
    });
    pump(0);
    pump(1);
  }

private:
  // Reads from side `from` and writes to the other side.
  void pump(int from) {
    auto self = shared_from_this();
    auto& in = from == 0 ? *sockets_[0] : *sockets_[1];
    in.async_read_some(asio::buffer(buffers_[from]), [self, from](const std::error_code& ec, std::size_t n) {
      if (self->lifetime_.expired() || self->closed_) return;
      if (ec) return self->close(false);
      self->forward(from, n);
    });
  }

  void forward(int from, std::size_t n) {
    auto& relay = relay_;
    bytes_ += n;
    relay.stats_.bytes_relayed += n;
    if (!relay.capture_.empty()) {
      if (auto* f = std::fopen(relay.capture_.c_str(), "ab")) {
        std::fwrite(buffers_[from].data(), 1, n, f);
        std::fclose(f);
      }
    }
    if (relay.limits_.max_circuit_bytes && bytes_ > relay.limits_.max_circuit_bytes) return close(true);
    auto wait = relay.rate_.take(n, Clock::now());
    auto self = shared_from_this();
    auto send = [self, from, n] {
      if (self->lifetime_.expired() || self->closed_) return;
      auto& out = from == 0 ? *self->sockets_[1] : *self->sockets_[0];
      asio::async_write(out, asio::buffer(self->buffers_[from].data(), n),
                        [self, from](const std::error_code& ec, std::size_t) {
                          if (self->lifetime_.expired() || self->closed_) return;
                          if (ec) return self->close(false);
                          self->pump(from);
                        });
    };
    if (wait == Clock::duration::zero()) return send();
    auto pace = std::make_shared<asio::steady_timer>(relay.io_, wait);
    pace->async_wait([pace, send](const std::error_code& ec) {
      if (!ec) send();
    });
  }

  void close(bool cut) {
    if (closed_) return;
    closed_ = true;
    std::error_code ignored;
    for (auto& s : sockets_)
      if (s) s->close(ignored);
    timer_.cancel();
    if (!lifetime_.expired()) relay_.circuit_closed(target_, bytes_, cut);
  }

  RelayServer& relay_;
  std::weak_ptr<int> lifetime_;
  NodeId target_;
  std::optional<asio::ip::tcp::socket> sockets_[2];
  Bytes buffers_[2];
  asio::steady_timer timer_;
  std::uint64_t bytes_ = 0;
  bool closed_ = false;
};

RelayServer::RelayServer(asio::io_context& io, RelayLimits limits)
    : io_(io), limits_(limits), rate_(limits.rate, 1024 * 1024), sweep_timer_(io) {
  sweep();
}

RelayServer::~RelayServer() { sweep_timer_.cancel(); }

bool RelayServer::live(const Reservation& r, Clock::time_point now) const {
  return !r.alive.expired() && now < r.expires;
}

void RelayServer::sweep() {
  auto now = Clock::now();
  std::erase_if(reservations_, [&](const auto& kv) { return !live(kv.second, now) && kv.second.circuits_open == 0; });
  std::erase_if(pending_, [&](const auto& kv) { return now >= kv.second.expires; });
  sweep_timer_.expires_after(std::chrono::seconds(1));
  sweep_timer_.async_wait([this, alive = std::weak_ptr<int>(lifetime_)](const std::error_code& ec) {
    if (!ec && !alive.expired()) sweep();
  });
}

Result<std::uint32_t> RelayServer::reserve(const NodeId& node, std::function<void(const peer::Frame&)> notify,
                                           std::weak_ptr<void> alive) {
  auto now = Clock::now();
  auto found = reservations_.find(node);
  if (found == reservations_.end()) {
    std::size_t held = 0;
    for (const auto& [n, r] : reservations_) held += live(r, now) ? 1 : 0;
    if (held >= limits_.max_reservations) {
      ++stats_.reservations_refused;
      return Error{"relay full: it holds " + std::to_string(held) + " reservations, its limit"};
    }
    found = reservations_.emplace(node, Reservation{}).first;
  }
  found->second.notify = std::move(notify);
  found->second.alive = std::move(alive);
  found->second.expires = now + limits_.reservation_ttl;
  return static_cast<std::uint32_t>(limits_.reservation_ttl.count());
}

Result<Bytes> RelayServer::connect(const NodeId& from, const NodeId& target) {
  auto now = Clock::now();
  auto found = reservations_.find(target);
  if (found == reservations_.end() || !live(found->second, now)) {
    ++stats_.circuits_refused;
    return Error{"no reservation for " + target.hex() + " on this relay"};
  }
  auto& r = found->second;
  std::size_t in_flight = r.circuits_open;
  for (const auto& [t, p] : pending_) in_flight += p.target == target ? 1 : 0;
  if (in_flight >= limits_.max_circuits_per_reservation) {
    ++stats_.circuits_refused;
    return Error{"too many circuits to " + target.hex() + " (limit " +
                 std::to_string(limits_.max_circuits_per_reservation) + ")"};
  }
  Bytes token(peer::kCircuitToken);
  crypto::random_fill(token);
  pending_[token] = Pending{target, now + limits_.join_timeout, nullptr};
  r.notify(peer::Incoming{token, from});
  return token;
}

void RelayServer::join(asio::ip::tcp::socket socket, Bytes token) {
  auto found = pending_.find(token);
  if (found == pending_.end() || Clock::now() >= found->second.expires) {
    ++stats_.joins_refused;
    std::error_code ignored;
    socket.close(ignored);
    return;
  }
  if (!found->second.first) {
    found->second.first = std::make_unique<asio::ip::tcp::socket>(std::move(socket));
    return;
  }
  auto target = found->second.target;
  auto first = std::move(found->second.first);
  pending_.erase(found);
  ++stats_.circuits_opened;
  ++circuits_open_;
  if (auto r = reservations_.find(target); r != reservations_.end()) ++r->second.circuits_open;
  std::make_shared<Circuit>(*this, target, std::move(*first), std::move(socket))->start();
}

void RelayServer::circuit_closed(const NodeId& target, std::uint64_t, bool cut) {
  --circuits_open_;
  if (cut) ++stats_.circuits_cut;
  if (auto r = reservations_.find(target); r != reservations_.end() && r->second.circuits_open > 0)
    --r->second.circuits_open;
}

std::vector<RelayServer::ReservationInfo> RelayServer::reservations() const {
  auto now = Clock::now();
  std::vector<ReservationInfo> out;
  for (const auto& [node, r] : reservations_)
    if (live(r, now))
      out.push_back({node, r.circuits_open, std::chrono::duration_cast<std::chrono::seconds>(r.expires - now)});
  return out;
}

}  // namespace annexswarm
