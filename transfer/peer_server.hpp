#pragma once
// Serves annex objects to authenticated swarm members: TCP listener, TLS, PeerLink,
// then HAVE / MANIFEST / GET / PING requests, answered one after another per link.
// Objects are read straight from their files (pread, one DATA frame at a time, the next
// read only once the previous frame is sent), never buffered whole.
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/thread_pool.hpp>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>

#include "protocol/annex_key.hpp"
#include "transfer/peer_link.hpp"
#include "transfer/rate_limiter.hpp"

namespace annexswarm {

inline constexpr std::uint32_t kManifestChunk = 1024 * 1024;

struct PeerServerLimits {
  std::size_t max_peers = 64;
  double upload_rate = 0;  // bytes per second over all links; 0 = unlimited
};

struct PeerServerStats {
  std::uint64_t links_accepted = 0;
  std::uint64_t links_refused = 0;  // TLS or membership failures, or over the peer cap
  std::uint64_t bytes_served = 0;
  std::size_t links_open = 0;
};

class PeerServer {
public:
  // Where the object of a key is on disk, if this node holds it.
  using ObjectLocator = std::function<std::optional<std::filesystem::path>(const AnnexKey&)>;

  PeerServer(asio::io_context& io, std::shared_ptr<TlsCredentials> credentials, std::vector<SwarmToken> swarms,
             ObjectLocator locate, PeerServerLimits limits = {});
  ~PeerServer();
  Result<std::uint16_t> listen(const asio::ip::address& address, std::uint16_t port);
  void close();
  const PeerServerStats& stats() const { return stats_; }

  // Test-only fault switches: corrupt every DATA frame this server sends; hang up every
  // link once it has served `bytes` (a seeder that vanishes mid-transfer).
  void corrupt_data_for_test(bool on) { corrupt_for_test_ = on; }
  void hang_up_after_for_test(std::uint64_t bytes) { hang_up_after_for_test_ = bytes; }

private:
  class Session;
  void accept();

  asio::io_context& io_;
  std::shared_ptr<TlsCredentials> credentials_;
  std::vector<SwarmToken> swarms_;
  ObjectLocator locate_;
  PeerServerLimits limits_;
  asio::ip::tcp::acceptor acceptor_;
  asio::thread_pool hasher_{1};
  PeerServerStats stats_;
  RateLimiter upload_;
  bool corrupt_for_test_ = false;
  std::uint64_t hang_up_after_for_test_ = 0;
  bool closed_ = false;
};

// SHA-256 of each kManifestChunk-sized chunk of a file, concatenated.
Result<Bytes> chunk_hashes(const std::filesystem::path& file, std::uint64_t& size_out);

}  // namespace annexswarm
