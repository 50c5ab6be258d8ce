#pragma once
// The control API: typed requests and replies of the control socket, and the one place
// that turns JSON into them and them into JSON. Handlers (the node's services, wired by
// the daemon) never see JSON; errors carry a code clients can match on.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "nat/port_mapping.hpp"
#include "node/announcer.hpp"
#include "node/control_server.hpp"
#include "node/reachability.hpp"
#include "node/relay_manager.hpp"
#include "node/swarm_directory.hpp"
#include "node/node_limits.hpp"
#include "node/swarm_rules.hpp"
#include "erasure/codec.hpp"
#include "protocol/annex_key.hpp"
#include "protocol/possession.hpp"
#include "protocol/records.hpp"
#include "transfer/peer_pool.hpp"
#include "transfer/peer_server.hpp"

namespace annexswarm {

enum class ControlErrorCode { BadRequest, BadKey, BadUuid, NoSwarm, NotFound, Unverifiable, NotAStore, Failed, UnknownOp, Internal };
std::string_view to_string(ControlErrorCode code);

struct ControlError {
  ControlErrorCode code = ControlErrorCode::Internal;
  std::string message;
};

// ---- Requests ----
struct StatusRequest {};
struct WhereisRequest {
  AnnexKey key;
};
struct GetRequest {
  AnnexKey key;
  std::filesystem::path to;  // absolute
  bool unverified = false;   // fetch keys that carry no hash
  std::string repo;          // empty, or a repository whose nodes are asked too (sameas)
  // The repo is an erasure-coded swarm store (shares=K+M): the object is rebuilt from its shares.
  std::optional<erasure::ShareShape> shares;
  std::vector<NodeId> hints;  // nodes known to hold the key (a share map says so), asked too
  // Internal too: only these chunks of a key without a digest (a share, for some of its
  // segments); empty: the whole object.
  std::vector<bool> only_chunks;
  std::function<void(std::size_t)> on_chunk;  // internal: see FetchOptions::on_chunk
  // git-annex's RETRIEVE: `to` grows in order as chunks are checked (FetchOptions::in_order).
  bool in_order = false;
  // Internal: nobody announcing the key is the answer at once, without the second look a
  // second later (a lookup of what may well not exist: a share map, for CHECKPRESENT).
  bool absent_is_final = false;
};
struct DiscoverRequest {
  std::string uuid;
};
struct PeersRequest {};
struct StoreRequest {
  AnnexKey key;
  std::string store;  // the swarm store's annex UUID
  std::filesystem::path file;
  std::optional<erasure::ShareShape> shares;  // an erasure-coded store: K+M shares on K+M nodes
};
// A challenge the asker made from its own copy of the object (see peer::Prove): a holder
// counts only when its answer matches `mac`.
struct PresentRequest {
  AnnexKey key;
  std::string repo;  // the repository or store whose copies count
  // Made from the asker's local copy (git-annex asks before every drop). Empty: no local
  // copy; then only a holder pinned for the repository counts, on its word.
  std::vector<PossessionChallenge> challenges;
  std::vector<std::string> pinned;  // node ids (hex)
  std::optional<erasure::ShareShape> shares;  // the repo is an erasure-coded store
  std::vector<NodeId> hints;                  // nodes known to hold the key, asked too
  // Internal: false asks holders without a proof (the daemon's own periodic checks must not
  // use up the audits kept when the key was stored); a "yes" then counts as unproven.
  bool spend_audits = true;
};
struct RemoveRequest {
  AnnexKey key;
  std::string store;
  std::optional<erasure::ShareShape> shares;  // an erasure-coded store: every share goes
  std::vector<NodeId> hints;                  // nodes known to hold the key, asked too
};
// What swarm stores on this node moved to the trash (kept `trash-grace`), and taking one back.
struct TrashRequest {};
struct RestoreRequest {
  AnnexKey key;
  std::string store;
};
// Erasure-coded stores: rebuild the key's missing shares from any K and place them on
// members with room that hold none of its shares.
// Every key of an erasure-coded store whose share map this node keeps, repaired in turn.
struct RepairAllRequest {
  std::string store;
};
struct RepairRequest {
  AnnexKey key;
  std::string store;
  // Internal (the daemon's own sweep): repair only when this node comes first among the
  // key's live holders, so that one holder repairs, not all of them.
  bool only_if_first = false;
};
// The swarm rules: a signed document offered to this node (adopted when newer and signed
// by an admin it trusts, then published for the others), or the version in force.
struct RulesPushRequest {
  std::string document;     // OpenPGP clear-signed
  std::string public_keys;  // armored, the signer's at least
};
struct RulesShowRequest {};
// A tunnel to a service another node exposes (annex-swarm connect): TARGET is an annex
// repository UUID, a node id, or an alias.NAME of the config.
struct ConnectRequest {
  std::string target;
  std::string service = "ssh";
};
using ControlRequest = std::variant<StatusRequest, WhereisRequest, GetRequest, DiscoverRequest, PeersRequest,
                                    StoreRequest, PresentRequest, RemoveRequest, TrashRequest, RestoreRequest,
                                    RepairRequest, RepairAllRequest, RulesPushRequest, RulesShowRequest,
                                    ConnectRequest>;

std::variant<ControlRequest, ControlError> parse_control_request(const nlohmann::json& request);

// ---- Replies ----
template <class T>
using Outcome = std::variant<T, ControlError>;
template <class T>
using Done = std::function<void(Outcome<T>)>;

struct Progress {
  std::uint64_t bytes = 0;
  std::optional<std::uint64_t> total;
  std::optional<std::uint64_t> prefix;  // in order: the bytes at the start of `to` already
  std::optional<std::size_t> peers;
  double stalled_seconds = 0;  // since the last verified chunk
  std::size_t waiting = 0;     // busy peers waited for
  std::string waiting_why;     // what such a peer said
};
using ProgressFn = std::function<void(const Progress&)>;
// Registers what to do if the client hangs up before the reply.
using OnGone = std::function<void(std::function<void()>)>;

struct WhereisReply {
  struct Entry {
    NodeId node;
    std::string repo;
    std::string swarm;  // swarm id
  };
  std::string key;
  std::optional<std::uint64_t> size;
  std::vector<Entry> providers;
  // Erasure-coded stores keeping shares of the key: how many of its K+M shares are live.
  struct Shares {
    std::string store;  // the store's annex uuid
    std::string shape;  // "K+M"
    std::size_t live = 0;       // shown live by their holders
    std::size_t claimed = 0;    // said held, not shown (no audits here)
    std::size_t n = 0;
  };
  std::vector<Shares> shares;
};
struct GetReply {
  std::string key;
  std::map<std::string, std::uint64_t> bytes_from;
  std::map<std::string, std::string> dropped;
  std::map<std::string, std::string> paths;
  std::map<std::string, std::string> redialled;
  std::uint64_t bytes_fetched = 0;
  std::uint64_t bytes_resumed = 0;
  double seconds = 0;
  bool local = false;                // a verified copy of this node's own object
  std::optional<std::string> error;  // the download failed; the rest says how far it got
};
struct NodeEndpoints {
  NodeId node;
  std::string swarm;
  std::vector<Endpoint> endpoints;
  bool contact = true;  // discover: a contact record was found
  bool self = false;    // peers: this node
  std::uint64_t store_offer = 0;  // peers: bytes it offers erasure-coded stores
};
struct DiscoverReply {
  std::string uuid;
  std::vector<NodeEndpoints> nodes;
};
struct PeersReply {
  std::vector<NodeEndpoints> peers;
};
struct StoreReply {
  std::string key;
  std::uint64_t bytes = 0;
};
struct PresentReply {
  bool present = false;
  bool unknown = false;  // nobody confirmed, but a holder could not be asked or not be checked
  std::vector<std::string> confirmed_by;
  std::map<std::string, std::string> unreachable;
  std::map<std::string, std::string> unproven;  // said it holds the key; did not show it
};
struct RemoveReply {
  std::vector<std::string> removed_from;
  std::map<std::string, std::string> failed;
};
struct TrashEntry {
  std::string store;
  std::string key;
  std::uint64_t bytes = 0;
  std::int64_t removed_unix = 0;
  std::int64_t purged_in_seconds = 0;
};
struct TrashReply {
  std::vector<TrashEntry> entries;
};
struct RepairReply {
  std::string key;
  std::string shape;             // "K+M"
  std::size_t shares = 0;        // K+M
  std::size_t live_before = 0;   // shares shown live (or claimed) before the repair
  std::size_t live_after = 0;
  std::map<std::string, std::string> placed;  // "share i" -> node that took it
  std::map<std::string, std::string> failed;  // "share i" -> why it was not placed
  std::string left_to;  // only_if_first: the holder that comes first (and repairs), not us
};
struct RepairAllReply {
  std::string store;
  std::size_t keys = 0;      // maps kept here for the store
  std::size_t whole = 0;     // every share live already
  std::size_t repaired = 0;  // missing shares placed again
  std::map<std::string, std::string> failed;  // key -> why (or which shares were not placed)
};
struct RestoreReply {
  std::string key;
  std::string store;
};
// The daemon's own repairs of erasure-coded keys whose shares it holds.
struct RulesReply {
  std::optional<SwarmRules> rules;  // the version in force, if any
  std::string signer;
  std::vector<std::string> config_admins;
  RulesRefusals refused;
  NodeId self;
  // A push: whether it was adopted, else why not.
  std::optional<bool> adopted;
  std::string why;
};
struct RepairSweeps {
  std::int64_t interval_seconds = 0;  // 0: never
  std::uint64_t sweeps = 0, keys_checked = 0, repaired = 0, failed = 0;
  // What the last check of each erasure-coded key kept here found (by sweeps and by
  // `repair --all`); keys whose maps are gone leave at the next sweep.
  struct KeyShares {
    std::string store;
    std::size_t live = 0, n = 0;   // shares live after the check (and any repair) / all
    std::int64_t checked_at = 0;   // unix seconds
    std::string problem;           // why the check or repair failed, if it did
  };
  std::map<std::string, KeyShares> keys;
};
// Replicated swarm stores (node/replica_service.hpp): what the last sweep of each found.
struct ReplicaStatus {
  std::int64_t interval_seconds = 0;  // 0: no sweeps
  std::uint64_t sweeps = 0, asked = 0, taken = 0, take_failures = 0, trimmed = 0;
  bool in_hours = true;
  struct Store {
    std::string uuid;
    unsigned copies = 0;
    std::int64_t grace_seconds = 0;
    std::size_t held = 0;            // keys held here
    std::size_t below_target = 0;    // of those, held by fewer than `copies` of their keepers
    std::size_t fetching = 0;        // keys being fetched here
    std::size_t wanted_missing = 0;  // keys this node was asked to keep and does not hold yet
    std::vector<std::string> lost;   // candidates unseen for longer than the grace period
    std::int64_t swept_at = 0;       // unix seconds; 0: not swept yet
  };
  std::vector<Store> stores;
};
struct StatusReply {
  NodeId node;
  std::string state_dir;
  std::uint16_t port = 0;
  struct Swarm {
    std::string id;         // short, for people and logs
    std::string public_id;  // what a git-annex remote names the swarm by (reveals nothing)
    bool is_public = false;
  };
  std::vector<Swarm> swarms;
  struct Dht {
    std::string status;
    unsigned good_nodes = 0, dubious_nodes = 0, searches = 0;
    std::vector<std::string> public_addresses;
    std::size_t stored_values = 0, stored_bytes = 0;
    double disconnected_for = 0;  // seconds without a good DHT peer
    bool first_node = false;      // bootstrap none: alone until others join, as it should be
  } dht;
  Announcer::Status announce;
  RefusedValues refused;
  std::optional<PeerServerStats> peers_served;
  std::size_t downloads = 0;  // under way
  PoolStats links;            // this node's links to other members
  std::vector<Endpoint> endpoints;
  nat::NatMethod nat_method = nat::NatMethod::Auto;
  bool nat_applies = true;
  std::vector<Endpoint> confirmed;
  Reachability::Status reachability;
  std::optional<double> first_confirmed_after;
  RelayManager::Status relay;
  RepairSweeps repairs;
  ReplicaStatus replication;
  RulesReply rules;
  // The limits in force (the lower of the config's and the stores' dotfile) and use against them.
  struct Limits {
    std::string file;     // the dotfile's path
    std::string problem;  // why it was not applied, if it was not
    std::optional<std::uint64_t> storage;
    std::uint64_t stores_used = 0;
    double upload_rate = 0, download_rate = 0;  // bytes/s, 0: none
    std::optional<HoursWindow> hours;
    bool in_hours = true;  // now, local time
  } limits;
};

// The tunnel is open: this reply goes out, then the control connection carries the stream.
struct ConnectReply {
  NodeId node;      // the node reached
  std::string via;  // how: an endpoint, or a relay
};
using ConnectAnswer = std::function<void(Outcome<ConnectReply>, ControlResponder::Taker)>;

struct ControlHandlers {
  std::function<StatusReply()> status;
  std::function<void(const WhereisRequest&, Done<WhereisReply>)> whereis;
  std::function<void(const GetRequest&, ProgressFn, Done<GetReply>, OnGone)> get;
  std::function<void(const DiscoverRequest&, Done<DiscoverReply>)> discover;
  std::function<void(Done<PeersReply>)> peers;
  std::function<void(const StoreRequest&, ProgressFn, Done<StoreReply>)> store;
  std::function<void(const PresentRequest&, Done<PresentReply>)> present;
  std::function<void(const RemoveRequest&, Done<RemoveReply>)> remove;
  std::function<void(Done<TrashReply>)> trash;
  std::function<void(const RestoreRequest&, Done<RestoreReply>)> restore;
  std::function<void(const RepairRequest&, ProgressFn, Done<RepairReply>)> repair;
  std::function<void(const RepairAllRequest&, ProgressFn, Done<RepairAllReply>)> repair_all;
  std::function<void(const RulesPushRequest&, Done<RulesReply>)> rules_push;
  std::function<RulesReply()> rules_show;
  std::function<void(const ConnectRequest&, ConnectAnswer)> connect;
};

class ControlApi {
public:
  explicit ControlApi(ControlHandlers handlers) : handlers_(std::move(handlers)) {}
  void handle(const nlohmann::json& request, ControlResponder responder);

private:
  ControlHandlers handlers_;
};

nlohmann::json to_json(const Endpoint& e);
nlohmann::json to_json(const StatusReply& r);

}  // namespace annexswarm
