#include "node/endpoint_book.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>

#include <algorithm>
#include <sstream>

#include "node/log.hpp"
#include "node/state_files.hpp"
#include "protocol/ip_address.hpp"

namespace annexswarm {
using namespace std::chrono_literals;

namespace {
constexpr auto kOfflineRetry = 10s;
}

std::vector<std::string> interface_addresses() {
  std::vector<std::string> out;
  ifaddrs* ifs = nullptr;
  if (getifaddrs(&ifs) != 0) return out;
  for (auto* i = ifs; i; i = i->ifa_next) {
    if (!i->ifa_addr || !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK)) continue;
    char host[INET6_ADDRSTRLEN] = {};
    if (i->ifa_addr->sa_family == AF_INET)
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, host, sizeof host);
    else if (i->ifa_addr->sa_family == AF_INET6)
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr, host, sizeof host);
    else
      continue;
    out.emplace_back(host);
  }
  freeifaddrs(ifs);
  return out;
}

std::vector<Endpoint> local_endpoints(const std::string& listen, std::uint16_t port,
                                      const std::vector<std::string>& interfaces) {
  // Loopback and LAN addresses; public ones only as candidates until a dial-back confirms
  // them (members never dial a candidate).
  std::vector<Endpoint> out;
  auto add = [&](const std::string& host) {
    auto scope = address_scope(host);
    if (scope == AddressScope::Loopback) out.push_back({EndpointKind::Loopback, host, port});
    else if (scope == AddressScope::Private) out.push_back({EndpointKind::Lan, host, port});
    else if (scope == AddressScope::Global) out.push_back({EndpointKind::Candidate, host, port});
  };
  if (!listen.empty() && address_scope(listen) != AddressScope::Unspecified) {
    add(listen);
    return out;
  }
  for (const auto& host : interfaces)
    if (out.size() < kMaxEndpoints) add(host);
  return out;
}

EndpointBook::EndpointBook(Timers& timers, Settings settings, Mediator mediator)
    : timers_(timers), settings_(std::move(settings)), mediator_(std::move(mediator)),
      refresh_timer_(timers.make_timer()) {}

void EndpointBook::start() {
  started_ = timers_.now();
  refresh();
}

void EndpointBook::stop() {
  stopping_ = true;
  refresh_timer_->cancel();
}

void EndpointBook::refresh() {
  if (stopping_) return;
  publish();
  // Until the DHT has peers a put reaches nobody: retry soon, then settle to the refresh.
  auto next = mediator_.connected() ? std::chrono::duration_cast<Timers::Clock::duration>(settings_.refresh)
                                    : std::chrono::duration_cast<Timers::Clock::duration>(kOfflineRetry);
  refresh_timer_->schedule(next, [this] { refresh(); });
}

bool EndpointBook::set_confirmed(std::vector<Endpoint> confirmed) {
  if (confirmed == confirmed_) return false;
  confirmed_ = std::move(confirmed);
  if (!confirmed_.empty() && !first_confirmed_after_)
    first_confirmed_after_ = std::chrono::duration<double>(timers_.now() - started_).count();
  publish();
  return true;
}

bool EndpointBook::add_confirmed(const Endpoint& endpoint) {
  if (std::find(confirmed_.begin(), confirmed_.end(), endpoint) != confirmed_.end()) return false;
  auto next = confirmed_;
  next.push_back(endpoint);
  return set_confirmed(std::move(next));
}

bool EndpointBook::set_relay_endpoints(std::vector<Endpoint> endpoints) {
  if (endpoints == relay_) return false;
  relay_ = std::move(endpoints);
  publish();
  return true;
}

void EndpointBook::set_relay_offered(bool offered) {
  if (offered == relay_offered_) return;
  relay_offered_ = offered;
  publish();
}

std::vector<Endpoint> EndpointBook::advertised() const {
  // Dialling order: LAN, public and mapped, then relays.
  auto endpoints = settings_.relay_only ? std::vector<Endpoint>{} : mediator_.local();
  // A candidate once confirmed is advertised as what it is.
  std::erase_if(endpoints, [&](const Endpoint& e) {
    return e.kind == EndpointKind::Candidate && std::any_of(confirmed_.begin(), confirmed_.end(), [&](const Endpoint& c) {
             return c.host == e.host && c.port == e.port;
           });
  });
  for (const auto& list : {confirmed_, relay_})
    for (const auto& e : list)
      if (endpoints.size() < kMaxEndpoints && std::find(endpoints.begin(), endpoints.end(), e) == endpoints.end())
        endpoints.push_back(e);
  return endpoints;
}

std::vector<Endpoint> EndpointBook::all() const {
  auto out = mediator_.local();
  out.insert(out.end(), confirmed_.begin(), confirmed_.end());
  out.insert(out.end(), relay_.begin(), relay_.end());
  return out;
}

std::uint64_t offered_store_space(std::optional<std::uint64_t> configured, std::uint64_t used,
                                  std::uint64_t available, std::uint64_t capacity) {
  std::uint64_t reserve = (1ull << 30) + capacity / 20;
  std::uint64_t room = available > reserve ? available - reserve : 0;
  if (!configured) return room;
  return std::min(room, *configured > used ? *configured - used : 0);
}

void EndpointBook::set_store_offer(std::uint64_t bytes) {
  auto old = store_offer_;
  store_offer_ = bytes;
  auto moved = bytes > old ? bytes - old : old - bytes;
  if ((old == 0) != (bytes == 0) || moved > std::max<std::uint64_t>(old / 16, 64ull << 20)) publish();
}

void EndpointBook::publish() {
  if (stopping_) return;
  ContactRecord contact{settings_.self, kProtocolVersion, relay_offered_ ? kCapabilityRelay : 0u, advertised(),
                        store_offer_};
  mediator_.put_contact(contact, relay_offered_);
}

}  // namespace annexswarm
