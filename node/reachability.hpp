#pragma once
// Can other nodes dial this one, and at which addresses? Other members are asked to dial
// us back (DIAL_BACK) at each candidate endpoint: the port mapped on the home router,
// public interface addresses, and wherever the helper sees us. Only endpoints a helper
// reached go into the contact record (through the endpoint book). The check runs at
// start, when the mapping or the external address changes, when the DHT connects, and
// every check period; a member coming in from the internet to a public address of ours
// confirms that address by itself (a public node whose peers all sit behind NAT could
// never be dialled back otherwise).
//
// decide() is the pure part: what a round of answers means. Reachability drives it.
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <asio/ip/tcp.hpp>

#include "nat/port_mapper.hpp"
#include "node/endpoint_book.hpp"
#include "node/member_address.hpp"
#include "node/timers.hpp"
#include "protocol/peer_frames.hpp"
#include "transfer/fetcher.hpp"

namespace annexswarm {

struct ReachProbe {
  Endpoint endpoint;  // host empty: the address the helper sees us at
  bool ok = false;
  std::vector<std::string> why;  // per helper, when not ok
};

struct ReachRound {
  std::vector<ReachProbe> probes;
  std::string observed;  // where the (first answering) helper sees us
  std::size_t answered = 0;
  std::size_t asked = 0;
  std::string helper_errors;
  std::vector<Endpoint> mapped_now;  // mapped endpoints as they are at the end of the round
  std::string nat_note;              // why there is no mapping, for the summary
};

struct ReachVerdict {
  bool learned = false;  // false: no helper answered, so keep what was confirmed
  std::string observed;  // where a helper sees us
  std::vector<Endpoint> confirmed;  // one per address and port, first probe first
  std::vector<ReachProbe> probes;   // with the observed address filled in
  std::string summary;              // one line for status and the log
};

ReachVerdict decide(ReachRound round);

// Dial-back helpers: the bootstrap nodes' addresses, resolved (their peer port has the
// DHT port's number by default), accepting whichever member answers there.
void bootstrap_helpers(asio::io_context& io, const std::vector<std::string>& bootstrap, std::size_t max,
                       std::function<void(std::vector<FetchSource>)> done);
// Dial-back helpers from the members' contact records: those with a confirmed public or
// mapped endpoint first (those known only by LAN addresses answer only from their LAN).
std::vector<FetchSource> rank_helpers(const std::vector<Member>& members, const SelfAddress& self, std::size_t max);

// Why this node has no port mapping, in a few words; empty when it has one.
std::string nat_note(const nat::PortMapper* mapper, nat::NatMethod configured);

class Reachability {
public:
  struct Settings {
    std::string listen;  // empty: all interfaces
    std::uint16_t peer_port = 0;
    nat::NatMethod nat = nat::NatMethod::Auto;
    std::chrono::seconds check_every{1800};
    bool enabled = true;  // false: loopback-only node, or a test that wants relays only
    std::string disabled_why;
    bool in_swarm = true;  // no swarm, no helper to ask
    // Set by `advertise`: the public endpoints to check instead of the interfaces' (at the
    // peer port), and the port to check where a helper sees this node (0: the peer port).
    std::vector<Endpoint> advertised;
    std::uint16_t observed_port = 0;
  };
  struct Mediator {
    // Members to ask: the bootstrap nodes (from_dht false), or members found on the DHT.
    std::function<void(bool from_dht, std::function<void(std::vector<FetchSource>)>)> helpers;
    std::function<void(const FetchSource& helper, const peer::DialBack& request,
                       std::function<void(Result<peer::Frame>)> answer)>
        ask;
    std::function<std::vector<std::string>()> interfaces;
    std::function<void()> after_verdict;  // every verdict that learned something
  };
  struct Status {
    std::string summary;
    std::vector<ReachProbe> probes;
    std::string observed;
    bool checking = false;
    std::optional<std::chrono::seconds> checked_ago;
    const nat::PortMapper* mapper = nullptr;
  };

  // `mapper` may be null (no port mapping).
  Reachability(Timers& timers, EndpointBook& book, std::unique_ptr<nat::PortMapper> mapper, Settings settings,
               Mediator mediator);
  void start();
  // Stops checking; removes the port mappings, then calls `done`.
  void stop(std::function<void()> done);
  void check(const std::string& why);
  void reached_from_outside(const std::string& remote_ip, const asio::ip::tcp::endpoint& local);
  std::vector<Endpoint> candidates() const;
  Status status() const;
  const Settings& settings() const { return settings_; }
  void set_check_every(std::chrono::seconds period) { settings_.check_every = period; }

private:
  void ask_helpers(bool from_dht, std::string earlier_errors);
  void finish(ReachRound round);

  Timers& timers_;
  EndpointBook& book_;
  std::unique_ptr<nat::PortMapper> mapper_;
  Settings settings_;
  Mediator mediator_;
  std::vector<ReachProbe> probes_;
  std::string observed_;
  std::string summary_ = "not checked yet";
  bool running_ = false;
  bool stopping_ = false;
  std::string again_;  // why to check again once the running check ends
  std::optional<Timers::Clock::time_point> checked_at_;
  std::chrono::seconds retry_{10};
  std::unique_ptr<Timer> timer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// The other side of a reachability check: dial the asker back where it asks, and say
// whether it answered there as itself. A member must not be able to aim this node's dials
// at anything else, so (dial_back_allowed):
//  - the target is the address this node sees the asker at (any port: it is the asker's
//    own address), or an endpoint (address and port) in the asker's signed contact record
//    (a private one only when the asker itself is seen at a private address);
//  - never loopback, link-local, reserved or unspecified, never one of this node's own
//    addresses;
//  - at most kPerMemberPerMinute dial-backs per member per minute, kMaxDialBacks at once;
//  - every failure, refused or dialled, gives the asker one reason (kGenericFailure),
//    so the answers tell it nothing about what listens near this node.
struct DialBackAsk {
  std::string observed;  // the asker's address as this node's peer server sees it
  std::string host;      // where to dial (an IP literal)
  std::uint16_t port = 0;
};
bool dial_back_allowed(const DialBackAsk& ask, const std::vector<std::string>& own_addresses,
                       const std::vector<Endpoint>& asker_contact);

class DialBackResponder {
public:
  static constexpr std::size_t kMaxDialBacks = 8;
  static constexpr std::size_t kPerMemberPerMinute = 20;
  static constexpr std::string_view kGenericFailure = "could not reach you there";
  struct Mediator {
    std::function<std::vector<std::string>()> own_addresses;
    // The asker's contact record endpoints (empty when none is found).
    std::function<void(const NodeId&, std::size_t swarm, std::function<void(std::vector<Endpoint>)>)> contact;
  };
  DialBackResponder(Timers& timers, std::shared_ptr<PeerDialer> dialer, std::vector<SwarmToken> swarms,
                    Mediator mediator)
      : timers_(timers), dialer_(std::move(dialer)), swarms_(std::move(swarms)), mediator_(std::move(mediator)) {}
  ~DialBackResponder() { *alive_ = false; }
  DialBackResponder(const DialBackResponder&) = delete;
  DialBackResponder& operator=(const DialBackResponder&) = delete;
  void dial_back(const NodeId& node, std::size_t swarm, const DialBackAsk& ask, std::function<void(Result<bool>)> done);
  std::uint64_t refused() const { return refused_; }

private:
  void dial(const NodeId& node, std::size_t swarm, const DialBackAsk& ask, std::function<void(Result<bool>)> done);
  // Every refusal: counted, logged for this node's owner, one reason for the asker.
  void refuse_dial(const NodeId& node, const DialBackAsk& ask, const char* why,
                   const std::function<void(Result<bool>)>& done);

  Timers& timers_;
  std::shared_ptr<PeerDialer> dialer_;
  std::vector<SwarmToken> swarms_;
  Mediator mediator_;
  std::size_t in_flight_ = 0;
  std::map<NodeId, std::vector<Timers::Clock::time_point>> recent_;  // per member, the last minute's asks
  std::uint64_t refused_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace annexswarm
