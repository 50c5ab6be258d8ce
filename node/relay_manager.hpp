#pragma once
// Relays, both ways. Offering: with --relay on (or auto, once this node is confirmed
// reachable) the node answers RESERVE and CONNECT and joins circuit connections, and its
// contact record says so (and goes to the swarm's "relays" location). Using: a node that
// nobody can dial holds reservations on up to --relay-reservations relays found there,
// and advertises "via relay R" endpoints through the endpoint book; when one goes away
// it looks for another.
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "node/endpoint_book.hpp"
#include "node/swarm_directory.hpp"
#include "node/timers.hpp"
#include "relay/relay_client.hpp"
#include "relay/relay_server.hpp"
#include "transfer/peer_server.hpp"

namespace annexswarm {

enum class RelayMode { Off, On, Auto };

class RelayManager {
public:
  struct Settings {
    RelayMode mode = RelayMode::Auto;
    RelayLimits limits;
    std::size_t reservations = 2;  // relays to hold a reservation on while unreachable
    std::chrono::milliseconds lookup_timeout{10000};
    bool relay_only = false;             // test only: reserve at once; loopback relays count
    std::filesystem::path capture;       // test only: the relay appends every byte it copies here
  };
  struct Mediator {
    std::function<void(std::chrono::milliseconds, std::function<void(std::vector<Member>)>)> find_relays;
    std::function<void(PeerServer::RelayHooks)> offer;  // answer RESERVE/CONNECT, join circuits
    // Serve our end of a circuit like an accepted connection (TLS, HELLO, PROOF).
    std::function<void(asio::ip::tcp::socket, const std::string& from)> adopt;
    std::function<bool()> nat_applies;
  };
  struct Status {
    RelayMode mode = RelayMode::Auto;
    const RelayServer* server = nullptr;  // set while this node offers relaying
    std::vector<RelayServer::ReservationInfo> served;
    std::vector<RelayReservations::Held> held;
    std::string note;
  };

  RelayManager(asio::io_context& io, Timers& timers, EndpointBook& book, PeerPool& pool,
               std::vector<SwarmToken> swarms, NodeId self, Settings settings, Mediator mediator);
  ~RelayManager();
  void start();
  void stop();  // releases the reservations held
  // After a reachability verdict: offer relaying once reachable; hold reservations while not.
  void update();
  Status status() const;

private:
  void offer();
  void want_reservations(const std::string& why);
  void on_reservations_changed(const std::string& why);
  void accept_circuit(const asio::ip::tcp::endpoint& relay, Bytes token, NodeId from);

  asio::io_context& io_;
  Timers& timers_;
  EndpointBook& book_;
  PeerPool& pool_;
  std::vector<SwarmToken> swarms_;
  NodeId self_;
  Settings settings_;
  Mediator mediator_;
  std::unique_ptr<RelayServer> server_;
  std::unique_ptr<RelayReservations> reservations_;
  std::unique_ptr<Timer> retry_timer_;
  std::string note_;
  bool stopping_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace annexswarm
