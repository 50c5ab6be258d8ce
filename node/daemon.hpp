#pragma once
// The annex-swarm node: wiring only. It builds the services, starts them in order,
// stops them in reverse, and applies what a config reload can change. One io_context on
// one thread owns every service's state; OpenDHT, the DHT signer, the repository scanner,
// the disk worker, the manifest hasher and the NAT worker run on their own threads and
// post their results back to it. See README, "Architecture".
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/thread_pool.hpp>

#include <filesystem>
#include <memory>

#include "node/announcer.hpp"
#include "node/config.hpp"
#include "node/connect_service.hpp"
#include "node/control_api.hpp"
#include "node/control_server.hpp"
#include "node/dht_node.hpp"
#include "node/endpoint_book.hpp"
#include "node/local_objects.hpp"
#include "node/object_service.hpp"
#include "node/replica_service.hpp"
#include "node/share_service.hpp"
#include "node/rules_service.hpp"
#include "node/reachability.hpp"
#include "node/relay_manager.hpp"
#include "node/swarm_directory.hpp"
#include "node/timers.hpp"
#include "transfer/peer_pool.hpp"
#include "transfer/peer_server.hpp"

namespace annexswarm {

// Switches that make a node misbehave or expose what it relays, for tests only. No
// config setting or option of the annex-swarm binary sets them; the test build of the
// node (tests/support/test_node_main.cpp) does.
struct TestHooks {
  bool corrupt_data = false;              // every chunk served is corrupted
  bool claim_everything = false;          // HAVE says "held" for any key; PROVE answers garbage
  std::filesystem::path relay_capture;    // the relay appends every byte it copies here
  bool relay_only = false;                // advertise no direct endpoint; hold relay reservations
};

class Daemon {
public:
  explicit Daemon(DaemonConfig config, TestHooks hooks = {});
  ~Daemon();
  // Runs until SIGINT/SIGTERM. Returns the process exit status; start-up problems are
  // printed as one line each.
  int run();

private:
  Result<bool> start();
  Result<bool> start_peer_server(std::uint16_t dht_port);
  void build_reachability(std::uint16_t dht_port);
  void stop();
  void finish_stop();
  void reload();  // SIGHUP: read the config file again; apply what can change while running
  void wait_for_signal();
  StatusReply status() const;
  TrashReply trash() const;
  void purge_trash();  // then again in an hour
  void measure_store_offer();  // on the disk thread, then again in a minute
  // The stores' dotfile (node/node_limits.hpp): read at start, on SIGHUP, and when it changes.
  void watch_limits_file();
  void read_limits_file(bool force);
  void apply_limits();  // the lower of the config's and the dotfile's, to the services
  double upload_limit() const;
  double download_limit() const;
  std::optional<std::uint64_t> storage_limit() const;
  std::optional<HoursWindow> hours() const;  // the dotfile's, else the config's
  bool nat_applies() const;

  DaemonConfig config_;
  TestHooks hooks_;
  asio::io_context io_;
  asio::signal_set signals_{io_};
  std::unique_ptr<Timers> timers_ = make_asio_timers(io_);
  int lock_fd_ = -1;
  dht::crypto::Identity identity_;
  NodeId node_id_;
  // Worker threads; joined first on the way out, so no job outlives what it touches.
  asio::thread_pool disk_{1};
  asio::thread_pool scanner_{1};
  std::unique_ptr<DhtNode> dht_;
  std::unique_ptr<SwarmDirectory> directory_;
  LocalObjects objects_;
  std::unique_ptr<Announcer> announcer_;
  std::unique_ptr<EndpointBook> book_;
  std::shared_ptr<TlsCredentials> tls_;
  std::shared_ptr<DirectDialer> dialer_;
  std::unique_ptr<PeerPool> pool_;  // one link per member, shared by every service
  std::unique_ptr<PeerServer> peer_server_;
  std::uint16_t peer_port_ = 0;
  std::unique_ptr<DialBackResponder> dial_back_;
  std::unique_ptr<Reachability> reach_;
  std::unique_ptr<RelayManager> relays_;
  std::unique_ptr<ObjectService> object_service_;
  std::unique_ptr<ShareService> share_service_;  // erasure-coded stores, over the object service
  std::unique_ptr<ReplicaService> replicas_;     // replicated stores, under the rules
  std::unique_ptr<RulesService> rules_;          // the swarm rules, signed, through the DHT
  std::unique_ptr<ConnectService> connect_;      // tunnels to services other members expose
  std::unique_ptr<ControlApi> api_;
  std::unique_ptr<ControlServer> control_;
  asio::steady_timer stop_timer_{io_};
  std::unique_ptr<Timer> trash_timer_ = timers_->make_timer();
  std::unique_ptr<Timer> offer_timer_ = timers_->make_timer();
  std::unique_ptr<Timer> limits_timer_ = timers_->make_timer();
  NodeLimits file_limits_;
  std::string limits_seen_;     // the dotfile's mtime and size when last read ("" : absent)
  std::string limits_problem_;  // why the dotfile was not applied, if it was not
  bool limits_read_ = false;
  std::uint64_t stores_used_ = 0;  // bytes in the swarm stores, at the last measure
  bool book_started_ = false;
  bool stopping_ = false;
};

}  // namespace annexswarm
