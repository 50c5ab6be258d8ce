#pragma once
// Downloads one annex object from several swarm members at once.
//  1. dial every source (TLS + membership, checking it is the node we meant);
//  2. ask each for the object's manifest (SHA-256 per 1 MiB chunk); the manifest most
//     peers agree on wins, and peers that disagree are dropped;
//  3. keep up to `window` chunk requests in flight per peer (ChunkScheduler: faster
//     peers get more, the tail is duplicated);
//  4. check every chunk against the manifest before writing it; a peer that sends a bad
//     chunk is dropped and reported, its chunks go to the others;
//  5. write into `<destination>.part` (chunks done are listed in `.part.chunks`, so a
//     restarted download keeps them), check the whole object against the key's hash,
//     then rename it over the destination.
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <tuple>

#include "protocol/annex_key.hpp"
#include "transfer/chunk_scheduler.hpp"
#include "transfer/peer_link.hpp"

namespace annexswarm {

struct FetchSource {
  NodeId node;
  std::size_t swarm = 0;  // index into the fetcher's swarms
  std::vector<asio::ip::tcp::endpoint> endpoints;
};

struct FetchOptions {
  std::filesystem::path destination;
  bool allow_unverified = false;  // WORM/URL keys carry no hash
  std::size_t window = 4;         // chunk requests in flight per peer
};

struct FetchProgress {
  std::uint64_t bytes_done = 0;
  std::uint64_t bytes_total = 0;
  std::size_t peers = 0;
};

struct FetchReport {
  std::map<std::string, std::uint64_t> bytes_from;   // node id hex -> verified bytes
  std::map<std::string, std::string> dropped;        // node id hex -> why
  std::uint64_t bytes_fetched = 0;                   // this run (not counting resumed chunks)
  std::uint64_t bytes_resumed = 0;
};

class Fetcher : public std::enable_shared_from_this<Fetcher> {
public:
  using ProgressFn = std::function<void(const FetchProgress&)>;
  // error is empty on success; the report says which peers served or were dropped.
  using DoneFn = std::function<void(std::optional<std::string> error, FetchReport report)>;

  Fetcher(asio::io_context& io, std::shared_ptr<TlsCredentials> credentials, std::vector<SwarmToken> swarms,
          AnnexKey key, std::vector<FetchSource> sources, FetchOptions options, ProgressFn progress, DoneFn done);
  ~Fetcher();
  void start();

private:
  struct ManifestKey {
    std::uint64_t size;
    std::uint32_t chunk;
    Bytes hashes;
    bool operator<(const ManifestKey& o) const {
      return std::tie(size, chunk, hashes) < std::tie(o.size, o.chunk, o.hashes);
    }
    friend bool operator==(const ManifestKey&, const ManifestKey&) = default;
  };
  struct Peer {
    NodeId node;
    std::shared_ptr<PeerLink> link;
    std::optional<ManifestKey> manifest_key;
    std::size_t in_flight = 0;
    bool alive = true;
  };
  struct Request {
    std::size_t peer;
    std::size_t chunk;
    Bytes buffer;
  };
  void dial(std::size_t source);
  void on_link(std::size_t source, std::shared_ptr<PeerLink> link, Result<PeerLink::Established> r);
  void receive_loop(std::size_t peer);
  void on_frame(std::size_t peer, peer::Frame frame);
  void maybe_choose_manifest();
  Result<bool> open_partial();
  void pump();
  void drop(std::size_t peer, const std::string& why);
  void finish_chunk(std::size_t peer, std::uint32_t id);
  void complete();
  void fail(const std::string& why);
  bool chunk_matches(std::size_t chunk, ByteView bytes) const;  // against the agreed manifest
  std::string dropped_summary() const;

  asio::io_context& io_;
  std::shared_ptr<TlsCredentials> credentials_;
  std::vector<SwarmToken> swarms_;
  AnnexKey key_;
  std::vector<FetchSource> sources_;
  FetchOptions options_;
  ProgressFn progress_;
  DoneFn done_;

  std::vector<Peer> peers_;
  std::size_t dials_pending_ = 0;
  std::optional<ManifestKey> manifest_;
  std::optional<ChunkScheduler> scheduler_;
  std::map<std::uint32_t, Request> requests_;
  std::uint32_t next_id_ = 1;
  int part_fd_ = -1;
  std::filesystem::path part_path_;
  FetchReport report_;
  bool finished_ = false;
};

// The key's digest of a file, in lower-case hex (empty when the key has no hash).
Result<std::string> file_digest(const std::filesystem::path& file, HashAlgorithm hash);

}  // namespace annexswarm
