#pragma once
// The node's object requests from the control socket: get (a multi-source download,
// or a verified copy of our own object), store into a swarm store, present (do the
// holders confirm their copies now?) and remove from swarm stores. It finds sources in
// the swarm directory, talks to them over the PeerPool, and reads and writes this node's
// objects through LocalObjects. A second get of the same key to the same file joins the
// download under way; a download whose every caller has gone is stopped (its partial
// file stays for the next try).
#include <asio/any_io_executor.hpp>
#include <asio/io_context.hpp>

#include <map>
#include <memory>

#include "node/audit_book.hpp"
#include "node/control_api.hpp"
#include "node/local_objects.hpp"
#include "node/member_address.hpp"
#include "node/swarm_directory.hpp"
#include "node/timers.hpp"
#include "transfer/fetcher.hpp"
#include "transfer/peer_pool.hpp"
#include "transfer/rate_limiter.hpp"

namespace annexswarm {

class ObjectService {
public:
  struct Settings {
    SelfAddress self;
    double download_rate = 0;  // bytes per second over all downloads; 0: unlimited
    std::chrono::seconds stall_timeout{30};
    // Where spot checks of shares write their one chunk (removed after); empty: the
    // system's temporary directory.
    std::filesystem::path scratch;
  };
  ObjectService(asio::io_context& io, Timers& timers, asio::any_io_executor disk, SwarmDirectory& directory,
                LocalObjects& objects, PeerPool& pool, Settings settings);
  ~ObjectService();

  void whereis(const WhereisRequest& request, Done<WhereisReply> done);
  void discover(const DiscoverRequest& request, Done<DiscoverReply> done);
  void peers(Done<PeersReply> done);
  void get(const GetRequest& request, ProgressFn progress, Done<GetReply> done, OnGone on_gone = {});
  void store(const StoreRequest& request, ProgressFn progress, Done<StoreReply> done);
  void present(const PresentRequest& request, Done<PresentReply> done);
  void remove(const RemoveRequest& request, Done<RemoveReply> done);

  // Downloads under way keep the limit they started with.
  void set_download_rate(double rate);
  // The node's download limit, shared by every download (null: none).
  std::shared_ptr<RateLimiter> download_limit() const { return download_limit_; }
  // Most bytes this node's swarm stores may hold (nullopt: no limit), and where it was set:
  // a STORE that would pass it is refused with both.
  void set_storage_limit(std::optional<std::uint64_t> bytes, std::string set_in);
  void stop();  // stops the downloads under way (their partial files stay for resume)
  std::size_t downloads() const { return downloads_.size(); }
  // The audits kept of what this node stored in swarm stores (shares too).
  AuditBook& audits() { return audits_; }

private:
  // The key's providers (only those in repository/store `only_repo`, when given), plus
  // the nodes serving repository `plus_nodes_of` and the `hints`, as dialable sources;
  // this node excluded.
  // `asked`, if given, hears how many nodes were found to hold it (usable contact or not).
  void find_sources(const AnnexKey& key, const std::string& only_repo, const std::string& plus_nodes_of,
                    std::function<void(std::vector<FetchSource>)> done, const std::vector<NodeId>& hints = {},
                    std::shared_ptr<std::size_t> asked = nullptr);
  // Sends `request` to every source at once; each node's answer, or why there is none.
  void ask_all(const std::vector<FetchSource>& sources, const peer::Frame& request,
               std::function<void(std::vector<std::pair<std::string, Result<peer::Frame>>>)> done);
  // The same with a request of its own for each source (request(i) for sources[i]).
  void ask_each(const std::vector<FetchSource>& sources, std::function<peer::Frame(std::size_t)> request,
                std::function<void(std::vector<std::pair<std::string, Result<peer::Frame>>>)> done);
  void copy_local(const AnnexKey& key, const std::filesystem::path& from, const std::filesystem::path& to,
                  Done<GetReply> done);
  bool no_swarm() const { return directory_.swarms().empty(); }
  // A share's holders each send one chunk picked at random, checked against the manifest
  // the share's key pins: a holder that sends it holds the share (as far as any asker
  // can tell without a copy of its own).
  void spot_check(const AnnexKey& key, std::vector<FetchSource> sources, Done<PresentReply> done);
  DownloadLimits limits() const;
  struct Watcher {
    ProgressFn progress;
    Done<GetReply> done;
    bool gone = false;
  };
  struct Download {
    std::shared_ptr<Fetcher> fetcher;  // null while its sources are looked up
    std::vector<Watcher> watchers;
    std::chrono::steady_clock::time_point started;
    int empty_lookups = 0;                 // lookups that found no reachable source yet
    std::unique_ptr<Timer> lookup_again;  // the next one, after one came back empty
  };
  using DownloadKey = std::pair<std::string, std::string>;  // key, destination
  // `second_try`: the first try failed on peers whose addresses came from the contact
  // cache; this one reads their records afresh (and does not try a third time).
  void start_download(const DownloadKey& id, const GetRequest& request, bool second_try = false);
  void watch(const DownloadKey& id, ProgressFn progress, Done<GetReply> done, const OnGone& on_gone);

  asio::io_context& io_;
  Timers& timers_;
  asio::any_io_executor disk_;
  SwarmDirectory& directory_;
  LocalObjects& objects_;
  AuditBook audits_;
  PeerPool& pool_;
  Settings settings_;
  std::optional<std::uint64_t> storage_limit_;
  std::string storage_limit_from_;
  std::shared_ptr<RateLimiter> download_limit_;
  std::map<DownloadKey, std::shared_ptr<Download>> downloads_;
  std::map<std::string, std::shared_ptr<Fetcher>> spot_checks_;  // by scratch directory
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace annexswarm
