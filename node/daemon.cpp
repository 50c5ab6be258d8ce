#include "node/daemon.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>

#include <asio/post.hpp>

#include "node/identity.hpp"
#include "protocol/ip_address.hpp"
#include "node/log.hpp"
#include "node/state_files.hpp"
#include "node/swarm_store.hpp"
#include "protocol/crypto.hpp"

namespace annexswarm {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {
constexpr std::size_t kMaxHelpers = 3;
constexpr auto kHelperLookup = std::chrono::milliseconds(5000);
constexpr auto kRelayLookup = std::chrono::milliseconds(10000);
constexpr auto kStopGrace = 10s;  // a router that does not answer cannot hold us longer

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}
}  // namespace

Daemon::Daemon(DaemonConfig config, TestHooks hooks)
    : config_(std::move(config)), hooks_(std::move(hooks)), objects_(config_.state_dir, config_.stores()) {}

Daemon::~Daemon() {
  disk_.join();
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

bool Daemon::nat_applies() const {
  // A node bound to loopback only is a test or a local-only node: nobody outside can
  // reach it whatever the router does.
  return config_.listen.empty() || address_scope(config_.listen) != AddressScope::Loopback;
}

Result<bool> Daemon::start() {
  if (auto r = prepare_state_dir(config_.state_dir); !r) return Error{r.error()};
  auto lock_path = config_.state_dir / "lock";
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ < 0) return Error{"cannot open " + lock_path.string() + ": " + std::strerror(errno)};
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0)
    return Error{"another annex-swarm daemon is running with state dir " + config_.state_dir.string()};

  // Served repositories first: a typo in --repo should fail before anything is announced.
  if (auto r = objects_.open(config_.repos, config_.repo_origins); !r) return Error{r.error()};

  bool created = false;
  auto identity = load_or_create_identity(config_.state_dir, created);
  if (!identity) return Error{identity.error()};
  identity_ = *identity;
  node_id_ = node_id_of(identity_);
  log::info("node id {} ({} identity)", node_id_.hex(), created ? "new" : "existing");

  dht_ = std::make_unique<DhtNode>(io_);
  if (auto r = dht_->start({config_.port, config_.listen, identity_, config_.lan_discovery}); !r) return Error{r.error()};
  auto dht_port = dht_->health().bound_port;
  log::info("DHT listening on UDP port {}", dht_port);
  // Our DHT value ids come from a secret of this node alone, derived from its private key.
  auto key_bytes = identity_.first->serialize();
  auto value_secret = crypto::hmac_sha256(ByteView(key_bytes.data(), key_bytes.size()), as_bytes("annex-swarm value ids v1"));
  directory_ = std::make_unique<SwarmDirectory>(*dht_, *timers_, node_id_, config_.swarms, config_.lookup_timeout,
                                                value_secret, config_.state_dir / "dht-stamps");

  auto tls = TlsCredentials::from_identity(identity_);
  if (!tls) return Error{tls.error()};
  tls_ = *tls;
  dialer_ = std::make_shared<DirectDialer>(io_, tls_);
  pool_ = std::make_unique<PeerPool>(io_, dialer_);
  // A relay is asked for circuits over the node's shared link to it.
  dialer_->set_relay_link([this](const PeerAddress& relay, const SwarmToken& swarm,
                                 std::function<void(Result<std::shared_ptr<PeerChannel>>)> done) {
    pool_->channel(relay, swarm, std::move(done));
  });
  // A dial-back must be a fresh dial: it tests whether the asker can be reached.
  dial_back_ = std::make_unique<DialBackResponder>(
      *timers_, dialer_, config_.swarms,
      DialBackResponder::Mediator{
          [this] {
            auto own = interface_addresses();
            if (book_)
              for (const auto& e : book_->all())
                if (e.kind != EndpointKind::Relay) own.push_back(e.host);
            return own;
          },
          [this](const NodeId& node, std::size_t swarm, std::function<void(std::vector<Endpoint>)> done) {
            directory_->forget_contact(node);  // its newest record: candidates come and go
            directory_->contacts({SwarmNode{swarm, node}}, [node, done](std::vector<Member> members) {
              for (auto& m : members)
                if (m.contact.node == node) return done(std::move(m.contact.endpoints));
              done({});
            });
          }});
  if (auto r = start_peer_server(dht_port); !r) return r;

  SelfAddress self{node_id_, config_.listen, peer_port_};
  book_ = std::make_unique<EndpointBook>(
      *timers_, EndpointBook::Settings{node_id_, effective_refresh(config_), hooks_.relay_only},
      EndpointBook::Mediator{
          [this] {
            if (config_.advertise.empty()) return local_endpoints(config_.listen, peer_port_, interface_addresses());
            // Where the owner says others dial: LAN and loopback ones as they are, public
            // ones as candidates until a dial-back reaches them.
            std::vector<Endpoint> out;
            for (const auto& a : config_.advertise)
              if (!a.host.empty())
                for (auto& e : local_endpoints(a.host, a.port, {})) out.push_back(std::move(e));
            return out;
          },
          [this](const ContactRecord& c, bool relay) { directory_->put_contact(c, relay); },
          [this] { return dht_->connected(); }});
  announcer_ = std::make_unique<Announcer>(
      *timers_, *directory_, objects_,
      Announcer::Settings{config_.state_dir, config_.announce_rate, config_.announce_window, effective_refresh(config_),
                          config_.poll_interval},
      Announcer::Mediator{[this](std::function<void()> work) { asio::post(scanner_, std::move(work)); },
                          [this] { return dht_->connected(); }});
  objects_.on_added([this](std::size_t i) { announcer_->repo_added(i); });
  objects_.on_changed([this](std::size_t i, const AnnexKey& key, bool present) { announcer_->key_changed(i, key, present); });
  object_service_ = std::make_unique<ObjectService>(io_, *timers_, disk_.get_executor(), *directory_, objects_, *pool_,
                                                    ObjectService::Settings{self, config_.download_rate, config_.stall_timeout,
                                                                            config_.state_dir / "spot-checks"});
  share_service_ = std::make_unique<ShareService>(
      io_, *timers_, disk_.get_executor(), *directory_, objects_, *pool_, *object_service_,
      ShareService::Settings{self, [this] { return book_->store_offer(); }});
  replicas_ = std::make_unique<ReplicaService>(
      io_, *timers_, disk_.get_executor(), *directory_, objects_, *pool_,
      ReplicaService::Settings{self,
                               [this] { return rules_ ? rules_->show().rules : std::nullopt; },
                               [this] { return book_->store_offer(); },
                               [this] { return hours(); },
                               [this] { return object_service_->download_limit(); },
                               DownloadLimits{.stall = config_.stall_timeout},
                               std::chrono::milliseconds(2 * config_.rules_check)});
  std::vector<std::string> rule_swarms;
  for (const auto& t : config_.swarms)
    if (!t.is_public()) rule_swarms.push_back(t.public_id());
  rules_ = std::make_unique<RulesService>(
      io_, disk_, *timers_, *directory_,
      RulesService::Settings{config_.state_dir, config_.rules_admins, rule_swarms, config_.rules_check});
  connect_ = std::make_unique<ConnectService>(io_, *directory_, pool_->dialer(),
                                              ConnectService::Settings{self, config_.aliases, std::chrono::minutes(10)});
  build_reachability(dht_port);

  RelayManager::Settings relay;
  relay.mode = config_.relay == DaemonConfig::RelayMode::On    ? RelayMode::On
               : config_.relay == DaemonConfig::RelayMode::Off ? RelayMode::Off
                                                               : RelayMode::Auto;
  relay.limits.max_reservations = config_.relay_max_reservations;
  relay.limits.max_circuits_per_reservation = config_.relay_max_circuits;
  relay.limits.max_circuit_bytes = config_.relay_circuit_bytes;
  relay.limits.max_circuit_duration = config_.relay_circuit_time;
  relay.limits.rate = config_.relay_rate;
  relay.reservations = config_.relay_reservations;
  relay.lookup_timeout = std::min<std::chrono::milliseconds>(config_.lookup_timeout, kRelayLookup);
  relay.relay_only = hooks_.relay_only;
  relay.capture = hooks_.relay_capture;
  relays_ = std::make_unique<RelayManager>(
      io_, *timers_, *book_, *pool_, config_.swarms, node_id_, relay,
      RelayManager::Mediator{
          [this](std::chrono::milliseconds t, std::function<void(std::vector<Member>)> done) { directory_->relays(t, std::move(done)); },
          [this](PeerServer::RelayHooks hooks) { peer_server_->on_relay(std::move(hooks)); },
          [this](asio::ip::tcp::socket socket, const std::string& from) {
            if (!stopping_) peer_server_->adopt(std::move(socket), from);
          },
          [this] { return nat_applies(); }});

  api_ = std::make_unique<ControlApi>(ControlHandlers{
      [this] { return status(); },
      [this](const WhereisRequest& r, Done<WhereisReply> d) {
        // Whole copies announced, then the erasure-coded stores keeping shares of it.
        object_service_->whereis(r, [this, key = r.key, d](Outcome<WhereisReply> out) {
          auto* reply = std::get_if<WhereisReply>(&out);
          if (!reply || stopping_) return d(std::move(out));
          share_service_->share_counts(key, [reply = *reply, d](std::vector<WhereisReply::Shares> shares) mutable {
            reply.shares = std::move(shares);
            d(std::move(reply));
          });
        });
      },
      [this](const GetRequest& r, ProgressFn p, Done<GetReply> d, OnGone g) {
        if (r.shares) return share_service_->get(r, std::move(p), std::move(d));
        object_service_->get(r, std::move(p), std::move(d), std::move(g));
      },
      [this](const DiscoverRequest& r, Done<DiscoverReply> d) { object_service_->discover(r, std::move(d)); },
      [this](Done<PeersReply> d) { object_service_->peers(std::move(d)); },
      [this](const StoreRequest& r, ProgressFn p, Done<StoreReply> d) {
        if (r.shares) return share_service_->store(r, std::move(p), std::move(d));
        // A replicated store starts filling itself from the copy just stored.
        object_service_->store(r, std::move(p), [this, d](Outcome<StoreReply> out) {
          if (!stopping_ && std::holds_alternative<StoreReply>(out)) replicas_->sweep_soon();
          d(std::move(out));
        });
      },
      [this](const PresentRequest& r, Done<PresentReply> d) {
        if (r.shares) return share_service_->present(r, std::move(d));
        object_service_->present(r, std::move(d));
      },
      [this](const RemoveRequest& r, Done<RemoveReply> d) {
        if (r.shares) return share_service_->remove(r, std::move(d));
        object_service_->remove(r, std::move(d));
      },
      [this](Done<TrashReply> d) { d(trash()); },
      [this](const RestoreRequest& r, Done<RestoreReply> d) {
        auto restored = objects_.restore(r.key, r.store);
        if (!restored) return d(ControlError{ControlErrorCode::NotFound, restored.error()});
        d(RestoreReply{r.key.str(), r.store});
      },
      [this](const RepairRequest& r, ProgressFn p, Done<RepairReply> d) {
        share_service_->repair(r, std::move(p), std::move(d));
      },
      [this](const RepairAllRequest& r, ProgressFn p, Done<RepairAllReply> d) {
        share_service_->repair_all(r, std::move(p), std::move(d));
      },
      [this](const RulesPushRequest& r, Done<RulesReply> d) { rules_->push(r, std::move(d)); },
      [this] { return rules_->show(); },
      [this](const ConnectRequest& r, ConnectAnswer a) { connect_->connect(r, std::move(a)); }});
  control_ = std::make_unique<ControlServer>(
      io_, [this](const nlohmann::json& request, ControlResponder responder) { api_->handle(request, responder); });
  if (auto r = control_->listen(config_.state_dir / "control.sock"); !r) return Error{r.error()};

  dht_->join(config_.bootstrap, [this](bool connected) {
    if (!connected || stopping_) return;
    announcer_->dht_connected();
    reach_->check("the DHT connected");
  });
  purge_trash();
  watch_limits_file();  // applies the dotfile's limits, then measures the store offer
  if (config_.swarms.empty()) log::warn("no --swarm given: this node announces nothing");
  for (const auto& s : config_.swarms) log::info("member of swarm {}{}", s.id(), s.is_public() ? " (public)" : "");
  for (const auto& r : objects_.all()) log::info("serving {} (annex uuid {})", r.path.string(), r.uuid);
  log::info("control socket {}", (config_.state_dir / "control.sock").string());
  log::info("announce refresh every {}s", effective_refresh(config_).count());

  relays_->start();
  // The contact record goes out once the store offer is known (measure_store_offer), so
  // the first record a member reads is complete, not replaced a moment later.
  reach_->start();
  announcer_->start();
  share_service_->start_sweeps(config_.repair_interval);
  replicas_->start_sweeps(config_.replicate_interval);
  rules_->start();
  return true;
}

Result<bool> Daemon::start_peer_server(std::uint16_t dht_port) {
  peer_server_ = std::make_unique<PeerServer>(
      io_, tls_, config_.swarms,
      [this](const AnnexKey& key, std::string_view scope) -> std::optional<std::filesystem::path> {
        // A copy this node is about to trim proves nothing to others: two nodes that each
        // take the other for a keeper cannot both trim on each other's word.
        if (replicas_ && replicas_->leaving(key)) return std::nullopt;
        return objects_.locate(key, scope);
      },
      PeerServerLimits{config_.max_peers, config_.upload_rate, config_.upload_rate_per_peer});
  // Only a member holding the store's write capability may remove from it, never in the
  // public swarm; every removal asked is logged with who asked, and goes to the trash.
  peer_server_->on_remove([this](const PeerServer::StoreRemoval& r) -> std::variant<bool, PeerServer::Refusal> {
    const auto& token = config_.swarms[r.swarm];
    auto refuse = [&](const std::string& why) {
      log::warn("refused to remove {} from swarm store {} for node {}: {}", r.key, r.store, r.asker.hex(), why);
      return PeerServer::Refusal{peer::ErrorCode::NotAllowed, why};
    };
    if (token.is_public()) return refuse("nothing is removed on request in the public swarm");
    if (r.capability != token.store_capability(r.store)) return refuse("no write capability for that store");
    auto removed = objects_.remove_from_store(AnnexKey::parse(r.key).value(), r.store);
    if (!removed) return PeerServer::Refusal{peer::ErrorCode::NotPresent, removed.error()};
    if (*removed) log::info("removed {} from swarm store {} at the request of node {}", r.key, r.store, r.asker.hex());
    return *removed;
  });
  peer_server_->on_take([this](const PeerServer::ShareTake& take, ShareService::TakeAnswer answer) {
    if (stopping_ || !share_service_ || !replicas_)
      return answer(PeerServer::Refusal{peer::ErrorCode::Busy, "the node is starting or stopping"});
    // A share of an erasure-coded store, or a whole copy for a replicated one.
    auto key = AnnexKey::parse(take.take.key);
    if (key && !key->is_share()) return replicas_->take(take, std::move(answer));
    share_service_->take(take, std::move(answer));
  });
  // A member's tunnel to a service this node's owner exposes (expose.NAME = IP:PORT).
  peer_server_->on_open([this](const PeerServer::OpenRequest& r, std::function<void(Result<Tunnel::LocalSocket>)> done) {
    if (config_.swarms[r.swarm].is_public()) return done(Error{"no tunnels in the public swarm"});
    auto exposed = config_.expose.find(r.service);
    if (exposed == config_.expose.end()) {
      log::warn("refused a tunnel to '{}' for node {}: not exposed (expose.{} = IP:PORT in the config)", r.service,
                r.asker.hex(), r.service);
      return done(Error{"nothing named '" + r.service + "' is exposed here"});
    }
    auto [host, port] = split_host_port(exposed->second);
    asio::ip::tcp::endpoint target(asio::ip::make_address(host), static_cast<std::uint16_t>(std::stoul(port)));
    auto socket = std::make_shared<asio::ip::tcp::socket>(io_);
    auto deadline = std::make_shared<asio::steady_timer>(io_, std::chrono::seconds(10));
    deadline->async_wait([socket](const std::error_code& ec) {
      std::error_code ignored;
      if (!ec) socket->close(ignored);
    });
    socket->async_connect(target, [socket, deadline, done, r, where = exposed->second](const std::error_code& ec) {
      deadline->cancel();
      if (ec) {
        log::warn("a tunnel to '{}' for node {}: cannot reach {}: {}", r.service, r.asker.hex(), where, ec.message());
        return done(Error{"the service '" + r.service + "' cannot be reached here: " + ec.message()});
      }
      log::info("tunnel to '{}' ({}) for node {}", r.service, where, r.asker.hex());
      done(Tunnel::LocalSocket(std::move(*socket)));
    });
  });
  // A replica being fetched here serves its chunks to the next keeper of its chain.
  peer_server_->on_partial([this](const AnnexKey& key) -> std::optional<PeerServer::PartialObject> {
    if (stopping_ || !replicas_) return std::nullopt;
    return replicas_->partial(key);
  });
  peer_server_->on_dial_back([this](const NodeId& node, std::size_t swarm, const std::string& observed,
                                    const std::string& host, std::uint16_t port, std::function<void(Result<bool>)> done) {
    dial_back_->dial_back(node, swarm, DialBackAsk{observed, host, port}, std::move(done));
  });
  peer_server_->on_member([this](const std::string& remote_ip, const asio::ip::tcp::endpoint& local) {
    reach_->reached_from_outside(remote_ip, local);
  });
  peer_server_->on_refused([limited = std::make_shared<log::RateLimited>()](const std::string& why) {
    std::uint64_t suppressed = 0;
    if (limited->allow(std::chrono::steady_clock::now(), suppressed))
      log::warn("refused a peer link from {} ({} similar lines suppressed)", why, suppressed);
  });
  if (hooks_.corrupt_data) {
    log::warn("test fault switch on: every chunk this node serves is corrupted");
    peer_server_->corrupt_data_for_test(true);
  }
  if (hooks_.claim_everything) {
    log::warn("test fault switch on: this node claims to hold every key it is asked about");
    peer_server_->claim_everything_for_test(true);
  }
  std::error_code ec;
  auto address = config_.listen.empty() ? asio::ip::address(asio::ip::address_v6::any())
                                        : asio::ip::make_address(config_.listen, ec);
  auto port = peer_server_->listen(address, config_.peer_port.value_or(dht_port));
  if (!port)
    return Error{port.error() + (config_.peer_port ? "; pick another --peer-port"
                                                   : "; the peer port follows the DHT port: pick another --port, or set --peer-port")};
  peer_port_ = *port;
  log::info("peers served on TCP port {}", *port);
  return true;
}

void Daemon::build_reachability(std::uint16_t dht_port) {
  Reachability::Settings settings{config_.listen, peer_port_, config_.nat, config_.reachability_check, true, ""};
  std::unique_ptr<nat::PortMapper> mapper;
  if (hooks_.relay_only) {
    settings.enabled = false;
    settings.disabled_why = "not checked yet";
  } else if (!nat_applies()) {
    settings.enabled = false;
    settings.disabled_why = "not checked: listening on " + config_.listen + " only";
  } else if (config_.nat != nat::NatMethod::None) {
    nat::PortMapper::Settings ms;
    ms.method = config_.nat;
    ms.lease = config_.nat_lease;
    ms.ports.push_back({nat::MappedProtocol::Tcp, peer_port_});
    ms.ports.push_back({nat::MappedProtocol::Udp, dht_port});
    mapper = std::make_unique<nat::PortMapper>(io_, ms);
  }
  settings.in_swarm = !config_.swarms.empty();
  for (const auto& a : config_.advertise) {
    if (!a.host.empty()) settings.advertised.push_back({EndpointKind::Public, a.host, a.port});
    else if (!settings.observed_port) settings.observed_port = a.port;
  }
  if (!config_.advertise.empty() && !settings.observed_port) settings.observed_port = config_.advertise.front().port;
  std::vector<std::string> bootstrap;
  for (const auto& e : config_.bootstrap)
    if (e != kPublicBootstrap) bootstrap.push_back(e);  // the public OpenDHT bootstrap is no swarm member
  SelfAddress self{node_id_, config_.listen, peer_port_};
  reach_ = std::make_unique<Reachability>(
      *timers_, *book_, std::move(mapper), settings,
      Reachability::Mediator{
          [this, bootstrap, self](bool from_dht, std::function<void(std::vector<FetchSource>)> done) {
            if (!from_dht) return bootstrap_helpers(io_, bootstrap, kMaxHelpers, std::move(done));
            directory_->members(std::min<std::chrono::milliseconds>(config_.lookup_timeout, kHelperLookup),
                                [self, done = std::move(done)](std::vector<Member> members) {
                                  done(rank_helpers(members, self, kMaxHelpers));
                                });
          },
          [this](const FetchSource& helper, const peer::DialBack& request, std::function<void(Result<peer::Frame>)> answer) {
            constexpr auto kDialBackAnswer = 25s;  // the helper's own dial may take 5 s + 10 s
            pool_->ask(helper.address, config_.swarms[helper.swarm], request, kDialBackAnswer, std::move(answer));
          },
          [] { return interface_addresses(); },
          [this] { relays_->update(); }});
}

TrashReply Daemon::trash() const {
  TrashReply out;
  auto now = std::filesystem::file_time_type::clock::now();
  auto wall = std::chrono::system_clock::now();
  for (const auto& t : list_trash(objects_.trash_dir())) {
    auto age = std::chrono::duration_cast<std::chrono::seconds>(now - t.removed);
    auto removed = std::chrono::duration_cast<std::chrono::seconds>((wall - age).time_since_epoch()).count();
    out.entries.push_back({t.store, t.key, t.bytes, removed, std::max<std::int64_t>(0, (config_.trash_grace - age).count())});
  }
  return out;
}

void Daemon::purge_trash() {
  // Objects removed from swarm stores stay in the trash for trash-grace.
  auto cutoff = std::filesystem::file_time_type::clock::now() - config_.trash_grace;
  if (auto n = annexswarm::purge_trash(objects_.trash_dir(), cutoff))
    log::info("purged {} object(s) kept in the trash longer than {} s", n, config_.trash_grace.count());
  trash_timer_->schedule(std::chrono::hours(1), [this] { purge_trash(); });
}

void Daemon::measure_store_offer() {
  // What the stores hold is walked only when a cap is set (auto needs only the free space).
  asio::post(disk_, [this, configured = lower_limit(config_.store_space, storage_limit()), dir = config_.stores()] {
    std::error_code ec;
    std::error_code made;
    std::filesystem::create_directories(dir, made);  // its file system's free space is what counts
    std::uint64_t used = configured ? bytes_below(dir) : 0;
    auto space = std::filesystem::space(dir, ec);
    auto offer = ec ? 0 : offered_store_space(configured, used, space.available, space.capacity);
    asio::post(io_, [this, offer, used] {
      if (stopping_) return;
      stores_used_ = used;
      if (!book_started_) {
        book_started_ = true;
        book_->set_store_offer_quietly(offer);
        book_->start();
      } else {
        book_->set_store_offer(offer);
      }
      offer_timer_->schedule(std::chrono::minutes(1), [this] { measure_store_offer(); });
    });
  });
}

double Daemon::upload_limit() const { return lower_rate(config_.upload_rate, file_limits_.upload_rate); }
double Daemon::download_limit() const { return lower_rate(config_.download_rate, file_limits_.download_rate); }
std::optional<HoursWindow> Daemon::hours() const { return file_limits_.hours ? file_limits_.hours : config_.hours; }
std::optional<std::uint64_t> Daemon::storage_limit() const { return lower_limit(config_.storage, file_limits_.storage); }

void Daemon::apply_limits() {
  if (peer_server_) peer_server_->set_upload_limits(upload_limit(), config_.upload_rate_per_peer);
  object_service_->set_download_rate(download_limit());
  // A STORE is held to the storage limits (store-space sizes what the node offers others).
  std::optional<std::uint64_t> storage;
  std::string from;
  auto consider = [&](std::optional<std::uint64_t> limit, std::string where) {
    if (limit && (!storage || *limit < *storage)) storage = limit, from = std::move(where);
  };
  consider(config_.storage, "storage in the config");
  consider(file_limits_.storage, "storage in " + limits_file(config_.stores()).string());
  object_service_->set_storage_limit(storage, from);
  offer_timer_->cancel();
  measure_store_offer();
}

void Daemon::read_limits_file(bool force) {
  auto path = limits_file(config_.stores());
  struct stat st {};
  std::string seen;
  if (::stat(path.c_str(), &st) == 0)
    seen = std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + "/" + std::to_string(st.st_size);
  if (seen == limits_seen_ && limits_read_ && !force) return;
  limits_seen_ = seen;
  NodeLimits fresh;
  if (!seen.empty()) {
    auto text = read_file(path);
    auto parsed = text ? parse_node_limits(*text, path.string()) : Result<NodeLimits>(Error{text.error()});
    if (!parsed) {
      limits_problem_ = parsed.error();
      log::warn("{}: not applied ({}):\n{}", path.string(),
                limits_read_ ? "the limits before it stay" : "no limits from it", parsed.error());
      if (limits_read_) return;
    } else {
      limits_problem_.clear();
      fresh = *parsed;
    }
  } else {
    limits_problem_.clear();
  }
  if (limits_read_ && fresh == file_limits_) return;
  if (limits_read_) log::info("{}: limits changed; applied", path.string());
  limits_read_ = true;
  file_limits_ = fresh;
  apply_limits();
}

void Daemon::watch_limits_file() {
  if (stopping_) return;
  read_limits_file(false);
  limits_timer_->schedule(config_.poll_interval, [this] { watch_limits_file(); });
}

void Daemon::stop() {
  if (stopping_) return;
  stopping_ = true;
  trash_timer_->cancel();
  offer_timer_->cancel();
  limits_timer_->cancel();
  announcer_->stop();  // saves the announce state
  share_service_->stop();
  replicas_->stop();
  connect_->stop();
  rules_->stop();
  book_->stop();
  relays_->stop();     // releases reservations
  signals_.cancel();
  control_->close();
  peer_server_->close();
  object_service_->stop();  // partial downloads stay for resume
  pool_->close_all();
  auto finished = std::make_shared<bool>(false);
  auto finish = [this, finished] {
    if (*finished) return;
    *finished = true;
    finish_stop();
  };
  reach_->stop(finish);  // port mappings come off the router
  stop_timer_.expires_after(kStopGrace);
  stop_timer_.async_wait([finish](const std::error_code& ec) {
    if (!ec) finish();
  });
}

void Daemon::finish_stop() {
  stop_timer_.cancel();
  scanner_.join();
  if (dht_) dht_->stop();
  io_.stop();
}

void Daemon::reload() {
  read_limits_file(true);  // the stores' dotfile (node/node_limits.hpp), with or without a config file
  if (!config_.config_file) {
    log::info("SIGHUP: no config file to read again (started without one)");
    return;
  }
  auto text = read_file(*config_.config_file);
  if (!text) return log::warn("SIGHUP: {}; keeping the running settings", text.error());
  DaemonConfig fresh;
  std::vector<std::string> errors;
  apply_config_text(fresh, *text, config_.config_file->string(), errors);
  apply_cli_settings(fresh, config_.cli_settings, errors);
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
    peer_server_->set_upload_limits(upload_limit(), config_.upload_rate_per_peer);
    applied.push_back("upload-rate");
  }
  if (fresh.download_rate != config_.download_rate) {
    config_.download_rate = fresh.download_rate;
    object_service_->set_download_rate(download_limit());
    applied.push_back("download-rate");
  }
  if (fresh.storage != config_.storage || fresh.hours != config_.hours) {
    config_.storage = fresh.storage;
    config_.hours = fresh.hours;
    apply_limits();
    applied.push_back("storage/hours");
  }
  if (fresh.store_space != config_.store_space) {
    config_.store_space = fresh.store_space;
    offer_timer_->cancel();
    measure_store_offer();
    applied.push_back("store-space");
  }
  if (fresh.repair_interval != config_.repair_interval) {
    config_.repair_interval = fresh.repair_interval;
    share_service_->start_sweeps(config_.repair_interval);
    applied.push_back("repair-interval");
  }
  if (fresh.expose != config_.expose) {
    config_.expose = fresh.expose;  // tunnels open stay; new OPENs see the new list
    applied.push_back("expose");
  }
  if (fresh.aliases != config_.aliases) {
    config_.aliases = fresh.aliases;
    connect_->set_aliases(config_.aliases);
    applied.push_back("alias");
  }
  if (fresh.replicate_interval != config_.replicate_interval) {
    config_.replicate_interval = fresh.replicate_interval;
    replicas_->start_sweeps(config_.replicate_interval);
    applied.push_back("replicate-interval");
  }
  if (fresh.reachability_check != config_.reachability_check) {
    config_.reachability_check = fresh.reachability_check;
    reach_->set_check_every(config_.reachability_check);
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
  if (fresh.advertise != config_.advertise) need_restart.push_back("advertise");
  if (fresh.listen != config_.listen) need_restart.push_back("listen");
  if (fresh.bootstrap != config_.bootstrap) need_restart.push_back("bootstrap");
  if (fresh.nat != config_.nat || fresh.nat_lease != config_.nat_lease) need_restart.push_back("nat");
  if (fresh.relay != config_.relay || fresh.relay_circuit_bytes != config_.relay_circuit_bytes ||
      fresh.relay_rate != config_.relay_rate || fresh.relay_max_reservations != config_.relay_max_reservations)
    need_restart.push_back("relay");
  log::info("SIGHUP: config read again from {}; applied: {}", config_.config_file->string(),
            applied.empty() ? std::string("nothing changed") : join(applied));
  if (!need_restart.empty()) log::warn("SIGHUP: changed, but only a restart applies them: {}", join(need_restart));
}

StatusReply Daemon::status() const {
  const auto& health = dht_->health();
  StatusReply s;
  s.node = node_id_;
  s.state_dir = config_.state_dir.string();
  s.port = health.bound_port;
  for (const auto& t : config_.swarms) s.swarms.push_back({t.id(), t.public_id(), t.is_public()});
  s.dht = {health.status,        health.good_nodes,    health.dubious_nodes, health.searches,
           health.public_addresses, health.stored_values, health.stored_bytes,
           dht_->disconnected_for(), config_.bootstrap.empty()};
  s.announce = announcer_->status();
  s.refused = directory_->refused();
  if (peer_server_) s.peers_served = peer_server_->stats();
  s.downloads = object_service_->downloads();
  s.links = pool_->stats();
  s.endpoints = book_->all();
  s.nat_method = config_.nat;
  s.nat_applies = nat_applies();
  s.confirmed = book_->confirmed();
  s.reachability = reach_->status();
  s.first_confirmed_after = book_->first_confirmed_after();
  s.relay = relays_->status();
  s.repairs = share_service_->sweep_status();
  s.replication = replicas_->status();
  s.rules = rules_->show();
  s.limits.file = limits_file(config_.stores()).string();
  s.limits.problem = limits_problem_;
  s.limits.storage = storage_limit();
  s.limits.stores_used = stores_used_;
  s.limits.upload_rate = upload_limit();
  s.limits.download_rate = download_limit();
  s.limits.hours = hours();
  s.limits.in_hours = in_hours_now(s.limits.hours);
  return s;
}

}  // namespace annexswarm
