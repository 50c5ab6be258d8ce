#pragma once
// Downloads one annex object from several swarm members at once.
//  1. dial every source (TLS + membership, checking it is the node we meant);
//  2. ask each for the object's manifest (SHA-256 per 1 MiB chunk); the manifest most
//     peers agree on wins, and peers that disagree are dropped;
//  3. keep up to `window` chunk requests in flight per peer (ChunkScheduler: faster
//     peers get more, the tail is duplicated, and when one copy of a duplicated chunk
//     arrives the other request is cancelled);
//  4. hand each chunk to a ChunkSink on the worker executor, which checks it against the
//     manifest, writes it into `<destination>.part`, lists it in `.part.chunks` (so a
//     restarted download keeps it) and feeds the object hash in order; a peer whose
//     chunk fails the check is dropped and reported, its chunks go to the others;
//  5. check the object hash against the key, then rename over the destination.
// The network thread never blocks on the disk or on hashing.
#include <asio/any_io_executor.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "protocol/annex_key.hpp"
#include "transfer/chunk_scheduler.hpp"
#include "transfer/chunk_sink.hpp"
#include "transfer/peer_dialer.hpp"
#include "transfer/rate_limiter.hpp"

namespace annexswarm {

struct FetchSource {
  PeerAddress address;
  std::size_t swarm = 0;  // index into the fetcher's swarms
};

struct FetchOptions {
  std::filesystem::path destination;
  bool allow_unverified = false;  // WORM/URL/SKEIN keys carry no hash we can check
  std::size_t window = 4;         // chunk requests in flight per peer
  std::size_t max_sources = 16;   // peers dialled at most
  // Shared by every download of a node; null: no cap.
  std::shared_ptr<RateLimiter> download_limit = nullptr;
};

struct FetchProgress {
  std::uint64_t bytes_done = 0;
  std::uint64_t bytes_total = 0;
  std::size_t peers = 0;
};

struct FetchReport {
  std::map<std::string, std::uint64_t> bytes_from;   // node id hex -> verified bytes
  std::map<std::string, std::string> dropped;        // node id hex -> why
  std::map<std::string, std::string> paths;          // node id hex -> the address dialled
  std::map<std::string, std::string> redialled;      // node id hex -> why its link was dialled again
  std::uint64_t bytes_fetched = 0;                   // this run (not counting resumed chunks)
  std::uint64_t bytes_resumed = 0;
};

class Fetcher : public std::enable_shared_from_this<Fetcher> {
public:
  using ProgressFn = std::function<void(const FetchProgress&)>;
  // error is empty on success; the report says which peers served or were dropped.
  using DoneFn = std::function<void(std::optional<std::string> error, FetchReport report)>;

  // `worker` runs the disk writes and hashing; it must run one job at a time (a strand
  // or a one-thread pool).
  Fetcher(asio::io_context& io, asio::any_io_executor worker, std::shared_ptr<PeerDialer> dialer,
          std::vector<SwarmToken> swarms, AnnexKey key, std::vector<FetchSource> sources, FetchOptions options,
          ProgressFn progress, DoneFn done);
  void start();

private:
  struct Peer {
    NodeId node;
    std::shared_ptr<PeerLink> link;
    std::optional<ObjectManifest> manifest;
    std::size_t in_flight = 0;  // requests sent or being checked
    bool alive = true;
    std::size_t source = 0;
  };
  struct Request {
    std::size_t peer;
    std::size_t chunk;
    std::shared_ptr<Bytes> buffer;
  };
  void dial(std::size_t source);
  void on_link(std::size_t source, Result<std::shared_ptr<PeerLink>> link);
  void receive_loop(std::size_t peer);
  void on_data(std::size_t peer, const peer::DataView& data);
  void on_frame(std::size_t peer, peer::Frame frame);
  void maybe_choose_manifest();
  void on_sink(Result<std::unique_ptr<ChunkSink>> sink);
  void pump();
  void request(std::size_t peer, std::size_t chunk);
  void drop(std::size_t peer, const std::string& why);
  // The link broke (not bad data): dial that source again, another path first.
  void link_lost(std::size_t peer, const std::string& why);
  void chunk_arrived(std::uint32_t id);
  void on_verdict(std::size_t peer, std::size_t chunk, Result<ChunkSink::Verdict> verdict, std::size_t bytes);
  void cancel_duplicates(std::size_t chunk);
  void complete();
  void fail(const std::string& why);
  void close_links();
  std::string dropped_summary() const;

  asio::io_context& io_;
  asio::any_io_executor worker_;
  std::shared_ptr<PeerDialer> dialer_;
  std::vector<SwarmToken> swarms_;
  AnnexKey key_;
  std::vector<FetchSource> sources_;
  FetchOptions options_;
  ProgressFn progress_;
  DoneFn done_;

  std::vector<Peer> peers_;
  std::size_t dials_pending_ = 0;
  std::vector<int> redials_;           // per source: times dialled again after a lost link
  std::vector<bool> redialing_;        // per source: a dial again is under way
  std::size_t redials_pending_ = 0;
  std::optional<ObjectManifest> manifest_;
  std::shared_ptr<ChunkSink> sink_;  // used on the worker only, once opened
  std::optional<ChunkScheduler> scheduler_;
  std::map<std::uint32_t, Request> requests_;
  std::set<std::uint32_t> cancelled_;  // their frames may still arrive; ignored
  std::uint32_t next_id_ = 1;
  asio::steady_timer pacing_;
  bool paused_ = false;  // over the download rate until pacing_ fires
  bool completing_ = false;
  std::filesystem::path part_path_;
  FetchReport report_;
  bool finished_ = false;
};

}  // namespace annexswarm
