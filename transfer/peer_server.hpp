#pragma once
// Serves annex objects to authenticated swarm members: TCP listener, TLS, PeerLink, then
// requests, queued and answered one after another per link (PING and CANCEL take effect
// at once).
//  - A connection must finish TLS, HELLO and PROOF within the handshake deadline. Until it
//    has, it counts against a cap on unauthenticated links (per source address and in
//    all), never against the members' cap: silent sockets cannot lock members out.
//  - A member over the members' cap is told so (ERROR Busy, with when to come back)
//    instead of having its handshake torn.
//  - The accept loop backs off when the process runs out of file descriptors instead of
//    spinning.
//  - A member link with nothing asked and no frame for the idle deadline is closed; a
//    peer whose unsent replies pass a bound is not read from until they drain.
//  - Objects are read on a reader thread, straight into the frame being sent (one read
//    ahead of the send), never buffered whole. Manifests (SHA-256 per 1 MiB chunk, sent in
//    pages) are hashed on a hasher thread once per file version, and cached; requests for
//    one object share one hashing job, which stops when nobody asks for it any more; a
//    large object still being hashed is answered Busy with how far it got.
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/thread_pool.hpp>

#include <atomic>
#include <filesystem>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>

#include "protocol/annex_key.hpp"
#include "transfer/peer_link.hpp"
#include "transfer/rate_limiter.hpp"
#include "transfer/tunnel.hpp"

namespace annexswarm {

using peer::kManifestChunk;

inline constexpr std::size_t kMaxQueuedRequests = 64;  // per link; more get ERROR Busy

struct PeerServerLimits {
  std::size_t max_peers = 64;           // members served at once
  double upload_rate = 0;               // bytes per second over all links; 0 = unlimited
  double upload_rate_per_peer = 0;      // bytes per second on one link; 0 = unlimited
  std::chrono::milliseconds handshake_deadline{10000};  // TLS + HELLO + PROOF
  std::size_t max_unauthenticated = 128;               // links still proving themselves, in all
  std::size_t max_unauthenticated_per_address = 8;     // ... from one address
  // Connections over those two caps wait (unread, an fd each) for a slot, first come first
  // served, for at most handshake_deadline, instead of being cut off mid-handshake.
  std::size_t max_parked = 256;
  std::size_t max_parked_per_address = 64;
  std::chrono::milliseconds idle_deadline{300000};     // a member link with nothing to do
  std::size_t max_unsent_bytes = 4u << 20;             // replies waiting for the socket, per link
  std::chrono::milliseconds busy_retry{2000};          // the hint a member over the cap gets
  std::uint64_t large_object = 64u << 20;               // hashing more than this: answer Busy meanwhile
  std::size_t max_tunnels = 32;                         // OPENed streams at once, in all
  std::size_t max_tunnels_per_member = 4;               // ... to one member
  std::chrono::milliseconds tunnel_idle{600000};        // a tunnel with no byte either way
};

struct PeerServerStats {
  std::uint64_t links_accepted = 0;
  std::uint64_t links_refused = 0;  // TLS or membership failures, caps, timeouts
  std::uint64_t handshake_timeouts = 0;
  std::uint64_t busy_refusals = 0;  // members over the cap, told to come back
  std::uint64_t idle_evictions = 0;  // idle member links closed to let a waiting member in
  std::uint64_t accept_errors = 0;  // e.g. out of file descriptors
  std::uint64_t bytes_served = 0;
  std::uint64_t frames_paced = 0;  // DATA frames held back by an upload limit
  std::size_t links_open = 0;      // members served now
  std::size_t links_open_peak = 0;  // the most at once since the start
  std::size_t parked = 0;           // connections waiting for a handshake slot now
  std::uint64_t parked_total = 0;   // ... since the start
  std::uint64_t parked_timeouts = 0;  // ... that waited too long and were closed
  std::size_t unauthenticated = 0;  // connections still proving themselves
  std::uint64_t manifests_hashed = 0;
  std::size_t tunnels_open = 0;       // OPENed streams carried now
  std::uint64_t tunnels_refused = 0;  // OPENs refused (not exposed, caps, unreachable)
};

// Every chunk's SHA-256 and the root over them (what MANIFEST pages are cut from).
struct FullManifest {
  std::uint64_t size = 0;
  Bytes hashes;
  Bytes root;
};

class PeerServer {
public:
  using Clock = std::chrono::steady_clock;
  // Where the object of a key is on disk, if this node holds it in the repository or
  // swarm store with that annex UUID (empty: in any of them).
  using ObjectLocator =
      std::function<std::optional<std::filesystem::path>(const AnnexKey&, std::string_view repo)>;
  // A member asks to remove a key from one of this node's swarm stores. The callee checks
  // the asker's power (the store's write capability) and answers true (removed), false
  // (not there), or a refusal with its error code.
  struct StoreRemoval {
    NodeId asker;
    std::size_t swarm = 0;
    std::string key;  // a valid annex key
    std::string store;
    Bytes capability;
  };
  struct Refusal {
    peer::ErrorCode code;
    std::string why;
  };
  using StoreRemover = std::function<std::variant<bool, Refusal>(const StoreRemoval&)>;

  PeerServer(asio::io_context& io, std::shared_ptr<TlsCredentials> credentials, std::vector<SwarmToken> swarms,
             ObjectLocator locate, PeerServerLimits limits = {});
  ~PeerServer();
  Result<std::uint16_t> listen(const asio::ip::address& address, std::uint16_t port);
  void close();
  PeerServerStats stats() const;
  // New upload limits (a config reload); links opened from now on get the per-peer one.
  void set_upload_limits(double rate, double rate_per_peer) {
    limits_.upload_rate = rate;
    limits_.upload_rate_per_peer = rate_per_peer;
    upload_ = RateLimiter(rate);
  }
  // Without one, REMOVE is refused.
  void on_remove(StoreRemover remover) { remove_ = std::move(remover); }
  // A member asks this node to keep a share (TAKE): the callee checks the asker's power
  // and its own room, fetches the share from the asker and answers its size, or a refusal.
  // Answered beside the request queue (it may take minutes); a few at once per link.
  struct ShareTake {
    NodeId asker;
    std::size_t swarm = 0;
    peer::Take take;
  };
  using ShareTaker = std::function<void(const ShareTake&, std::function<void(std::variant<std::uint64_t, Refusal>)>)>;
  void on_take(ShareTaker taker) { take_ = std::move(taker); }
  // An object being fetched here (a replica filling a chain of keepers): the chunks that
  // are in may be served before the whole object is. MANIFEST and GET of a key not held
  // fall back to it; what is not in yet is answered Busy, to be asked again shortly.
  struct PartialObject {
    std::filesystem::path path;                    // the partial file, sized to the object
    std::shared_ptr<const FullManifest> manifest;  // null: not known yet
    std::function<bool(std::uint64_t offset, std::uint64_t length)> has;
  };
  using PartialLocator = std::function<std::optional<PartialObject>(const AnnexKey&)>;
  void on_partial(PartialLocator fn) { partial_ = std::move(fn); }
  // A member asks for a stream to a service (OPEN): the callee checks that its owner
  // exposes that service and connects to it; `done` gets the connection, or why not (sent
  // to the asker). The caps on tunnels are checked here first. Without one, OPEN is refused.
  struct OpenRequest {
    NodeId asker;
    std::size_t swarm = 0;
    std::string service;
  };
  using Opener = std::function<void(const OpenRequest&, std::function<void(Result<Tunnel::LocalSocket>)>)>;
  void on_open(Opener fn) { open_ = std::move(fn); }
  // Dials `host`:`port` and checks that member `node` of swarm number `swarm` answers
  // there (DIAL_BACK); `done` gets whether it did, or why not. Without one, DIAL_BACK is
  // answered with a refusal.
  // `observed`: the asker's address as seen here; `host`: where it asks to be dialled
  // (the observed address when it named none). The policy is the callee's.
  using DialBackFn = std::function<void(const NodeId& node, std::size_t swarm, const std::string& observed,
                                        const std::string& host, std::uint16_t port,
                                        std::function<void(Result<bool>)> done)>;
  void on_dial_back(DialBackFn fn) { dial_back_ = std::move(fn); }
  // A relay's part (see relay/): RESERVE and CONNECT requests, and plain connections
  // that start with kCircuitMagic and a token. Without them both are refused.
  struct RelayHooks {
    std::function<Result<std::uint32_t>(const NodeId& node, std::function<void(const peer::Frame&)> notify,
                                        std::weak_ptr<void> alive)>
        reserve;
    std::function<Result<Bytes>(const NodeId& from, const NodeId& target)> connect;
    std::function<void(asio::ip::tcp::socket socket, Bytes token)> join;
  };
  void on_relay(RelayHooks hooks) { relay_ = std::move(hooks); }
  // Serves a connection that did not come through our listener (our end of a relay
  // circuit) like any accepted one: TLS, HELLO and PROOF first.
  void adopt(asio::ip::tcp::socket socket, const std::string& from);
  // Told about every member link accepted from the network: the address it came from,
  // and the address of ours it reached (a member reaching it proves it reachable).
  void on_member(std::function<void(const std::string& remote_ip, const asio::ip::tcp::endpoint& local)> fn) {
    on_member_ = std::move(fn);
  }
  // Told about every link refused (failed TLS or membership, a cap, a timeout), with why.
  void on_refused(std::function<void(const std::string& why)> fn) { on_refused_ = std::move(fn); }

  // Test-only fault switches: corrupt every DATA frame this server sends; hang up every
  // link once it has served `bytes` (a seeder that vanishes mid-transfer).
  void corrupt_data_for_test(bool on) { corrupt_for_test_ = on; }
  void claim_everything_for_test(bool on) { claim_everything_for_test_ = on; }
  void hang_up_after_for_test(std::uint64_t bytes) { hang_up_after_for_test_ = bytes; }

private:
  class Session;
  struct ManifestCacheKey {
    std::string path;
    std::uint64_t dev, inode, size;
    std::int64_t mtime_ns;
    friend auto operator<=>(const ManifestCacheKey&, const ManifestCacheKey&) = default;
  };
  struct HashJob;
  using ManifestFn = std::function<void(Result<std::shared_ptr<const FullManifest>>)>;

  void accept();
  void accept_later();
  void classify(std::shared_ptr<asio::ip::tcp::socket> socket, std::string from, std::string address,
                std::shared_ptr<asio::steady_timer> deadline);
  void serve_tls(asio::ip::tcp::socket socket, const std::string& from, const std::string& address);
  void refused(const std::string& why);
  // A connection that got a handshake slot (counted in): a relay's first bytes decide, or TLS.
  void admit(asio::ip::tcp::socket socket, const std::string& from, const std::string& address);
  bool has_slot(const std::string& address) const;
  void leave_unauthenticated(const std::string& address);
  void unpark();       // slots came free: admit who waits, in order
  // At the member cap: closes the member link quiet the longest (5 s at least; never one holding a relay reservation), if any.
  void evict_an_idle_member();
  void expire_parked();
  // The object's manifest: cached, or hashed now. For a large object still being hashed,
  // `progress` hears how far it got at once (the asker comes back); `done` runs when the
  // job ends, for every asker.
  void manifest_of(const std::filesystem::path& path, ManifestFn done,
                   std::function<void(std::uint64_t hashed, std::uint64_t size)> progress);

  asio::io_context& io_;
  std::shared_ptr<TlsCredentials> credentials_;
  std::vector<SwarmToken> swarms_;
  ObjectLocator locate_;
  StoreRemover remove_;
  ShareTaker take_;
  PartialLocator partial_;
  Opener open_;
  std::map<NodeId, std::size_t> tunnels_;  // open, by member
  DialBackFn dial_back_;
  RelayHooks relay_;
  PeerServerLimits limits_;
  asio::ip::tcp::acceptor acceptor_;
  asio::steady_timer accept_backoff_;
  std::chrono::milliseconds accept_delay_{0};
  asio::thread_pool hasher_{1};
  asio::thread_pool reader_{1};
  PeerServerStats stats_;
  RateLimiter upload_;
  bool corrupt_for_test_ = false;
  bool claim_everything_for_test_ = false;
  std::uint64_t hang_up_after_for_test_ = 0;
  bool closed_ = false;
  std::function<void(const std::string&)> on_refused_;
  std::function<void(const std::string&, const asio::ip::tcp::endpoint&)> on_member_;
  std::shared_ptr<int> lifetime_ = std::make_shared<int>(0);  // lets posted work see the server is gone
  std::shared_ptr<std::size_t> open_links_ = std::make_shared<std::size_t>(0);
  std::map<std::string, std::size_t> unauthenticated_;  // per address
  std::size_t unauthenticated_total_ = 0;
  struct Parked {
    asio::ip::tcp::socket socket;
    std::string from, address;
    std::chrono::steady_clock::time_point until;
  };
  std::list<Parked> parked_;                     // oldest first
  std::map<std::string, std::size_t> parked_by_address_;
  asio::steady_timer park_timer_;
  bool park_timer_armed_ = false;
  bool unpark_posted_ = false;
  std::vector<std::weak_ptr<Session>> sessions_;  // closed with the server
  std::list<std::pair<ManifestCacheKey, std::shared_ptr<const FullManifest>>> manifests_;  // most recent first
  std::size_t manifest_bytes_ = 0;
  std::map<ManifestCacheKey, std::shared_ptr<HashJob>> jobs_;
};

// SHA-256 of each kManifestChunk-sized chunk of a file, and the root over them. Stops
// (with an error) when `keep_going` says so; `hashed` counts the bytes done.
Result<FullManifest> hash_manifest(const std::filesystem::path& file, std::atomic<std::uint64_t>* hashed = nullptr,
                                   const std::function<bool()>& keep_going = {});

}  // namespace annexswarm
