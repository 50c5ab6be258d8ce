#pragma once
// The node's seat on the Kademlia DHT: an OpenDHT DhtRunner (its own thread) behind a
// narrow interface. Every callback is posted onto the owner's io_context, so the rest
// of the node never sees OpenDHT's thread. Signing runs on a worker thread.
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

#include "protocol/bytes.hpp"
#include "protocol/records.hpp"
#include "protocol/result.hpp"
#include "protocol/swarm_token.hpp"

namespace annexswarm {

// Value type of every annex-swarm record: annex-swarm nodes keep such values 60 minutes
// (other OpenDHT nodes keep unknown types 10 minutes).
inline constexpr std::uint16_t kRecordValueType = 0x4153;
inline constexpr auto kRecordLifetime = std::chrono::minutes(60);
// The largest record we put (a full provider bucket, sealed); OpenDHT allows 64 KiB.
inline constexpr std::size_t kMaxDhtValue = kMaxSealedRecord;

struct DhtValue {
  bool is_signed = false;
  NodeId owner;  // meaningful when is_signed (OpenDHT checked the signature)
  std::uint64_t id = 0;
  std::uint16_t seq = 0;
  Bytes data;
};

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

class DhtNode {
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

  // Resolves HOST:PORT names off the io thread, then joins through them.
  void bootstrap(const std::vector<std::string>& hosts, std::function<void(std::size_t resolved)> done);

  using PutDone = std::function<void(bool ok)>;
  void put(const DhtLocation& location, std::uint64_t value_id, std::uint16_t seq, Bytes data,
           PutDone done);

  using GetDone = std::function<void(std::vector<DhtValue> values)>;
  // Calls done exactly once: when the lookup ends or at the deadline, with what arrived.
  void get(const DhtLocation& location, std::chrono::milliseconds timeout, GetDone done);

  // The last health report. OpenDHT's own getters take the lock its thread holds while
  // it works, so the report is refreshed asynchronously (every second) and cached here.
  const DhtHealth& health() const { return health_; }

private:
  void refresh_health();

  asio::io_context& io_;
  DhtHealth health_;
  std::unique_ptr<asio::steady_timer> health_timer_;
  dht::DhtRunner runner_;
  dht::crypto::Identity identity_;
  asio::thread_pool worker_{1};
  bool running_ = false;
};

}  // namespace annexswarm
