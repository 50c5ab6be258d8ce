#include "node/daemon.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <sys/file.h>
#include <unistd.h>

#include <asio/post.hpp>
#include <map>
#include <set>
#include <sstream>

#include "node/identity.hpp"
#include "node/log.hpp"
#include "node/state_files.hpp"
#include "node/swarm_store.hpp"
#include "protocol/annex_key.hpp"
#include "protocol/ip_address.hpp"

namespace annexswarm {
namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {
constexpr auto kFullRescanEvery = 1h;
constexpr auto kSaveEvery = 60s;
constexpr auto kBusyTick = 20ms;
constexpr auto kIdleTick = 500ms;
constexpr auto kFirstBootstrapRetry = std::chrono::seconds(15);
constexpr auto kMaxBootstrapRetry = std::chrono::seconds(300);

}  // namespace

json endpoint_json(const Endpoint& e) {
  json out = {{"kind", to_string(e.kind)}, {"host", e.host}, {"port", e.port}};
  if (e.kind == EndpointKind::Relay) out["via"] = e.via;
  return out;
}

json IgnoredValues::to_json() const {
  return {{"unsigned", unsigned_values},
          {"undecryptable", undecryptable},
          {"malformed", malformed},
          {"forged", forged}};
}

Daemon::Daemon(DaemonConfig config) : config_(std::move(config)) {
  refresh_ = effective_refresh(config_);
}

Daemon::~Daemon() {
  scanner_.join();
  if (dht_) dht_->stop();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

int Daemon::run() {
  auto started = start();
  if (!started) {
    log::error("{}", started.error());
    return 2;
  }
  signals_.add(SIGINT);
  signals_.add(SIGTERM);
  signals_.add(SIGHUP);
  wait_for_signal();
  io_.run();
  return 0;
}

void Daemon::wait_for_signal() {
  signals_.async_wait([this](const std::error_code& ec, int signo) {
    if (ec) return;
    if (signo == SIGHUP) {
      reload();
      return wait_for_signal();
    }
    log::info("signal {} received, shutting down", signo);
    stop();
  });
}

void Daemon::reload() {
  if (!config_.config_file) {
    log::info("SIGHUP: no config file to read again (started without one)");
    return;
  }
  auto text = read_file(*config_.config_file);
  if (!text) return log::warn("SIGHUP: {}; keeping the running settings", text.error());
  DaemonConfig fresh;
  std::vector<std::string> errors;
  apply_config_text(fresh, *text, config_.config_file->string(), errors);
  for (const auto& [name, value] : config_.cli_settings) {
    if (name == "bootstrap") fresh.bootstrap.clear();
    apply_setting(fresh, name, value, errors, "--" + name);
  }
  if (!errors.empty()) {
    for (const auto& e : errors) log::warn("SIGHUP: {}", e);
    return log::warn("SIGHUP: the config file has errors; keeping the running settings");
  }
  std::vector<std::string> applied, need_restart;
  if (fresh.log_level != config_.log_level) {
    log::set_level(fresh.log_level);
    config_.log_level = fresh.log_level;
    applied.push_back("log-level");
  }
  if (fresh.upload_rate != config_.upload_rate || fresh.upload_rate_per_peer != config_.upload_rate_per_peer) {
    config_.upload_rate = fresh.upload_rate;
    config_.upload_rate_per_peer = fresh.upload_rate_per_peer;
    peer_server_->set_upload_limits(config_.upload_rate, config_.upload_rate_per_peer);
    applied.push_back("upload-rate");
  }
  if (fresh.download_rate != config_.download_rate) {
    config_.download_rate = fresh.download_rate;
    // Downloads under way keep the limiter they started with.
    download_limit_ = config_.download_rate > 0 ? std::make_shared<RateLimiter>(config_.download_rate) : nullptr;
    applied.push_back("download-rate");
  }
  if (fresh.reachability_check != config_.reachability_check) {
    config_.reachability_check = fresh.reachability_check;
    applied.push_back("reachability-check");
  }
  auto tokens = [](const std::vector<SwarmToken>& v) {
    std::vector<std::string> out;
    for (const auto& t : v) out.push_back(t.str());
    return out;
  };
  if (tokens(fresh.swarms) != tokens(config_.swarms)) need_restart.push_back("swarm");
  if (fresh.repos != config_.repos) need_restart.push_back("repo");
  if (fresh.port != config_.port || fresh.peer_port != config_.peer_port) need_restart.push_back("port");
  if (fresh.listen != config_.listen) need_restart.push_back("listen");
  if (fresh.bootstrap != config_.bootstrap) need_restart.push_back("bootstrap");
  if (fresh.nat != config_.nat || fresh.nat_lease != config_.nat_lease) need_restart.push_back("nat");
  if (fresh.relay != config_.relay || fresh.relay_circuit_bytes != config_.relay_circuit_bytes ||
      fresh.relay_rate != config_.relay_rate || fresh.relay_max_reservations != config_.relay_max_reservations)
    need_restart.push_back("relay");
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  };
  log::info("SIGHUP: config read again from {}; applied: {}", config_.config_file->string(),
            applied.empty() ? std::string("nothing changed") : join(applied));
  if (!need_restart.empty()) log::warn("SIGHUP: changed, but only a restart applies them: {}", join(need_restart));
}

Result<bool> Daemon::start() {
  started_ = std::chrono::steady_clock::now();
  if (auto r = prepare_state_dir(config_.state_dir); !r) return Error{r.error()};
  auto lock_path = config_.state_dir / "lock";
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ < 0) return Error{"cannot open " + lock_path.string() + ": " + std::strerror(errno)};
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0)
    return Error{"another annex-swarm daemon is running with state dir " + config_.state_dir.string()};

  // Served repositories first: a typo in --repo should fail before anything is announced.
  std::vector<std::string> problems;
  for (const auto& path : config_.repos) {
    auto repo = open_annex_repo(fs::absolute(path));
    if (!repo) {
      problems.push_back(repo.error());
      continue;
    }
    ServedRepo served;
    served.repo = std::move(*repo);
    repos_.push_back(std::move(served));
  }
  if (!problems.empty()) {
    std::string all;
    for (const auto& p : problems) all += (all.empty() ? "" : "\n") + p;
    return Error{all};
  }
  for (const auto& uuid : existing_swarm_stores(config_.state_dir)) {
    ServedRepo served;
    served.repo = swarm_store(config_.state_dir, uuid);
    repos_.push_back(std::move(served));
  }

  bool created = false;
  auto identity = load_or_create_identity(config_.state_dir, created);
  if (!identity) return Error{identity.error()};
  identity_ = *identity;
  node_id_ = node_id_of(identity_);
  log::info("node id {} ({} identity)", node_id_.hex(), created ? "new" : "existing");

  for (const auto& token : config_.swarms) {
    SwarmState swarm{token, {}, false};
    for (const auto& served : repos_) swarm.tables.push_back(load_table(swarm, served));
    swarms_.push_back(std::move(swarm));
  }

  dht_ = std::make_unique<DhtNode>(io_);
  DhtNode::Options options;
  options.port = config_.port;
  options.listen = config_.listen;
  options.identity = identity_;
  options.lan_discovery = config_.lan_discovery;
  if (auto r = dht_->start(options); !r) return Error{r.error()};
  auto health = dht_->health();
  log::info("DHT listening on UDP port {}", health.bound_port);

  auto tls = TlsCredentials::from_identity(identity_);
  if (!tls) return Error{tls.error()};
  tls_ = *tls;
  dialer_ = std::make_shared<DirectDialer>(io_, tls_);
  if (config_.download_rate > 0) download_limit_ = std::make_shared<RateLimiter>(config_.download_rate);
  std::vector<SwarmToken> tokens;
  for (const auto& sw : swarms_) tokens.push_back(sw.token);
  peer_server_ = std::make_unique<PeerServer>(io_, tls_, std::move(tokens),
                                              [this](const AnnexKey& key, std::string_view scope) {
                                                return locate_object(key, scope);
                                              },
                                              PeerServerLimits{config_.max_peers, config_.upload_rate,
                                                               config_.upload_rate_per_peer});
  peer_server_->on_remove(
      [this](const AnnexKey& key, std::string_view store) { return remove_from_local_store(key, store); });
  peer_server_->on_dial_back([this](const NodeId& node, std::size_t swarm, const std::string& host, std::uint16_t port,
                                    std::function<void(Result<bool>)> done) {
    dial_back(node, swarm, host, port, std::move(done));
  });
  peer_server_->on_member([this](const std::string& remote_ip, const asio::ip::tcp::endpoint& local) {
    reached_from_outside(remote_ip, local);
  });
  peer_server_->on_refused([this](const std::string& why) {
    std::uint64_t suppressed = 0;
    if (peer_refused_log_.allow(std::chrono::steady_clock::now(), suppressed))
      log::warn("refused a peer link from {} ({} similar lines suppressed)", why, suppressed);
  });
  if (config_.test_fault == "corrupt-data") {
    log::warn("test fault switch on: every chunk this node serves is corrupted");
    peer_server_->corrupt_data_for_test(true);
  }
  {
    std::error_code ec;
    auto address = config_.listen.empty() ? asio::ip::address(asio::ip::address_v6::any())
                                          : asio::ip::make_address(config_.listen, ec);
    auto port = peer_server_->listen(address, config_.peer_port.value_or(health.bound_port));
    if (!port)
      return Error{port.error() + (config_.peer_port ? "; pick another --peer-port"
                                                     : "; the peer port follows the DHT port: pick another --port, or set --peer-port")};
    peer_port_ = *port;
    log::info("peers served on TCP port {}", *port);
  }

  control_ = std::make_unique<ControlServer>(
      io_, [this](const json& request, ControlResponder responder) { handle(request, responder); });
  if (auto r = control_->listen(config_.state_dir / "control.sock"); !r) return Error{r.error()};

  if (config_.bootstrap.empty()) {
    log::info("no bootstrap node: this is the first node of a DHT");
  } else {
    dht_->bootstrap(config_.bootstrap, [](std::size_t) {});
    next_bootstrap_ = std::chrono::steady_clock::now() + bootstrap_backoff_;
  }
  if (config_.swarms.empty()) log::warn("no --swarm given: this node announces nothing");
  for (const auto& s : swarms_) log::info("member of swarm {}{}", s.token.id(), s.token.is_public() ? " (public)" : "");
  for (const auto& r : repos_) log::info("serving {} (annex uuid {})", r.repo.path.string(), r.repo.uuid);
  log::info("control socket {}", (config_.state_dir / "control.sock").string());
  log::info("announce refresh every {}s", refresh_.count());

  if (config_.relay == DaemonConfig::RelayMode::On) start_relay_server();
  publish_node_records();
  start_nat();
  tick_poll();
  tick_announce();
  save_timer_.expires_after(kSaveEvery);
  save_timer_.async_wait([this](const std::error_code& ec) {
    if (!ec) save_tables();
  });
  return true;
}

void Daemon::stop() {
  if (stopping_) return;
  stopping_ = true;
  poll_timer_.cancel();
  announce_timer_.cancel();
  records_timer_.cancel();
  save_timer_.cancel();
  reach_timer_.cancel();
  reservations_timer_.cancel();
  if (reservations_) reservations_->release_all();
  signals_.cancel();
  if (control_) control_->close();
  if (peer_server_) peer_server_->close();
  fetches_.clear();
  save_tables();
  if (!mapper_) return finish_stop();
  // Port mappings come off the router before we go; a router that does not answer
  // within the backend's timeouts cannot hold us for long.
  auto finished = std::make_shared<bool>(false);
  auto finish = [this, finished] {
    if (*finished) return;
    *finished = true;
    finish_stop();
  };
  mapper_->stop(finish);
  stop_timer_.expires_after(std::chrono::seconds(10));
  stop_timer_.async_wait([finish](const std::error_code& ec) {
    if (!ec) finish();
  });
}

void Daemon::finish_stop() {
  scanner_.join();
  if (dht_) dht_->stop();
  io_.stop();
}

std::optional<std::filesystem::path> Daemon::locate_object(const AnnexKey& key, std::string_view scope) const {
  for (const auto& served : repos_) {
    if (!scope.empty() && served.repo.uuid != scope) continue;
    auto dir = served.repo.bare ? key.hash_dir_lower() : key.hash_dir_mixed();
    auto path = served.repo.objects_dir / dir / key.str() / key.str();
    std::error_code ec;
    if (fs::is_regular_file(path, ec)) return path;
  }
  return std::nullopt;
}

AnnounceTable Daemon::load_table(const SwarmState& swarm, const ServedRepo& served) const {
  auto ttl = std::chrono::duration_cast<std::chrono::seconds>(kRecordLifetime + 5min);
  auto path = table_path(swarm, served);
  std::error_code ec;
  if (fs::exists(path, ec)) {
    if (auto text = read_file(path)) {
      auto loaded = AnnounceTable::load(*text, refresh_, ttl, WallClock::now());
      if (loaded) return std::move(*loaded);
      log::warn("{}: {}; announcing from scratch", path.string(), loaded.error());
    }
  }
  return AnnounceTable(refresh_, ttl);
}

std::size_t Daemon::add_served(ServedRepo served) {
  repos_.push_back(std::move(served));
  for (auto& swarm : swarms_) swarm.tables.push_back(load_table(swarm, repos_.back()));
  return repos_.size() - 1;
}

void Daemon::rescan_soon(std::size_t index) {
  auto& served = repos_[index];
  if (served.scanning) served.dirty = true;  // tick_poll picks it up
  else start_scan(index);
}

std::filesystem::path Daemon::table_path(const SwarmState& swarm, const ServedRepo& repo) const {
  return config_.state_dir / ("announce-" + swarm.token.id() + "-" + repo.repo.uuid + ".state");
}

void Daemon::save_tables() {
  for (auto& swarm : swarms_) {
    if (!swarm.tables_dirty) continue;
    swarm.tables_dirty = false;
    for (std::size_t i = 0; i < repos_.size(); ++i) {
      auto r = write_file_atomic(table_path(swarm, repos_[i]), swarm.tables[i].save(), 0600);
      if (!r) log::warn("cannot save announce state: {}", r.error());
    }
  }
  if (stopping_) return;
  save_timer_.expires_after(kSaveEvery);
  save_timer_.async_wait([this](const std::error_code& ec) {
    if (!ec) save_tables();
  });
}

std::vector<Endpoint> Daemon::local_endpoints() const {
  // Loopback and LAN addresses only: public ones wait for a dial-back (confirmed_).
  std::vector<Endpoint> out;
  auto port = peer_port_;
  auto add = [&](const std::string& host) {
    auto scope = address_scope(host);
    if (scope == AddressScope::Loopback) out.push_back({EndpointKind::Loopback, host, port});
    else if (scope == AddressScope::Private) out.push_back({EndpointKind::Lan, host, port});
  };
  if (!config_.listen.empty() && address_scope(config_.listen) != AddressScope::Unspecified) {
    add(config_.listen);
    return out;
  }
  for (const auto& host : interface_addresses())
    if (out.size() < kMaxEndpoints) add(host);
  return out;
}

std::vector<std::string> interface_addresses() {
  std::vector<std::string> out;
  ifaddrs* ifs = nullptr;
  if (getifaddrs(&ifs) != 0) return out;
  for (auto* i = ifs; i; i = i->ifa_next) {
    if (!i->ifa_addr || !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK)) continue;
    char host[INET6_ADDRSTRLEN] = {};
    if (i->ifa_addr->sa_family == AF_INET)
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, host, sizeof host);
    else if (i->ifa_addr->sa_family == AF_INET6)
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr, host, sizeof host);
    else
      continue;
    out.emplace_back(host);
  }
  freeifaddrs(ifs);
  return out;
}

std::uint16_t Daemon::contact_sequence(const Bytes& body) {
  // Storage nodes replace a signed value only by a higher sequence number, so a contact
  // record whose endpoints changed (even across restarts) must carry the next one.
  auto path = config_.state_dir / "contact.state";
  std::uint16_t seq = 0;
  std::string saved_hex;
  if (auto text = read_file(path)) {
    std::istringstream in(*text);
    in >> seq >> saved_hex;
  }
  if (saved_hex == to_hex(body)) return seq;
  if (!saved_hex.empty()) ++seq;
  if (auto r = write_file_atomic(path, std::to_string(seq) + " " + to_hex(body) + "\n", 0600); !r)
    log::warn("cannot save contact state: {}", r.error());
  return seq;
}

void Daemon::publish_contact() {
  if (stopping_) return;
  // Dialling order: LAN, public and mapped, then relays.
  auto endpoints = config_.test_relay_only ? std::vector<Endpoint>{} : local_endpoints();
  for (const auto& list : {confirmed_, relay_endpoints_})
    for (const auto& e : list)
      if (endpoints.size() < kMaxEndpoints && std::find(endpoints.begin(), endpoints.end(), e) == endpoints.end())
        endpoints.push_back(e);
  ContactRecord contact{node_id_, kProtocolVersion, relay_ ? kCapabilityRelay : 0u, std::move(endpoints)};
  auto contact_body = encode(contact);
  auto contact_seq = contact_sequence(contact_body);
  for (auto& swarm : swarms_) {
    const auto& token = swarm.token;
    auto contact_id = token.value_id("contact/" + node_id_.hex());
    std::vector<DhtLocation> locations{token.node_location(node_id_), token.nodes_location()};
    if (relay_) locations.push_back(token.relays_location());
    for (const auto& loc : locations)
      dht_->put(loc, contact_id, contact_seq, seal_record(token, loc, contact_body), [](bool) {});
  }
}

void Daemon::publish_node_records() {
  if (stopping_) return;
  publish_contact();
  for (auto& swarm : swarms_) {
    const auto& token = swarm.token;
    for (const auto& served : repos_) {
      if (served.repo.store) continue;  // stores are found through their keys, not by UUID
      auto loc = token.repo_location(served.repo.uuid);
      auto body = encode(RepoRecord{node_id_, served.repo.uuid});
      dht_->put(loc, token.value_id("repo/" + node_id_.hex() + "/" + served.repo.uuid), 0,
                seal_record(token, loc, body), [](bool) {});
    }
  }
  // Until the DHT has peers a put reaches nobody: retry soon, then settle to the refresh.
  auto next = dht_->health().good_nodes > 0 ? std::chrono::duration_cast<std::chrono::seconds>(refresh_)
                                            : std::chrono::seconds(10);
  records_timer_.expires_after(next);
  records_timer_.async_wait([this](const std::error_code& ec) {
    if (!ec) publish_node_records();
  });
}

void Daemon::tick_poll() {
  if (stopping_) return;
  auto now = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < repos_.size(); ++i) {
    auto& served = repos_[i];
    if (served.scanning) continue;
    auto stamp = change_stamp(served.repo);
    if (!served.dirty && served.stamp && *served.stamp == stamp && now - served.last_full_scan < kFullRescanEvery)
      continue;
    served.dirty = false;
    served.stamp = stamp;
    start_scan(i);
  }
  // Reconnected after an outage: failed puts go out again now, not after their backoff.
  bool connected = dht_->health().good_nodes > 0;
  if (connected && !was_connected_) {
    for (auto& swarm : swarms_)
      for (auto& table : swarm.tables) table.retry_failed(WallClock::now());
    if (!config_.bootstrap.empty()) log::info("DHT connected");
    check_reachability("the DHT connected");
    bootstrap_backoff_ = kFirstBootstrapRetry;
  }
  if (!connected && was_connected_ && !config_.bootstrap.empty())
    log::warn("DHT lost all peers; bootstrapping again");
  // Offline (no internet, bootstrap node down): keep running and keep trying, less often.
  if (!connected && !config_.bootstrap.empty() && now >= next_bootstrap_) {
    dht_->bootstrap(config_.bootstrap, [](std::size_t) {});
    next_bootstrap_ = now + bootstrap_backoff_;
    bootstrap_backoff_ = std::min<std::chrono::seconds>(bootstrap_backoff_ * 2, kMaxBootstrapRetry);
  }
  was_connected_ = connected;
  poll_timer_.expires_after(config_.poll_interval);
  poll_timer_.async_wait([this](const std::error_code& ec) {
    if (!ec) tick_poll();
  });
}

void Daemon::start_scan(std::size_t index) {
  auto& served = repos_[index];
  served.scanning = true;
  std::vector<SwarmToken> tokens;
  for (const auto& swarm : swarms_) tokens.push_back(swarm.token);
  asio::post(scanner_, [this, index, repo = served.repo, tokens = std::move(tokens)] {
    auto t0 = std::chrono::steady_clock::now();
    auto scan = scan_present_keys(repo);
    // Where each key's provider record lives, per swarm: HMACs, kept off the io thread.
    std::vector<std::vector<KeyIndex>> indexes(tokens.size());
    for (std::size_t si = 0; si < tokens.size(); ++si) {
      indexes[si].reserve(scan.keys.size());
      for (const auto& key : scan.keys) indexes[si].push_back(tokens[si].key_index(AnnexKey::parse(key).value()));
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    asio::post(io_, [this, index, count = scan.keys.size(), invalid = scan.invalid_names,
                     indexes = std::move(indexes), seconds]() mutable {
      on_scan(index, count, invalid, std::move(indexes), seconds);
    });
  });
}

void Daemon::on_scan(std::size_t index, std::size_t key_count, std::size_t invalid_names,
                     std::vector<std::vector<KeyIndex>> indexes, double seconds) {
  auto& served = repos_[index];
  served.scanning = false;
  served.scanned = true;
  served.keys = key_count;
  served.invalid_names = invalid_names;
  served.last_scan_seconds = seconds;
  served.last_full_scan = std::chrono::steady_clock::now();
  auto now = WallClock::now();
  for (std::size_t si = 0; si < swarms_.size(); ++si) {
    auto& swarm = swarms_[si];
    auto delta = swarm.tables[index].apply_scan(std::move(indexes[si]), now);
    if (delta.buckets) {
      swarm.tables_dirty = true;
      log::info("{}: {} keys ({} new, {} gone; {} bucket records to put) for swarm {}, scanned in {:.2f}s",
                served.repo.path.string(), key_count, delta.added, delta.removed, delta.buckets,
                swarm.token.id(), seconds);
    }
  }
  if (invalid_names)
    log::warn("{}: {} object directories are not valid annex keys; ignored", served.repo.path.string(),
              invalid_names);
}

void Daemon::tick_announce() {
  if (stopping_) return;
  auto steady_now = std::chrono::steady_clock::now();
  double elapsed = std::chrono::duration<double>(steady_now - tokens_at_).count();
  tokens_at_ = steady_now;
  tokens_ = std::min(config_.announce_rate, tokens_ + elapsed * config_.announce_rate);
  std::size_t issued = 0;
  auto now = WallClock::now();
  std::size_t tables = swarms_.size() * repos_.size();
  // Round-robin over (swarm, repo) tables, each only once its repo has been scanned.
  for (std::size_t visited = 0; visited < tables && tokens_ >= 1 &&
                                puts_in_flight_ < config_.announce_window;
       ++visited) {
    std::size_t t = (next_table_ + visited) % tables;
    std::size_t si = t / repos_.size(), ri = t % repos_.size();
    if (!repos_[ri].scanned) continue;
    auto budget = std::min<std::size_t>(static_cast<std::size_t>(tokens_),
                                        config_.announce_window - puts_in_flight_);
    auto jobs = swarms_[si].tables[ri].take_due(now, budget);
    for (auto& job : jobs) {
      auto& swarm = swarms_[si];
      const auto& repo = repos_[ri].repo;
      auto loc = swarm.token.bucket_location(job.bucket);
      ProviderBucketRecord record{node_id_, repo.uuid, job.bucket, job.tags};
      auto sealed = seal_record(swarm.token, loc, encode(record));
      job.tags = {};  // the table only needs bucket and seq back
      tokens_ -= 1;
      ++puts_in_flight_;
      ++issued;
      dht_->put(loc, swarm.token.value_id("provider/" + node_id_.hex() + "/" + repo.uuid), job.seq,
                std::move(sealed), [this, si, ri, job = std::move(job)](bool ok) {
                  --puts_in_flight_;
                  ok ? ++puts_ok_ : ++puts_failed_;
                  if (stopping_) return;
                  swarms_[si].tables[ri].on_result(job, ok, WallClock::now());
                  swarms_[si].tables_dirty = true;
                });
    }
  }
  if (tables) next_table_ = (next_table_ + 1) % tables;
  auto next = (issued || puts_in_flight_) ? std::chrono::milliseconds(kBusyTick) : std::chrono::milliseconds(kIdleTick);
  announce_timer_.expires_after(next);
  announce_timer_.async_wait([this](const std::error_code& ec) {
    if (!ec) tick_announce();
  });
}

template <class Record, class Decode>
std::vector<Record> Daemon::open_values(SwarmState& swarm, const DhtLocation& location,
                                        const std::vector<DhtValue>& values, Decode decode) {
  // The newest sequence number per (signer, value id) wins: storage nodes may lag.
  std::map<std::pair<NodeId, std::uint64_t>, std::pair<std::uint16_t, Record>> latest;
  for (const auto& v : values) {
    if (!v.is_signed) {
      refuse(ignored_.unsigned_values, location, "unsigned value");
      continue;
    }
    auto body = open_record(swarm.token, location, v.data);
    if (!body) {
      refuse(ignored_.undecryptable, location, body.error());
      continue;
    }
    auto record = decode(ByteView(*body));
    if (!record) {
      refuse(ignored_.malformed, location, record.error());
      continue;
    }
    if (record->node != v.owner) {
      refuse(ignored_.forged, location, "record names node " + record->node.hex() +
                                            " but is signed by " + v.owner.hex());
      continue;
    }
    auto slot = std::make_pair(v.owner, v.id);
    auto it = latest.find(slot);
    if (it == latest.end() || static_cast<std::int16_t>(v.seq - it->second.first) > 0)
      latest.insert_or_assign(slot, std::make_pair(v.seq, std::move(*record)));
  }
  std::vector<Record> out;
  for (auto& [slot, entry] : latest) out.push_back(std::move(entry.second));
  return out;
}

void Daemon::refuse(std::uint64_t& counter, const DhtLocation& location, const std::string& why) {
  ++counter;
  std::uint64_t suppressed = 0;
  if (refused_log_.allow(std::chrono::steady_clock::now(), suppressed))
    log::warn("ignored a DHT value at {}: {} ({} similar lines suppressed)", location.hex(), why, suppressed);
}

void Daemon::handle(const json& request, ControlResponder responder) {
  const std::string op = request["op"];
  if (op == "status") return responder.reply(status_json());
  if (op == "whereis") return handle_whereis(request, responder);
  if (op == "get") return handle_get(request, responder);
  if (op == "discover") return handle_discover(request, responder);
  if (op == "peers") return handle_peers(request, responder);
  if (op == "store") return handle_store(request, responder);
  if (op == "present") return handle_present(request, responder);
  if (op == "remove") return handle_remove(request, responder);
  responder.fail("unknown-op", "unknown request '" + op + "'");
}

void Daemon::find_providers(const AnnexKey& key, std::function<void(std::vector<Provider>)> done) {
  struct Gather {
    std::size_t pending;
    std::vector<Provider> found;
    std::function<void(std::vector<Provider>)> done;
  };
  if (swarms_.empty()) return done({});
  auto gather = std::make_shared<Gather>(Gather{swarms_.size(), {}, std::move(done)});
  for (std::size_t si = 0; si < swarms_.size(); ++si) {
    auto index = swarms_[si].token.key_index(key);
    auto loc = swarms_[si].token.bucket_location(index.bucket);
    dht_->get(loc, config_.lookup_timeout, [this, si, loc, index, gather](std::vector<DhtValue> values) {
      for (auto& rec : open_values<ProviderBucketRecord>(swarms_[si], loc, values, decode_provider_bucket)) {
        if (rec.bucket != index.bucket) {
          refuse(ignored_.forged, loc, "provider record for another bucket");
          continue;
        }
        if (rec.holds(index.tag)) gather->found.push_back({si, rec.node, rec.repo_uuid});
      }
      if (--gather->pending == 0) gather->done(std::move(gather->found));
    });
  }
}

void Daemon::handle_whereis(const json& request, ControlResponder responder) {
  if (!request.contains("key") || !request["key"].is_string())
    return responder.fail("bad-request", "whereis needs a \"key\"");
  auto key = AnnexKey::parse(request["key"].get<std::string>());
  if (!key) return responder.fail("bad-key", key.error());
  if (swarms_.empty()) return responder.fail("no-swarm", "this node is in no swarm (start it with --swarm TOKEN)");
  find_providers(*key, [this, key = *key, responder](std::vector<Provider> found) {
    json providers = json::array();
    for (const auto& p : found) {
      json entry = {{"node", p.node.hex()}, {"repo", p.repo_uuid}, {"swarm", swarms_[p.swarm].token.id()}};
      if (key.size()) entry["size"] = *key.size();
      providers.push_back(std::move(entry));
    }
    responder.reply({{"key", key.str()}, {"providers", std::move(providers)}});
  });
}

void Daemon::handle_get(const json& request, ControlResponder responder) {
  if (!request.contains("key") || !request["key"].is_string() || !request.contains("to") || !request["to"].is_string())
    return responder.fail("bad-request", "get needs a \"key\" and a \"to\" path");
  auto key = AnnexKey::parse(request["key"].get<std::string>());
  if (!key) return responder.fail("bad-key", key.error());
  fs::path to = request["to"].get<std::string>();
  if (to.is_relative()) return responder.fail("bad-request", "\"to\" must be an absolute path");
  bool unverified = request.value("unverified", false);
  if (!key->verifiable() && !unverified)
    return responder.fail("unverifiable", "key " + key->str() + " carries no hash, so its content cannot be verified; "
                                          "pass --unverified to fetch it anyway");
  // A UUID (the repository a sameas remote stands for) adds the nodes serving it, even
  // before they have announced the key.
  std::string repo = request.value("repo", std::string());
  if (!repo.empty() && !is_annex_uuid(repo)) return responder.fail("bad-uuid", "'" + repo + "' is not an annex uuid");
  if (auto local = locate_object(*key, ""))
    return copy_local(*key, *local, to, responder);
  find_sources(*key, "", repo, [this, key = *key, to, unverified, responder](std::vector<FetchSource> sources) {
    if (sources.empty()) return responder.fail("not-found", "no reachable node has " + key.str());
    std::vector<SwarmToken> tokens;
    for (const auto& sw : swarms_) tokens.push_back(sw.token);
    auto started = std::chrono::steady_clock::now();
    auto fetch_id = ++fetch_seq_;
    auto fetcher = std::make_shared<Fetcher>(
        io_, disk_.get_executor(), dialer_, std::move(tokens), key, std::move(sources),
        FetchOptions{to, unverified, 4, 16, download_limit_},
        [responder, last = std::make_shared<std::chrono::steady_clock::time_point>()](const FetchProgress& p) {
          auto now = std::chrono::steady_clock::now();
          if (now - *last < std::chrono::milliseconds(200) && p.bytes_done != p.bytes_total) return;
          *last = now;
          responder.event({{"event", "progress"}, {"bytes", p.bytes_done}, {"total", p.bytes_total}, {"peers", p.peers}});
        },
        [this, key, responder, started, fetch_id](std::optional<std::string> error, FetchReport report) {
          json from = json::object(), dropped = json::object();
          for (const auto& [node, bytes] : report.bytes_from) from[node] = bytes;
          for (const auto& [node, why] : report.dropped) dropped[node] = why;
          json paths(report.paths), redialled(report.redialled);
          double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
          json out = {{"key", key.str()}, {"bytes_from", from}, {"dropped", dropped}, {"bytes_fetched", report.bytes_fetched},
                      {"bytes_resumed", report.bytes_resumed}, {"seconds", seconds}, {"paths", std::move(paths)},
                      {"redialled", std::move(redialled)}};
          if (error) {
            out["ok"] = false;
            out["code"] = "failed";
            out["error"] = *error;
          }
          for (const auto& [node, why] : report.dropped) log::warn("get {}: dropped peer {}: {}", key.str(), node, why);
          responder.reply(std::move(out));
          fetches_.erase(fetch_id);
        });
    fetches_[fetch_id] = fetcher;
    fetcher->start();
  });
}

void Daemon::find_contacts(std::vector<std::pair<std::size_t, NodeId>> nodes,
                           std::function<void(std::vector<std::pair<std::size_t, ContactRecord>>)> done) {
  struct Gather {
    std::size_t pending;
    std::vector<std::pair<std::size_t, ContactRecord>> found;
    std::function<void(std::vector<std::pair<std::size_t, ContactRecord>>)> done;
  };
  if (nodes.empty()) return done({});
  auto gather = std::make_shared<Gather>(Gather{nodes.size(), {}, std::move(done)});
  for (const auto& [si, node] : nodes) {
    auto loc = swarms_[si].token.node_location(node);
    dht_->get(loc, config_.lookup_timeout, [this, si = si, node = node, loc, gather](std::vector<DhtValue> values) {
      for (auto& rec : open_values<ContactRecord>(swarms_[si], loc, values, decode_contact))
        if (rec.node == node) gather->found.emplace_back(si, std::move(rec));
      if (--gather->pending == 0) gather->done(std::move(gather->found));
    });
  }
}

void Daemon::handle_discover(const json& request, ControlResponder responder) {
  if (!request.contains("uuid") || !request["uuid"].is_string())
    return responder.fail("bad-request", "discover needs a \"uuid\"");
  std::string uuid = request["uuid"];
  if (!is_annex_uuid(uuid))
    return responder.fail("bad-uuid", "'" + uuid + "' is not a git-annex repository uuid");
  if (swarms_.empty()) return responder.fail("no-swarm", "this node is in no swarm (start it with --swarm TOKEN)");
  find_repo_nodes(uuid, [this, uuid, responder](std::vector<std::pair<std::size_t, NodeId>> nodes) {
    find_contacts(nodes, [this, uuid, nodes, responder](std::vector<std::pair<std::size_t, ContactRecord>> contacts) {
      json out = json::array();
      for (const auto& [si, node] : nodes) {
        json eps = json::array();
        bool have_contact = false;
        for (const auto& [csi, c] : contacts) {
          if (csi != si || c.node != node) continue;
          have_contact = true;
          for (const auto& e : c.endpoints) eps.push_back(endpoint_json(e));
        }
        out.push_back({{"node", node.hex()}, {"swarm", swarms_[si].token.id()},
                       {"contact", have_contact}, {"endpoints", std::move(eps)}});
      }
      responder.reply({{"uuid", uuid}, {"nodes", std::move(out)}});
    });
  });
}

void Daemon::find_repo_nodes(const std::string& uuid,
                             std::function<void(std::vector<std::pair<std::size_t, NodeId>>)> done) {
  struct Gather {
    std::size_t pending;
    std::vector<std::pair<std::size_t, NodeId>> nodes;
    std::function<void(std::vector<std::pair<std::size_t, NodeId>>)> done;
  };
  if (swarms_.empty()) return done({});
  auto gather = std::make_shared<Gather>(Gather{swarms_.size(), {}, std::move(done)});
  for (std::size_t si = 0; si < swarms_.size(); ++si) {
    auto loc = swarms_[si].token.repo_location(uuid);
    dht_->get(loc, config_.lookup_timeout, [this, si, loc, uuid, gather](std::vector<DhtValue> values) {
      for (auto& rec : open_values<RepoRecord>(swarms_[si], loc, values, decode_repo))
        if (rec.uuid == uuid) gather->nodes.emplace_back(si, rec.node);
      if (--gather->pending == 0) gather->done(std::move(gather->nodes));
    });
  }
}

void Daemon::handle_peers(const json&, ControlResponder responder) {
  if (swarms_.empty()) return responder.reply({{"peers", json::array()}});
  struct Gather {
    std::size_t pending;
    json peers = json::array();
  };
  auto gather = std::make_shared<Gather>(Gather{swarms_.size()});
  for (std::size_t si = 0; si < swarms_.size(); ++si) {
    auto loc = swarms_[si].token.nodes_location();
    dht_->get(loc, config_.lookup_timeout, [this, si, loc, gather, responder](std::vector<DhtValue> values) {
      for (auto& rec : open_values<ContactRecord>(swarms_[si], loc, values, decode_contact)) {
        json eps = json::array();
        for (const auto& e : rec.endpoints) eps.push_back(endpoint_json(e));
        gather->peers.push_back({{"node", rec.node.hex()}, {"swarm", swarms_[si].token.id()},
                                 {"self", rec.node == node_id_}, {"endpoints", std::move(eps)}});
      }
      if (--gather->pending == 0) responder.reply({{"peers", std::move(gather->peers)}});
    });
  }
}

json Daemon::status_json() const {
  auto health = dht_->health();
  json swarms = json::array();
  for (const auto& s : swarms_) swarms.push_back({{"id", s.token.id()}, {"public", s.token.is_public()}});
  json repos = json::array();
  for (std::size_t i = 0; i < repos_.size(); ++i) {
    const auto& r = repos_[i];
    json per_swarm = json::array();
    for (const auto& s : swarms_)
      per_swarm.push_back({{"swarm", s.token.id()},
                           {"announced", s.tables[i].confirmed_keys()},
                           {"keys", s.tables[i].key_count()}});
    repos.push_back({{"path", r.repo.path.string()}, {"uuid", r.repo.uuid}, {"scanned", r.scanned},
                     {"keys", r.keys}, {"invalid_names", r.invalid_names},
                     {"last_scan_seconds", r.last_scan_seconds}, {"swarms", std::move(per_swarm)}});
  }
  return {{"node", node_id_.hex()},
          {"version", ANNEX_SWARM_VERSION},
          {"state_dir", config_.state_dir.string()},
          {"port", health.bound_port},
          {"swarms", std::move(swarms)},
          {"dht", {{"status", health.status},
                   {"good_nodes", health.good_nodes},
                   {"dubious_nodes", health.dubious_nodes},
                   {"searches", health.searches},
                   {"public_addresses", health.public_addresses},
                   {"stored_values", health.stored_values},
                   {"stored_bytes", health.stored_bytes}}},
          {"announce", {{"rate", config_.announce_rate},
                        {"refresh_seconds", refresh_.count()},
                        {"in_flight", puts_in_flight_},
                        {"puts_ok", puts_ok_},
                        {"puts_failed", puts_failed_}}},
          {"repos", std::move(repos)},
          {"ignored_values", ignored_.to_json()},
          {"peers_served", peer_server_ ? json{{"links_accepted", peer_server_->stats().links_accepted},
                                               {"links_refused", peer_server_->stats().links_refused},
                                               {"links_open", peer_server_->stats().links_open},
                                               {"bytes_served", peer_server_->stats().bytes_served},
                                               {"frames_paced", peer_server_->stats().frames_paced}}
                                        : json()},
          {"endpoints", [&] {
             json eps = json::array();
             for (const auto& e : local_endpoints()) eps.push_back(endpoint_json(e));
             for (const auto& e : confirmed_) eps.push_back(endpoint_json(e));
             for (const auto& e : relay_endpoints_) eps.push_back(endpoint_json(e));
             return eps;
           }()},
          {"nat", nat_json()},
          {"relay", relay_json()}};
}

}  // namespace annexswarm
