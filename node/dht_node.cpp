#include "node/dht_node.hpp"

#include <netdb.h>
#include <sys/socket.h>

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <mutex>

#include "node/log.hpp"
#include "protocol/ip_address.hpp"

namespace annexswarm {
namespace {

// How long a lookup that may end soon after values (DhtClient::End::SoonAfterValues) waits
// at least for more: OpenDHT hands the values this node stores itself at once, the other
// nodes' answers come a round trip later.
constexpr std::chrono::milliseconds kLookupSettle{500};

dht::InfoHash to_infohash(const DhtLocation& loc) {
  dht::InfoHash h;
  std::copy(loc.bytes.begin(), loc.bytes.end(), h.begin());
  return h;
}

std::vector<dht::SockAddr> resolve(const std::string& entry) {
  auto [host, port] = split_host_port(entry);
  addrinfo hints{};
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  std::vector<dht::SockAddr> out;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0) return out;
  for (auto* ai = res; ai; ai = ai->ai_next) out.emplace_back(ai->ai_addr, ai->ai_addrlen);
  freeaddrinfo(res);
  return out;
}

// Storage nodes accept an annex-swarm value only when it is small; OpenDHT's secure
// layer adds the signature and sequence checks around this policy.
bool store_policy(dht::InfoHash, const std::shared_ptr<dht::Value>& v, const dht::InfoHash&,
                  const dht::SockAddr&) {
  return v && v->data.size() <= kMaxDhtValue;
}

}  // namespace

DhtNode::DhtNode(asio::io_context& io) : io_(io) {}

DhtNode::~DhtNode() { stop(); }

Result<bool> DhtNode::start(const Options& options) {
  identity_ = options.identity;
  dht::DhtRunner::Config config;
  config.dht_config.id = options.identity;
  config.dht_config.node_config.maintain_storage = false;
  config.threaded = true;
  config.peer_discovery = options.lan_discovery;
  config.peer_publish = options.lan_discovery;
  try {
    if (options.listen.empty()) {
      config.bind4.setFamily(AF_INET);
      config.bind4.setPort(options.port);
      config.bind6.setFamily(AF_INET6);
      config.bind6.setPort(options.port);
    } else {
      auto addrs = dht::SockAddr::resolve(options.listen, std::to_string(options.port));
      if (addrs.empty()) return Error{"cannot use listen address " + options.listen};
      (addrs.front().getFamily() == AF_INET6 ? config.bind6 : config.bind4) = addrs.front();
    }
    runner_.run(config, dht::DhtRunner::Context{});
  } catch (const std::exception& e) {
    return Error{"cannot open UDP port " + std::to_string(options.port) + " (" + e.what() +
                 "); is another node running? pick another with --port"};
  }
  runner_.registerType(dht::ValueType(kRecordValueType, "annex-swarm record", kRecordLifetime,
                                      store_policy));
  running_ = true;
  health_.bound_port = runner_.getBoundPort(AF_INET);
  if (health_.bound_port == 0) health_.bound_port = runner_.getBoundPort(AF_INET6);
  health_.status = "disconnected";
  last_connected_ = std::chrono::steady_clock::now();
  health_timer_ = std::make_unique<asio::steady_timer>(io_);
  refresh_health();
  return true;
}

void DhtNode::stop() {
  if (!running_) return;
  running_ = false;
  if (health_timer_) health_timer_->cancel();
  worker_.join();
  runner_.join();  // after this no OpenDHT callback runs
}

void DhtNode::join(std::vector<std::string> nodes, std::function<void(bool)> on_connection) {
  bootstrap_ = std::move(nodes);
  on_connection_ = std::move(on_connection);
  if (bootstrap_.empty()) log::info("no bootstrap node: this is the first node of a DHT");
  else bootstrap();
}

void DhtNode::bootstrap() {
  next_bootstrap_ = std::chrono::steady_clock::now() + bootstrap_backoff_;
  asio::post(worker_, [this, hosts = bootstrap_] {
    std::vector<dht::SockAddr> addrs;
    for (const auto& h : hosts) {
      auto r = resolve(h);
      if (r.empty()) log::warn("bootstrap node {} does not resolve (offline?); will retry", h);
      addrs.insert(addrs.end(), r.begin(), r.end());
    }
    if (!addrs.empty()) runner_.bootstrap(addrs, {});
  });
}

void DhtNode::watch_connection() {
  constexpr auto kFirstRetry = std::chrono::seconds(15);
  constexpr auto kMaxRetry = std::chrono::seconds(300);
  bool now_connected = connected();
  if (now_connected && !was_connected_) {
    if (!bootstrap_.empty()) log::info("DHT connected");
    bootstrap_backoff_ = kFirstRetry;
  }
  if (!now_connected && was_connected_ && !bootstrap_.empty()) log::warn("DHT lost all peers; bootstrapping again");
  bool changed = now_connected != was_connected_;
  was_connected_ = now_connected;
  // Offline (no internet, bootstrap node down): keep running and keep trying, less often.
  if (!now_connected && !bootstrap_.empty() && std::chrono::steady_clock::now() >= next_bootstrap_) {
    bootstrap();
    bootstrap_backoff_ = std::min<std::chrono::seconds>(bootstrap_backoff_ * 2, kMaxRetry);
  }
  if (changed && on_connection_) on_connection_(now_connected);
}

void DhtNode::put(const DhtLocation& location, std::uint64_t value_id, std::uint16_t seq,
                  Bytes data, std::function<void(bool)> done) {
  asio::post(worker_, [this, location, value_id, seq, data = std::move(data), done = std::move(done)]() mutable {
    auto value = std::make_shared<dht::Value>(kRecordValueType, std::move(data), value_id);
    value->seq = seq;
    value->sign(*identity_.first);
    // sign() gives each value its own copy of our public key; share one instead.
    value->owner = identity_.first->getSharedPublicKey();
    auto hash = to_infohash(location);
    runner_.put(hash, value,
                [this, hash, value_id, done = std::move(done)](bool ok) {
                  // Refreshing is the announce table's job: OpenDHT need not keep the
                  // value (and its search) alive until it expires.
                  runner_.cancelPut(hash, value_id);
                  asio::post(io_, [done, ok] { done(ok); });
                });
  });
}

void DhtNode::get(const DhtLocation& location, std::chrono::milliseconds timeout,
                  std::function<void(std::vector<DhtValue>)> done, End end) {
  struct Lookup {
    std::mutex mutex;
    std::vector<DhtValue> values;
    bool finished = false;
    bool answered = false;  // values came in; the lookup now ends soon (see below)
    std::function<void(std::vector<DhtValue>)> done;
    std::unique_ptr<asio::steady_timer> timer;
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  };
  auto lookup = std::make_shared<Lookup>();
  lookup->done = std::move(done);
  lookup->timer = std::make_unique<asio::steady_timer>(io_, timeout);
  // Runs on the io thread, exactly once.
  auto finish = [lookup] {
    std::vector<DhtValue> values;
    {
      std::lock_guard lock(lookup->mutex);
      if (lookup->finished) return;
      lookup->finished = true;
      values = std::move(lookup->values);
    }
    lookup->timer->cancel();
    auto cb = std::move(lookup->done);
    cb(std::move(values));
  };
  lookup->timer->async_wait([finish](const std::error_code& ec) {
    if (!ec) finish();
  });
  // OpenDHT ends a search when the nodes closest to the location have answered or timed
  // out. A node that left (a laptop closed) stays among them until it has failed a few
  // requests, so for a while every lookup would wait about a second for it. Where the
  // caller allows (End::SoonAfterValues), once values came in the lookup waits only as long
  // again as they took (at least kLookupSettle) for more.
  auto settle = [lookup, finish] {
    {
      std::lock_guard lock(lookup->mutex);
      if (lookup->finished) return;
    }
    auto waited = std::chrono::steady_clock::now() - lookup->started;
    auto more = std::max<std::chrono::steady_clock::duration>(kLookupSettle, 2 * waited);
    if (lookup->timer->expiry() - std::chrono::steady_clock::now() <= more) return;
    lookup->timer->expires_after(more);
    lookup->timer->async_wait([finish](const std::error_code& ec) {
      if (!ec) finish();
    });
  };
  runner_.get(
      to_infohash(location),
      [this, lookup, settle, end](const std::vector<std::shared_ptr<dht::Value>>& values) {
        std::lock_guard lock(lookup->mutex);
        if (lookup->finished) return false;
        if (end == End::SoonAfterValues && !values.empty() && !lookup->answered) {
          lookup->answered = true;
          asio::post(io_, settle);
        }
        for (const auto& v : values) {
          if (!v || v->type != kRecordValueType) continue;
          DhtValue out;
          out.is_signed = v->isSigned();
          if (out.is_signed) {
            const auto& h = v->owner->getId();
            std::copy_n(h.data(), out.owner.bytes.size(), out.owner.bytes.begin());
          }
          out.id = v->id;
          out.seq = v->seq;
          out.data.assign(v->data.begin(), v->data.end());
          lookup->values.push_back(std::move(out));
        }
        return lookup->values.size() < 4096;  // a hostile flood stops the lookup
      },
      [this, finish](bool) { asio::post(io_, finish); });
}

double DhtNode::disconnected_for() const {
  // The DHT answers every second (refresh_health); a connection it last reported more
  // than a few seconds ago is not vouched for any more.
  auto since = std::chrono::steady_clock::now() - last_connected_;
  if (since < std::chrono::seconds(5)) return 0;
  return std::chrono::duration<double>(since).count();
}

void DhtNode::refresh_health() {
  if (!running_) return;
  runner_.getNodeInfo([this](std::shared_ptr<dht::NodeInfo> info) {
    asio::post(io_, [this, info] {
      if (!running_ || !info) return;
      health_.good_nodes = info->ipv4.good_nodes + info->ipv6.good_nodes;
      health_.dubious_nodes = info->ipv4.dubious_nodes + info->ipv6.dubious_nodes;
      health_.searches = info->ipv4.searches + info->ipv6.searches;
      health_.status = health_.good_nodes > 0     ? "connected"
                       : health_.dubious_nodes > 0 ? "connecting"
                                                   : "disconnected";
      health_.stored_values = info->storage_values;
      health_.stored_bytes = info->storage_size;
      if (health_.good_nodes > 0) last_connected_ = std::chrono::steady_clock::now();
      watch_connection();
    });
  });
  runner_.getPublicAddress([this](std::vector<dht::SockAddr>&& addrs) {
    std::vector<std::string> text;
    for (const auto& a : addrs) text.push_back(a.toString());
    asio::post(io_, [this, text = std::move(text)] {
      if (running_) health_.public_addresses = text;
    });
  });
  health_timer_->expires_after(std::chrono::seconds(1));
  health_timer_->async_wait([this](const std::error_code& ec) {
    if (!ec) refresh_health();
  });
}

}  // namespace annexswarm
