#pragma once
// The annex-swarm node: one io_context on one thread owns all state. OpenDHT, the
// signer and the repository scanner run on their own threads and post results here.
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/thread_pool.hpp>
#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "nat/port_mapper.hpp"
#include "node/annex_repo.hpp"
#include "node/announce_table.hpp"
#include "node/config.hpp"
#include "node/control_server.hpp"
#include "node/dht_node.hpp"
#include "node/log.hpp"
#include "protocol/annex_key.hpp"
#include "relay/relay_client.hpp"
#include "relay/relay_server.hpp"
#include "protocol/records.hpp"
#include "transfer/fetcher.hpp"
#include "transfer/peer_server.hpp"

namespace annexswarm {

// Values found on the DHT that we refused, by reason. Never trusted, only counted.
struct IgnoredValues {
  std::uint64_t unsigned_values = 0;
  std::uint64_t undecryptable = 0;
  std::uint64_t malformed = 0;
  std::uint64_t forged = 0;  // record names another node than its signer, or another key
  nlohmann::json to_json() const;
};

nlohmann::json endpoint_json(const Endpoint& e);
// The addresses of this host's interfaces that are up (loopback interfaces left out).
std::vector<std::string> interface_addresses();

class Daemon {
public:
  explicit Daemon(DaemonConfig config);
  ~Daemon();
  // Runs until SIGINT/SIGTERM. Returns the process exit status; start-up problems are
  // printed as one line each.
  int run();

private:
  struct ServedRepo {
    AnnexRepo repo;
    std::optional<ChangeStamp> stamp;
    bool scanning = false;
    bool scanned = false;
    std::size_t keys = 0;
    std::size_t invalid_names = 0;
    double last_scan_seconds = 0;
    std::chrono::steady_clock::time_point last_full_scan{};
    bool dirty = false;  // changed by us (a swarm store): scan at the next poll
  };
  struct SwarmState {
    SwarmToken token;
    std::vector<AnnounceTable> tables;  // one per served repo, same order
    bool tables_dirty = false;
  };
  struct Job {
    std::size_t swarm;
    std::size_t repo;
    AnnounceJob job;
  };

  Result<bool> start();
  void stop();
  void finish_stop();
  // SIGHUP: read the config file again; apply what can change while running.
  void reload();
  void tick_poll();
  void start_scan(std::size_t repo_index);
  void on_scan(std::size_t repo_index, std::size_t key_count, std::size_t invalid_names,
               std::vector<std::vector<KeyIndex>> indexes, double seconds);
  void tick_announce();
  void publish_node_records();
  void publish_contact();
  std::uint16_t contact_sequence(const Bytes& body);
  void save_tables();
  std::filesystem::path table_path(const SwarmState& swarm, const ServedRepo& repo) const;
  std::vector<Endpoint> local_endpoints() const;

  void wait_for_signal();
  void handle(const nlohmann::json& request, ControlResponder responder);
  struct Provider {
    std::size_t swarm;
    NodeId node;
    std::string repo_uuid;
  };
  void find_providers(const AnnexKey& key, std::function<void(std::vector<Provider>)> done);
  // In the repository or swarm store with that UUID; empty scope: in any.
  std::optional<std::filesystem::path> locate_object(const AnnexKey& key, std::string_view scope) const;
  std::size_t add_served(ServedRepo served);
  AnnounceTable load_table(const SwarmState& swarm, const ServedRepo& served) const;
  void rescan_soon(std::size_t index);
  // Nodes whose repo record says they serve annex repository `uuid`.
  void find_repo_nodes(const std::string& uuid, std::function<void(std::vector<std::pair<std::size_t, NodeId>>)> done);
  // Contact records to dialable sources; nodes without a usable endpoint are left out.
  std::vector<FetchSource> to_sources(const std::vector<std::pair<std::size_t, ContactRecord>>& contacts) const;
  // The key's providers (only those in repository/store `only_repo`, when given), plus
  // the nodes serving repository `plus_nodes_of`, as dialable sources; this node excluded.
  void find_sources(const AnnexKey& key, const std::string& only_repo, const std::string& plus_nodes_of,
                    std::function<void(std::vector<FetchSource>)> done);
  void copy_local(const AnnexKey& key, const std::filesystem::path& from, const std::filesystem::path& to,
                  ControlResponder responder);
  Result<bool> remove_from_local_store(const AnnexKey& key, std::string_view store);
  // The served repository or swarm store with that UUID.
  std::optional<std::size_t> served_index(std::string_view uuid) const;
  // Sends `request` to every source at once; `done` gets each node's answer, or why there
  // is none, once all are in.
  void ask_sources(const std::vector<FetchSource>& sources, const peer::Frame& request,
                   std::function<void(std::vector<std::pair<std::string, Result<peer::Frame>>>)> done);
  void handle_store(const nlohmann::json& request, ControlResponder responder);
  void handle_present(const nlohmann::json& request, ControlResponder responder);
  void handle_remove(const nlohmann::json& request, ControlResponder responder);
  void handle_whereis(const nlohmann::json& request, ControlResponder responder);
  void handle_get(const nlohmann::json& request, ControlResponder responder);
  void handle_discover(const nlohmann::json& request, ControlResponder responder);
  void handle_peers(const nlohmann::json& request, ControlResponder responder);
  nlohmann::json status_json() const;

  // NAT and reachability (daemon_reach.cpp). Public and mapped endpoints go into the
  // contact record only once another member has dialled them back.
  struct ReachProbe {
    Endpoint endpoint;  // host empty: the address the helper sees us at
    bool ok = false;
    std::vector<std::string> why;  // per helper, when not ok
  };
  void start_nat();
  void check_reachability(const std::string& why);
  void finish_reachability(std::vector<ReachProbe> probes, std::string observed, std::size_t helpers_answered,
                           std::size_t helpers_asked, std::string helper_errors);
  std::vector<Endpoint> reach_candidates() const;
  void ask_helpers(bool from_dht, std::string earlier_errors);
  // Members to ask for a dial-back: the bootstrap nodes, or (from_dht) members whose
  // contact records are on the DHT.
  void find_helpers(bool from_dht, std::function<void(std::vector<FetchSource>)> done);
  void dial_back(const NodeId& node, std::size_t swarm, const std::string& host, std::uint16_t port,
                 std::function<void(Result<bool>)> done);
  bool nat_applies() const;
  // A member from the internet reached `local` directly: that address is reachable.
  void reached_from_outside(const std::string& remote_ip, const asio::ip::tcp::endpoint& local);
  nlohmann::json nat_json() const;

  // Relays (daemon_relay.cpp): offering one, and holding reservations on others while
  // nobody can dial this node.
  void update_relaying();
  void start_relay_server();
  void want_reservations(const std::string& why);
  void on_reservations_changed(const std::string& why);
  void accept_circuit(const asio::ip::tcp::endpoint& relay, Bytes token, NodeId from);
  nlohmann::json relay_json() const;

  // Counts a DHT value we will not trust, and logs it (rate-limited).
  void refuse(std::uint64_t& counter, const DhtLocation& location, const std::string& why);
  template <class Record, class Decode>
  std::vector<Record> open_values(SwarmState& swarm, const DhtLocation& location,
                                  const std::vector<DhtValue>& values, Decode decode);
  void find_contacts(std::vector<std::pair<std::size_t, NodeId>> nodes,
                     std::function<void(std::vector<std::pair<std::size_t, ContactRecord>>)> done);

  DaemonConfig config_;
  asio::io_context io_;
  asio::signal_set signals_{io_};
  int lock_fd_ = -1;
  dht::crypto::Identity identity_;
  NodeId node_id_;
  std::unique_ptr<DhtNode> dht_;
  std::unique_ptr<ControlServer> control_;
  std::shared_ptr<TlsCredentials> tls_;
  std::unique_ptr<PeerServer> peer_server_;
  std::shared_ptr<PeerDialer> dialer_;
  std::map<std::uint64_t, std::shared_ptr<Fetcher>> fetches_;  // downloads in progress
  std::uint64_t fetch_seq_ = 0;
  std::shared_ptr<RateLimiter> download_limit_;
  std::uint16_t peer_port_ = 0;
  // Download disk writes and hashing; declared after fetches_ so it is joined first.
  asio::thread_pool disk_{1};
  std::vector<ServedRepo> repos_;
  std::vector<SwarmState> swarms_;
  asio::thread_pool scanner_{1};
  asio::steady_timer poll_timer_{io_};
  asio::steady_timer announce_timer_{io_};
  asio::steady_timer records_timer_{io_};
  asio::steady_timer save_timer_{io_};
  std::chrono::seconds refresh_;
  double tokens_ = 0;
  std::chrono::steady_clock::time_point tokens_at_{};
  std::size_t puts_in_flight_ = 0;
  std::uint64_t puts_ok_ = 0;
  std::uint64_t puts_failed_ = 0;
  std::size_t next_table_ = 0;
  bool was_connected_ = false;
  std::chrono::steady_clock::time_point next_bootstrap_{};
  std::chrono::seconds bootstrap_backoff_{15};
  log::RateLimited refused_log_;
  log::RateLimited peer_refused_log_;
  bool stopping_ = false;
  IgnoredValues ignored_;
  std::unique_ptr<nat::PortMapper> mapper_;
  std::vector<Endpoint> confirmed_;  // public/mapped endpoints that passed dial-back
  std::vector<ReachProbe> reach_probes_;
  std::string observed_address_;
  std::string reach_summary_ = "not checked yet";
  bool reach_running_ = false;
  std::string reach_again_;  // why to check again once the running check ends
  std::chrono::steady_clock::time_point reach_checked_at_{};
  std::optional<double> first_confirmed_after_;  // seconds from start to a confirmed endpoint
  std::chrono::seconds reach_retry_{10};
  std::size_t dial_backs_in_flight_ = 0;
  asio::steady_timer reach_timer_{io_};
  asio::steady_timer stop_timer_{io_};
  std::unique_ptr<RelayServer> relay_;  // set while this node offers relaying
  std::unique_ptr<RelayReservations> reservations_;
  std::vector<Endpoint> relay_endpoints_;  // "via relay R" endpoints of the reservations held
  asio::steady_timer reservations_timer_{io_};
  std::string reservations_note_;
  std::chrono::steady_clock::time_point started_{};
};

}  // namespace annexswarm
