#pragma once
// The node side of relaying: reservations on up to K relays for a node nobody can dial
// directly. Each lives on the node's pooled link to the relay, pinned open: RESERVE is
// renewed at half its ttl, and INCOMING announces a circuit. A relay that goes away (its
// link breaks, or it stops answering for a whole ttl) is reported, so the node can pick
// another.
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "transfer/peer_pool.hpp"

namespace annexswarm {

struct RelayCandidate {
  PeerAddress address;  // the relay's node id and endpoints
  std::size_t swarm = 0;
};

class RelayReservations {
public:
  struct Held {
    NodeId relay;
    asio::ip::tcp::endpoint endpoint;  // where the relay was reached
    std::size_t swarm = 0;
    bool confirmed = false;  // the relay said yes
    std::uint64_t circuits = 0;
  };
  // A circuit is coming: connect to `relay_endpoint`, present `token`, serve TLS there.
  using IncomingFn = std::function<void(const asio::ip::tcp::endpoint& relay_endpoint, Bytes token, NodeId from)>;

  RelayReservations(asio::io_context& io, PeerPool& pool, std::vector<SwarmToken> swarms, IncomingFn incoming);
  ~RelayReservations();

  // Called whenever the set of confirmed reservations changes, or one fails (with why).
  void on_change(std::function<void(const std::string& why)> fn) { on_change_ = std::move(fn); }
  // Reserves on candidates not yet held until `count` are held or tried.
  void reserve(const std::vector<RelayCandidate>& candidates, std::size_t count);
  // Lets every reservation go: the links to the relays close, so they end at once.
  void release_all();
  std::vector<Held> held() const;
  std::size_t confirmed_count() const;

private:
  struct Slot;
  void run(std::shared_ptr<Slot> slot);
  void send_reserve(std::shared_ptr<Slot> slot);
  void renew(std::shared_ptr<Slot> slot);
  void drop(const std::shared_ptr<Slot>& slot, const std::string& why);

  asio::io_context& io_;
  PeerPool& pool_;
  std::vector<SwarmToken> swarms_;
  IncomingFn incoming_;
  std::function<void(const std::string&)> on_change_;
  std::map<NodeId, std::shared_ptr<Slot>> slots_;
  std::shared_ptr<int> lifetime_ = std::make_shared<int>(0);
};

}  // namespace annexswarm
