#pragma once
// The node's seat on the Kademlia DHT: an OpenDHT DhtRunner (its own thread) behind the
// DhtClient interface. Every callback is posted onto the owner's io_context, so the rest
// of the node never sees OpenDHT's thread. Signing runs on a worker thread. It also keeps
// the node joined: bootstrap nodes are asked again, with backoff, whenever it has no peers.
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/thread_pool.hpp>
#include <opendht/dhtrunner.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "node/dht_client.hpp"
#include "protocol/bytes.hpp"
#include "protocol/records.hpp"
#include "protocol/result.hpp"
#include "protocol/swarm_token.hpp"

namespace annexswarm {

// The largest record we put (a full provider bucket, sealed); OpenDHT allows 64 KiB.
inline constexpr std::size_t kMaxDhtValue = kMaxSealedRecord;

struct DhtHealth {
  std::string status;  // disconnected, connecting, connected
  unsigned good_nodes = 0;
  unsigned dubious_nodes = 0;
  unsigned searches = 0;
  std::uint16_t bound_port = 0;
  std::vector<std::string> public_addresses;
  std::size_t stored_values = 0;
  std::size_t stored_bytes = 0;
};

class DhtNode final : public DhtClient {
public:
  struct Options {
    std::uint16_t port = 0;
    std::string listen;
    dht::crypto::Identity identity;
    bool lan_discovery = false;
  };

  explicit DhtNode(asio::io_context& io);
  ~DhtNode();
  DhtNode(const DhtNode&) = delete;
  DhtNode& operator=(const DhtNode&) = delete;

  Result<bool> start(const Options& options);
  void stop();

  // Joins through these HOST:PORT nodes (names resolved off the io thread), and again,
  // with backoff, whenever the node has no peers. `on_connection` hears every change.
  void join(std::vector<std::string> bootstrap, std::function<void(bool connected)> on_connection);

  void put(const DhtLocation& location, std::uint64_t value_id, std::uint16_t seq, Bytes data,
           std::function<void(bool ok)> done) override;
  void get(const DhtLocation& location, std::chrono::milliseconds timeout,
           std::function<void(std::vector<DhtValue>)> done, End end = End::Complete) override;
  bool connected() const override { return health_.good_nodes > 0; }

  // The last health report. OpenDHT's own getters take the lock its thread holds while
  // it works, so the report is refreshed asynchronously (every second) and cached here.
  const DhtHealth& health() const { return health_; }
  // Seconds since the DHT last said it had a good peer (since the start, if never); 0
  // while it does. Counted at the call, so a DHT thread that stopped answering shows.
  double disconnected_for() const;

private:
  void refresh_health();
  void bootstrap();
  void watch_connection();

  std::vector<std::string> bootstrap_;
  std::function<void(bool)> on_connection_;
  bool was_connected_ = false;
  std::chrono::steady_clock::time_point next_bootstrap_{};
  std::chrono::seconds bootstrap_backoff_{15};

  asio::io_context& io_;
  DhtHealth health_;
  std::chrono::steady_clock::time_point last_connected_;  // or the start
  std::unique_ptr<asio::steady_timer> health_timer_;
  dht::DhtRunner runner_;
  dht::crypto::Identity identity_;
  asio::thread_pool worker_{1};
  bool running_ = false;
};

}  // namespace annexswarm
