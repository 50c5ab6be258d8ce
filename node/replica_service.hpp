#pragma once
// Replicated swarm stores (issue 17): under the swarm rules (node/swarm_rules.hpp), a store
// with `store.UUID.copies = N` keeps N whole copies of each key on the nodes of its keep-on
// groups, with no coordinator. Every sweep, each node looks at the keys its copy of the
// store holds:
//  - it asks the store's candidates (HAVE, in batches) which of those keys they hold; an
//    answer is also how a candidate is seen alive. One unseen for the store's grace period
//    is lost: it is left out of the choice, and its keys get new keepers;
//  - for each key it computes the keepers (node/keepers.hpp: weighted rendezvous hashing
//    over the live candidates with room) and acts on the plan: asks keepers lacking the
//    key to TAKE it (they fetch it from this node, checked against the key, at the
//    node's download-rate), and, when this node is no keeper and N keepers proved their
//    copies, moves its own copy to the trash.
// So one `git annex copy --to` puts the key on one node, and the store fills itself: the
// uploader asks the first keeper lacking it to take it and hand it on down a chain of the
// others; each keeper serves the next the chunks it has while it fetches (a pipeline), so
// every node sends about one copy and all copies fill in about the time of one.
//
// Outside a node's `hours` it takes nothing and asks nothing to be taken (the sweeps go on,
// so it still sees who is alive). A TAKE is answered at once (accepted, or why not); the
// fetches run on, kMaxFetches at a time (kMaxAccepted waiting at most), and a crash leaves
// a partial file that the next TAKE resumes.
#include <asio/any_io_executor.hpp>
#include <asio/io_context.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "node/control_api.hpp"
#include "node/local_objects.hpp"
#include "node/member_address.hpp"
#include "node/node_limits.hpp"
#include "node/swarm_directory.hpp"
#include "node/swarm_rules.hpp"
#include "node/timers.hpp"
#include "transfer/fetcher.hpp"
#include "transfer/peer_pool.hpp"
#include "transfer/peer_server.hpp"
#include "transfer/rate_limiter.hpp"

namespace annexswarm {

class ReplicaService {
public:
  static constexpr std::size_t kMaxFetches = 2;        // TAKEs fetched at once
  static constexpr std::size_t kMaxAccepted = 256;     // TAKEs fetched or waiting their turn
  static constexpr std::size_t kMaxPushesPerSweep = 64;  // TAKEs asked per sweep and store
  static constexpr std::size_t kMaxTrimsPerSweep = 16;
  static constexpr std::chrono::seconds kDefaultGrace{3600};

  struct Settings {
    SelfAddress self;
    std::function<std::optional<SwarmRules>()> rules;           // the version in force
    std::function<std::uint64_t()> store_offer;                 // what this node offers stores now
    std::function<std::optional<HoursWindow>()> hours;          // when replication may run
    std::function<std::shared_ptr<RateLimiter>()> download_limit;  // the node's, shared
    DownloadLimits limits;
    // A copy younger than this (and than the store's grace) is not trimmed: new rules take
    // up to a rules check to reach every member, and a copy taken under them is not
    // churned meanwhile. The daemon makes it twice its rules-check.
    std::chrono::milliseconds min_trim_age{std::chrono::seconds(60)};
  };
  ReplicaService(asio::io_context& io, Timers& timers, asio::any_io_executor disk, SwarmDirectory& directory,
                 LocalObjects& objects, PeerPool& pool, Settings settings);
  ~ReplicaService();

  // A sweep every `interval` (0: never), the first one soon.
  void start_sweeps(std::chrono::milliseconds interval);
  // A key came in (a STORE, a finished TAKE): the next sweep in a moment.
  void sweep_soon();
  void stop();  // the fetches under way stop; their partial files stay
  using TakeAnswer = std::function<void(std::variant<std::uint64_t, PeerServer::Refusal>)>;
  // A member's TAKE of a whole object: answered at once with 0 (accepted: being fetched)
  // or the size + 1 (held already), or refused.
  void take(const PeerServer::ShareTake& request, TakeAnswer answer);
  ReplicaStatus status() const;
  // A key being fetched here, for the peer server: the chunks in so far can be served to
  // the next keeper of a chain before the whole object is in.
  std::optional<PeerServer::PartialObject> partial(const AnnexKey& key) const;
  // This node is about to trim its copy of the key, and asks the keepers to prove theirs:
  // meanwhile it shows its own to nobody (HAVE, PROVE, GET), so two nodes that each count
  // the other as a keeper cannot both trim on each other's proof.
  bool leaving(const AnnexKey& key) const { return leaving_.count(key.str()) > 0; }

private:
  struct StoreSweep;
  struct KeyHeld {
    AnnexKey key;
    std::uint64_t size = 0;
  };
  void sweep();
  void sweep_store(std::shared_ptr<std::vector<StoreSweep>> jobs, std::size_t i, std::map<NodeId, Member> contacts);
  // Every key of `keys` asked of `member` in HAVE batches: which it holds, or nothing.
  void ask_holds(const Member& member, const std::string& store, std::shared_ptr<const std::vector<KeyHeld>> keys,
                 std::function<void(std::optional<std::vector<bool>>)> done);
  // Asks chain[0] to TAKE the key from this node and to hand it on to the rest of the
  // chain; one that will not is skipped (and left alone for a while).
  void hand_on(std::size_t swarm, const std::string& store, const std::string& key, std::vector<NodeId> chain);
  struct Trim;
  void trim_next(std::shared_ptr<std::vector<Trim>> trims, std::function<void()> done);
  void sweep_done();
  bool in_hours() const;
  std::chrono::milliseconds grace_of(const StoreRule& rule) const;
  void start_queued();                   // fetches waiting, up to kMaxFetches at once
  void fetch(const std::string& key);  // the accepted TAKE of the key, from its asker

  asio::io_context& io_;
  Timers& timers_;
  asio::any_io_executor disk_;
  SwarmDirectory& directory_;
  LocalObjects& objects_;
  PeerPool& pool_;
  Settings settings_;
  std::unique_ptr<Timer> sweep_timer_;
  std::chrono::milliseconds interval_{0};
  Timers::Clock::time_point started_;
  bool sweeping_ = false, again_ = false, stopping_ = false;
  std::map<NodeId, Timers::Clock::time_point> last_seen_;
  // (key, node): that keeper was asked to take the key lately, or would not take it; it is
  // left alone until then (a chain skips it).
  std::map<std::pair<std::string, NodeId>, Timers::Clock::time_point> quiet_until_;
  struct Fetching {
    std::string store;
    std::size_t index = 0;  // of the store in LocalObjects
    std::uint64_t size = 0;
    NodeId from;
    std::size_t swarm = 0;
    std::vector<NodeId> chain;  // handed on once the fetch starts
    bool started = false;
    std::shared_ptr<Fetcher> fetcher;
    std::filesystem::path part;                    // the fetcher's partial file
    std::shared_ptr<const FullManifest> manifest;  // once the fetcher opened it
    std::vector<bool> done;                        // chunks in the partial file
  };
  std::map<std::string, Fetching> fetching_;         // by key: accepted TAKEs, started or waiting
  std::deque<std::string> queue_;                   // keys accepted, waiting to start
  std::map<std::string, std::set<std::string>> wanted_;  // store -> keys asked of us, not held yet
  std::set<std::string> leaving_;  // keys being trimmed here (see leaving())
  ReplicaStatus status_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace annexswarm
