#pragma once
// Erasure-coded swarm stores (a git-annex remote set up with shares=K+M): an object is
// kept as K data and M parity shares on K+M distinct members, any K of which rebuild it.
// Shares and the object's share map are ordinary objects of the store (share keys name
// their manifest root; the map key only the object's key), so the object service stores,
// announces, serves, proves and removes them like any other; this service adds what is
// particular to shares:
//  - store: encode the object into its shares (on the disk thread, one segment in memory),
//    place them on members with room (rendezvous hashing weighted by the space each
//    offers), and ask each holder to TAKE its share: the holder fetches it from us, checked
//    against its root, and keeps it with the map. Audits of every share are kept here, so
//    this node can check the holders later without a copy of its own.
//  - get: fetch the map, then shares (data shares first, a parity share for each one that
//    fails) until K are in, rebuild the object in order and check it against its key.
//  - present: the map, then each share's holders asked to show it; SUCCESS only with K
//    shares confirmed, UNKNOWN when unanswered holders could make up the difference.
//  - remove: every share and the map, from every holder; failing when a holder cannot be asked.
//  - take: a member's TAKE, answered once the share is here.
#include <asio/any_io_executor.hpp>
#include <asio/io_context.hpp>

#include <map>
#include <memory>
#include <set>

#include "erasure/share_map.hpp"
#include "node/control_api.hpp"
#include "node/local_objects.hpp"
#include "node/member_address.hpp"
#include "node/object_service.hpp"
#include "node/swarm_directory.hpp"
#include "node/timers.hpp"
#include "transfer/peer_pool.hpp"
#include "transfer/peer_server.hpp"

namespace annexswarm {

using fs_path_string = std::string;

class ShareService {
public:
  struct Settings {
    SelfAddress self;
    std::function<std::uint64_t()> store_offer;  // what this node offers stores now
  };
  ShareService(asio::io_context& io, Timers& timers, asio::any_io_executor disk, SwarmDirectory& directory,
               LocalObjects& objects, PeerPool& pool, ObjectService& object_service, Settings settings);
  ~ShareService();

  void store(const StoreRequest& request, ProgressFn progress, Done<StoreReply> done);
  void get(const GetRequest& request, ProgressFn progress, Done<GetReply> done);
  void present(const PresentRequest& request, Done<PresentReply> done);
  // For whereis: the erasure-coded stores whose share maps of `key` members announce, and
  // how many of the key's shares are live in each.
  void share_counts(const AnnexKey& key, std::function<void(std::vector<WhereisReply::Shares>)> done);
  void remove(const RemoveRequest& request, Done<RemoveReply> done);
  // Rebuilds the key's missing shares from K live ones and places them on members with
  // room that hold none of the key's shares.
  void repair(const RepairRequest& request, ProgressFn progress, Done<RepairReply> done);
  // Every key whose share map this node keeps for the store, one at a time.
  void repair_all(const RepairAllRequest& request, ProgressFn progress, Done<RepairAllReply> done);
  // Every `interval` (0: never), each key whose share map a swarm store here keeps is
  // checked, one at a time; one below K+M live shares is repaired by the first of its live
  // holders in the key's own order (see RepairRequest::only_if_first).
  void start_sweeps(std::chrono::milliseconds interval);
  void stop();
  const RepairSweeps& sweep_status() const { return sweep_status_; }
  using TakeAnswer = std::function<void(std::variant<std::uint64_t, PeerServer::Refusal>)>;
  void take(const PeerServer::ShareTake& request, TakeAnswer answer);

private:
  struct Placed;
  // The object's share map, from any holder of the store (nothing: no holder has one).
  void find_map(const AnnexKey& key, const std::string& store,
                std::function<void(Result<std::optional<erasure::ShareMap>>)> done);
  void place(std::shared_ptr<Placed> placed, Done<StoreReply> done);
  struct TakeRound;
  // Places `shares` of the round's map: each on its ranked member, or the next one down.
  void take_round(std::shared_ptr<TakeRound> round, const std::vector<unsigned>& shares);
  void offer_share(std::shared_ptr<TakeRound> round, unsigned share, std::optional<NodeId> first);
  void settle_round(const TakeRound& round);
  struct Rebuild;
  void get_round(std::shared_ptr<Rebuild> job, ProgressFn progress, Done<GetReply> done);
  void segment_in(std::shared_ptr<Rebuild> job, unsigned share, std::size_t segment, int round, Done<GetReply> done);
  void write_segments(std::shared_ptr<Rebuild> job, Done<GetReply> done);
  void get_finished(std::shared_ptr<Rebuild> job, Done<GetReply> done);
  void get_failed(std::shared_ptr<Rebuild> job, const std::string& why, Done<GetReply> done);
  struct Repair;
  NodeId first_holder(const Repair& job) const;
  void repair_rebuild(std::shared_ptr<Repair> job, Done<RepairReply> done);
  void repair_place(std::shared_ptr<Repair> job, Done<RepairReply> done);
  std::filesystem::path scratch(const std::string& store) const;
  // Each share of the map asked as CHECKPRESENT asks (its holder from the map asked too).
  void present_each(const erasure::ShareMap& map, const std::string& store, const std::vector<std::string>& pinned,
                    bool spend_audits,
                    std::function<void(std::vector<std::optional<Outcome<PresentReply>>>)> done);
  std::chrono::milliseconds fan_out_deadline() const;
  struct KeptMap {
    std::string store;
    erasure::ShareMap map;
  };
  // The share maps the stores keep, in key order; one kept less than `settle` ago waits.
  static std::vector<KeptMap> kept_maps(const std::vector<AnnexRepo>& stores, std::chrono::milliseconds settle);
  void sweep();
  void note_shares(const std::string& key, const std::string& store, const Outcome<RepairReply>& outcome);
  void sweep_next(std::shared_ptr<std::vector<KeptMap>> queue);
  struct RepairAll;
  void repair_next(std::shared_ptr<RepairAll> job);

  asio::io_context& io_;
  Timers& timers_;
  asio::any_io_executor disk_;
  SwarmDirectory& directory_;
  LocalObjects& objects_;
  PeerPool& pool_;
  ObjectService& object_service_;
  Settings settings_;
  std::map<fs_path_string, std::shared_ptr<Fetcher>> takes_;  // shares being fetched for a TAKE, by destination
  std::unique_ptr<Timer> sweep_timer_;
  std::chrono::milliseconds sweep_interval_{0};
  RepairSweeps sweep_status_;
  bool stopping_ = false;
  bool sweeping_ = false;
  std::set<std::string> gets_into_;  // destinations of gets under way
  // Keys a sweep found short, and which shares: repaired only when the next sweep finds the
  // same ones missing (a holder rebooting is not a lost holder).
  std::map<std::string, std::vector<unsigned>> short_before_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace annexswarm
