#pragma once
// Downloads one annex object from several swarm members at once. A DownloadMachine decides
// (which manifest, which chunk from whom, when a peer is stalled, silent, busy or lying,
// when to give up); the Fetcher carries its actions out:
//  - links come from the PeerPool (one per member, shared with every other request);
//  - manifest pages and chunks are requests on those links, by id;
//  - each chunk goes to a ChunkSink on the worker executor, which checks it against the
//    manifest, writes it into `<destination>.part`, lists it in `.part.chunks` (so a
//    restarted download keeps it) and feeds the object hash in order;
//  - the whole object is checked against the key, then renamed over the destination.
// The network thread never blocks on the disk or on hashing. A download stopped (every
// peer gone, or cancelled because nobody waits for it) keeps its partial file.
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
#include "transfer/chunk_sink.hpp"
#include "transfer/download_machine.hpp"
#include "transfer/peer_pool.hpp"
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
  DownloadLimits limits = {};
  // Only these chunks (empty: all of them): the rest stay zeros in the file. For keys
  // without a digest only (see ChunkSink::leave_out).
  std::vector<bool> only_chunks = {};
  // Told (on the io thread) of each chunk written into the partial file (checked against
  // the manifest first when the key has no digest).
  std::function<void(std::size_t chunk)> on_chunk = {};
  // Told (on the io thread) when the partial file is open for the chosen copy: its
  // manifest and the chunks already in it (resumed). Again when another copy is tried.
  std::function<void(const ObjectManifest& manifest, const std::vector<bool>& done)> on_sink = {};
  // Told (on the io thread) of the chunks found bad when the object failed its digest:
  // they are missing again until on_chunk says otherwise.
  std::function<void(const std::vector<std::size_t>& chunks)> on_chunks_bad = {};
  // In order (git-annex's RETRIEVE): the destination grows as the checked prefix does
  // (ChunkSink::mirror_to), the next chunks in order come first and a slow peer's chunk at
  // the front is asked again of another; the partial file holds what arrives early.
  bool in_order = false;
};

struct FetchProgress {
  std::uint64_t bytes_done = 0;
  std::uint64_t bytes_total = 0;
  std::uint64_t prefix_bytes = 0;  // written in order at the start of the destination (in_order)
  std::size_t peers = 0;
  std::size_t waiting = 0;         // busy peers waited for
  std::string waiting_why;
  double stalled_seconds = 0;      // since the last verified chunk
};

struct FetchReport {
  std::map<std::string, std::uint64_t> bytes_from;   // node id hex -> verified bytes
  std::map<std::string, std::string> dropped;        // node id hex -> why
  std::map<std::string, std::string> paths;          // node id hex -> the address dialled
  std::map<std::string, std::string> redialled;      // node id hex -> why its link was dialled again
  std::set<std::string> bad_data;                    // dropped for data that failed a check
  std::set<std::string> absent;                      // dropped for saying they do not hold it
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
  Fetcher(asio::io_context& io, asio::any_io_executor worker, PeerPool& pool, std::vector<SwarmToken> swarms,
          AnnexKey key, std::vector<FetchSource> sources, FetchOptions options, ProgressFn progress, DoneFn done);
  void start();
  // Stops now (nobody waits for it any more); the partial file stays for the next try.
  void cancel(const std::string& why);
  const AnnexKey& key() const { return key_; }
  const std::filesystem::path& destination() const { return options_.destination; }

private:
  using M = DownloadMachine;
  struct Pending {  // a request on a channel
    M::PeerId peer;
    std::shared_ptr<PeerChannel> channel;
    std::uint32_t channel_id = 0;
    std::size_t chunk = 0;
    std::uint64_t offset = 0;
    std::shared_ptr<Bytes> buffer;  // chunks only
  };
  void feed(const M::Event& event);
  void apply(M::Action& action);
  void dial(M::PeerId peer);
  void send_page(const M::RequestPage& r);
  void send_chunk(const M::RequestChunk& r);
  bool on_answer(M::RequestId request, std::uint64_t epoch, Result<peer::FrameView>& frame);
  void link_failed(M::PeerId peer, std::uint64_t epoch, const std::string& why);
  void open_sink(ObjectManifest manifest);
  void check_chunk(M::PeerId peer, std::shared_ptr<Bytes> buffer, std::size_t chunk);
  void check_object();
  void finish();
  void end(std::optional<std::string> error);
  void arm_timer();
  void report_progress(bool force);
  FetchReport report() const;
  std::uint64_t prefix_bytes_ = 0;  // in order mode: how far the destination has grown

  asio::io_context& io_;
  asio::any_io_executor worker_;
  PeerPool& pool_;
  std::vector<SwarmToken> swarms_;
  AnnexKey key_;
  std::vector<FetchSource> sources_;
  FetchOptions options_;
  ProgressFn progress_;
  DoneFn done_;
  std::optional<M> machine_;
  std::vector<std::shared_ptr<PeerChannel>> channels_;  // per peer, while in use
  std::vector<std::uint64_t> epochs_;                   // per peer: which link its answers come from
  std::vector<std::string> paths_;
  std::map<M::RequestId, Pending> pending_;
  std::shared_ptr<ChunkSink> sink_;  // used on the worker only, once opened
  std::uint64_t sink_generation_ = 0;
  asio::steady_timer timer_;
  std::optional<M::Clock::time_point> timer_at_;
  asio::steady_timer pacing_;
  std::vector<M::RequestChunk> paced_;  // chunk requests held back by the download rate
  bool pacing_armed_ = false;
  M::Clock::time_point last_progress_{};
  std::filesystem::path part_path_;
  bool ended_ = false;
};

}  // namespace annexswarm
