#pragma once
// The endpoint book: the one owner of how this node can be reached — its local (loopback
// and LAN) endpoints, the public and mapped ones a dial-back confirmed, and the "via
// relay R" ones of the reservations it holds — and the only code that publishes the
// contact record. Any change is published at once; the record is put again every
// refresh period (SwarmDirectory stamps each put with the time and the next sequence number).
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "node/timers.hpp"
#include "protocol/records.hpp"

namespace annexswarm {

// The addresses of this host's interfaces that are up (loopback interfaces left out).
std::vector<std::string> interface_addresses();
// What a node offers erasure-coded stores: the configured space less what its stores use
// (unset: no cap), never more than the free space less a reserve of 1 GiB and 5% of the
// file system.
std::uint64_t offered_store_space(std::optional<std::uint64_t> configured, std::uint64_t used,
                                  std::uint64_t available, std::uint64_t capacity);

// Loopback and LAN endpoints at `port`: the `listen` address when it names one, else
// those of every interface.
std::vector<Endpoint> local_endpoints(const std::string& listen, std::uint16_t port,
                                      const std::vector<std::string>& interfaces);

class EndpointBook {
public:
  struct Settings {
    NodeId self;
    std::chrono::seconds refresh{3000};
    bool relay_only = false;  // test only: advertise no direct endpoint
  };
  struct Mediator {
    std::function<std::vector<Endpoint>()> local;  // loopback and LAN endpoints now
    std::function<void(const ContactRecord&, bool relay)> put_contact;
    std::function<bool()> connected;  // the DHT has peers
  };

  EndpointBook(Timers& timers, Settings settings, Mediator mediator);
  void start();  // publishes now, then every refresh period (sooner while offline)
  void stop();

  // From the reachability check: the public and mapped endpoints a helper reached.
  // Returns whether anything changed (and so was published).
  bool set_confirmed(std::vector<Endpoint> confirmed);
  // A member reached this endpoint from the internet by itself.
  bool add_confirmed(const Endpoint& endpoint);
  bool set_relay_endpoints(std::vector<Endpoint> endpoints);
  void set_relay_offered(bool offered);
  // Bytes offered to erasure-coded stores; published when it moves by more than a
  // sixteenth (or 64 MiB), or to or from none, so a filling disk does not flood the DHT.
  void set_store_offer(std::uint64_t bytes);
  // Before start(): the offer the first record carries.
  void set_store_offer_quietly(std::uint64_t bytes) { store_offer_ = bytes; }
  std::uint64_t store_offer() const { return store_offer_; }

  const std::vector<Endpoint>& confirmed() const { return confirmed_; }
  const std::vector<Endpoint>& relay_endpoints() const { return relay_; }
  bool relay_offered() const { return relay_offered_; }
  bool reachable() const { return !confirmed_.empty(); }
  // Seconds from start() to the first confirmed endpoint.
  std::optional<double> first_confirmed_after() const { return first_confirmed_after_; }
  // Everything, in dialling order: local, confirmed, relays (what the record holds).
  std::vector<Endpoint> advertised() const;
  // For `status`: local endpoints (even in relay-only mode), confirmed, relays.
  std::vector<Endpoint> all() const;

  void publish();

private:
  void refresh();

  Timers& timers_;
  Settings settings_;
  Mediator mediator_;
  std::vector<Endpoint> confirmed_;
  std::vector<Endpoint> relay_;
  bool relay_offered_ = false;
  std::uint64_t store_offer_ = 0;
  bool stopping_ = false;
  Timers::Clock::time_point started_{};
  std::optional<double> first_confirmed_after_;
  std::unique_ptr<Timer> refresh_timer_;
};

}  // namespace annexswarm
