#pragma once
// One download as a state machine with no I/O and no clock of its own: events go in (a
// link came up or broke, a manifest page, a refusal, a chunk arrived or was checked, the
// whole object was checked, time passed) and actions come out (dial, ask for a page or a
// chunk, cancel, drop a peer, open the partial file, check the object, finish, fail). The
// Fetcher carries the actions out and feeds back what happened; tests drive it in virtual
// time.
//
// How it decides:
//  - Every source is dialled at once. A peer's first manifest page names the object
//    (size, chunk size, root = SHA-256 over every chunk hash); peers that name the same
//    object back the same candidate. The candidate with most backers is chosen once every
//    peer has answered, or a grace period after the first answer: a silent peer holds
//    nobody back. Its pages are fetched from its backers and checked against its root.
//  - Chunks go to the chosen candidate's backers, several in flight per peer, faster
//    peers getting more (ChunkScheduler); a chunk that fails its check costs the peer
//    that sent it; a peer whose requests see no frame for the stall period is dropped and
//    its chunks go to the others; a link that breaks is dialled again (twice at most).
//  - A busy peer is asked again after the time it names (a seeder still hashing the
//    object says so, with how far it got).
//  - When every chunk is in, the whole object is checked against the key. If it does not
//    match, the candidate's backers all served a bad copy: they are dropped, and the next
//    candidate is tried, keeping every chunk that also matches it. A good copy online
//    always wins.
//  - Every wait has a deadline; with every peer gone the download fails with each peer's
//    reason, and the partial file stays for the next try.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "protocol/bytes.hpp"
#include "protocol/peer_frames.hpp"
#include "transfer/chunk_scheduler.hpp"
#include "transfer/chunk_sink.hpp"

namespace annexswarm {

struct DownloadLimits {
  std::size_t window = 4;  // chunk requests in flight per peer
  std::chrono::milliseconds choose_grace{1000};   // after the first manifest, for the others
  std::chrono::milliseconds page_deadline{20000};  // a manifest page unanswered this long: silent
  std::chrono::milliseconds stall{30000};          // requests out and no frame this long: stalled
  int max_redials = 2;
  std::chrono::milliseconds redial_backoff{1000};
  std::chrono::milliseconds max_busy_wait{30 * 60 * 1000};  // per peer, since it last delivered a chunk
  std::uint32_t chunk_size = peer::kManifestChunk;         // the protocol's
  // In order (a reader follows the file as it grows): see ChunkScheduler's head_lag; 0: off.
  std::size_t head_lag = 0;
};

class DownloadMachine {
public:
  using Clock = std::chrono::steady_clock;
  using PeerId = std::size_t;  // index of the source
  using RequestId = std::uint64_t;

  // ---- Events ----
  struct Start {};
  struct Connected {
    PeerId peer;
  };
  struct ConnectFailed {
    PeerId peer;
    std::string why;
  };
  struct LinkLost {
    PeerId peer;
    std::string why;
  };
  struct PeerBusy {  // the peer closed its link saying it serves all it can: come back later
    PeerId peer;
    std::string why;
    std::chrono::milliseconds retry_after;
  };
  struct PageArrived {
    PeerId peer;
    RequestId request;
    peer::ManifestReply reply;
  };
  struct Refused {
    PeerId peer;
    RequestId request;
    peer::ErrorCode code;
    std::string message;
    std::uint32_t retry_after_ms = 0;
  };
  struct DataSeen {  // a DATA frame of some request of this peer: it is alive
    PeerId peer;
  };
  struct ChunkArrived {  // every byte of the request is in; being checked now
    PeerId peer;
    RequestId request;
  };
  struct ChunkChecked {
    PeerId peer;
    std::size_t chunk;
    ChunkSink::Verdict verdict;
    std::size_t bytes;
  };
  struct SinkOpened {
    std::vector<bool> done;  // chunks already in the partial file and verified
    std::uint64_t resumed_bytes = 0;
  };
  struct ObjectChecked {
    bool matches = false;
    // When it does not match: the chunks that fail the manifest (missing again now).
    // None: every chunk matches, so the manifest itself is wrong.
    std::vector<std::size_t> corrupt_chunks;
  };
  struct LocalFailure {  // the disk: nothing a peer did
    std::string why;
  };
  struct Tick {};
  using Event = std::variant<Start, Connected, ConnectFailed, LinkLost, PeerBusy, PageArrived, Refused, DataSeen, ChunkArrived,
                             ChunkChecked, SinkOpened, ObjectChecked, LocalFailure, Tick>;

  // ---- Actions ----
  struct Dial {
    PeerId peer;
  };
  struct RequestPage {
    PeerId peer;
    RequestId request;
    std::uint32_t page;
  };
  struct RequestChunk {
    PeerId peer;
    RequestId request;
    std::size_t chunk;
    std::uint64_t offset;
    std::uint64_t length;
  };
  struct Cancel {
    PeerId peer;
    RequestId request;
  };
  struct Drop {  // stop using the peer; `bad_data`: it sent what fails a check
    PeerId peer;
    std::string why;
    bool bad_data = false;
  };
  struct OpenSink {  // (re)open the partial file for this manifest, keeping what matches it
    ObjectManifest manifest;
  };
  struct CheckObject {};
  struct Finish {};
  struct Fail {
    std::string why;
  };
  using Action = std::variant<Dial, RequestPage, RequestChunk, Cancel, Drop, OpenSink, CheckObject, Finish, Fail>;

  struct Progress {
    std::uint64_t bytes_done = 0;  // verified, resumed included
    std::uint64_t bytes_total = 0;
    std::size_t peers = 0;         // serving chunks now
    std::size_t waiting = 0;       // busy peers waited for
    std::string waiting_why;       // what a busy peer said (e.g. it is still hashing)
    std::chrono::milliseconds stalled{0};  // since the last verified chunk
  };
  struct PeerReport {
    std::uint64_t bytes = 0;  // verified bytes it sent
    std::string dropped;      // why it was dropped (empty: not dropped)
    std::string redialled;    // why its link was dialled again
    bool bad_data = false;    // dropped for data that failed a check (a liar, or a bad disk)
    bool absent = false;      // dropped because it said it does not hold the object
  };

  // `names` name the peers in messages (short node ids); `what` names the object (the key).
  DownloadMachine(std::vector<std::string> names, std::string what, std::optional<std::uint64_t> key_size,
                  DownloadLimits limits = {}, std::uint64_t jitter_seed = 1);

  // Only a copy whose manifest has this root is taken (a share key names its root).
  void pin_root(Bytes root) { pinned_root_ = std::move(root); }

  std::vector<Action> handle(const Event& event, Clock::time_point now);
  // When to call handle(Tick) next; nothing: no deadline pending.
  std::optional<Clock::time_point> next_deadline() const;
  Progress progress(Clock::time_point now) const;
  const std::vector<PeerReport>& report() const { return report_; }
  std::uint64_t bytes_fetched() const { return bytes_fetched_; }
  std::uint64_t bytes_resumed() const { return bytes_resumed_; }
  bool finished() const { return finished_; }

private:
  enum class State { Idle, Dialing, AwaitingManifest, Ready, Waiting, Gone };
  struct Peer {
    State state = State::Idle;
    int redials = 0;
    bool redialing = false;
    Clock::time_point retry_at{};
    Clock::time_point last_frame{};
    Clock::duration busy_waited{};
    std::optional<std::size_t> candidate;  // the manifest it backs
    std::size_t in_flight = 0;             // chunk requests sent and not yet checked
    bool resume_page0 = false;             // after a busy wait: ask for page 0 again
    bool busy = false;                     // waiting because it said it was busy
  };
  struct Candidate {
    std::uint64_t size = 0;
    std::uint32_t chunk = 0;
    Bytes root;
    std::uint32_t pages = 0;
    std::vector<PeerId> backers;
    std::vector<std::optional<Bytes>> page_hashes;
    std::vector<std::optional<PeerId>> page_from;
    bool bad = false;
  };
  enum class Kind { Page, Chunk };
  struct Request {
    PeerId peer;
    Kind kind;
    std::uint32_t page = 0;
    std::size_t chunk = 0;
    Clock::time_point deadline{};  // pages only
    bool arrived = false;          // chunks: bytes in, check pending
  };

  void on(const Start&);
  void on(const Connected&);
  void on(const ConnectFailed&);
  void on(const LinkLost&);
  void on(const PeerBusy&);
  void on(const PageArrived&);
  void on(const Refused&);
  void on(const DataSeen&);
  void on(const ChunkArrived&);
  void on(const ChunkChecked&);
  void on(const SinkOpened&);
  void on(const ObjectChecked&);
  void on(const LocalFailure&);
  void on(const Tick&);

  RequestId ask_page(PeerId peer, std::uint32_t page);
  bool manifest_ready() const;
  void maybe_choose();
  void choose();
  void fetch_pages();
  void manifest_complete();
  void pump();
  void gone(PeerId peer, const std::string& why, bool bad_data);
  void lost(PeerId peer, const std::string& why);
  void release_requests(PeerId peer);
  void check_all_gone();
  void fail(const std::string& why);
  std::string dropped_summary() const;
  bool serving(PeerId peer) const;
  std::chrono::milliseconds jitter(std::chrono::milliseconds base);

  DownloadLimits limits_;
  std::vector<std::string> names_;
  std::string what_;
  std::optional<std::uint64_t> key_size_;
  std::optional<Bytes> pinned_root_;
  std::vector<Peer> peers_;
  std::vector<PeerReport> report_;
  std::vector<Candidate> candidates_;
  std::optional<std::size_t> chosen_;
  std::optional<Clock::time_point> choose_at_;
  bool sink_open_ = false;
  bool checking_ = false;
  bool finished_ = false;
  std::optional<ChunkScheduler> scheduler_;
  std::vector<std::optional<PeerId>> stored_by_;  // who sent each chunk in the sink (none: resumed)
  std::map<RequestId, Request> requests_;
  RequestId next_request_ = 1;
  std::uint64_t bytes_fetched_ = 0;
  std::uint64_t bytes_resumed_ = 0;
  std::string waiting_why_;
  Clock::time_point now_{};
  Clock::time_point last_progress_{};
  std::uint64_t jitter_state_;
  std::vector<Action> out_;
};

}  // namespace annexswarm
