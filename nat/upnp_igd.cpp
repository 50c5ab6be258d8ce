// The UPnP IGD backend, over miniupnpc: SSDP discovery, then SOAP calls to the router's
// WANIPConnection service.
#include <miniupnpc/miniupnpc.h>
#include <miniupnpc/upnpcommands.h>
#include <miniupnpc/upnperrors.h>

#include <random>
#include <string>

#include "nat/port_mapping.hpp"

namespace annexswarm::nat {
namespace {

constexpr int kConflictInMappingEntry = 718;
constexpr int kOnlyPermanentLeasesSupported = 725;
constexpr int kNoSuchEntryInArray = 714;
constexpr int kConflictRetries = 8;

std::string upnp_error(int code) {
  const char* text = strupnperror(code);
  return text ? std::string(text) + " (" + std::to_string(code) + ")" : "error " + std::to_string(code);
}

class UpnpIgd final : public MappingBackend {
public:
  explicit UpnpIgd(std::chrono::milliseconds timeout) : timeout_(timeout) {}
  ~UpnpIgd() override { release(); }

  NatMethod method() const override { return NatMethod::Upnp; }

  Result<std::string> discover() override {
    release();
    int error = 0;
    // Only internet gateways, both searched at once: upnpDiscover() asks for four device
    // types one after another and takes four times the delay when nothing answers.
    const char* types[] = {"urn:schemas-upnp-org:device:InternetGatewayDevice:1",
                           "urn:schemas-upnp-org:device:InternetGatewayDevice:2", nullptr};
    UPNPDev* devices = upnpDiscoverDevices(types, static_cast<int>(timeout_.count()), nullptr, nullptr,
                                           UPNP_LOCAL_PORT_ANY, /*ipv6*/ 0, /*ttl*/ 2, &error, /*searchalltypes*/ 1);
    if (!devices)
      return Error{"no UPnP device answered within " + std::to_string(timeout_.count()) + " ms"};
    char lan[64] = {};
    int found = UPNP_GetValidIGD(devices, &urls_, &data_, lan, sizeof lan);
    freeUPNPDevlist(devices);
    have_urls_ = found != 0;
    if (found != 1) {
      release();
      if (found == 2) return Error{"the router's UPnP gateway says it is not connected"};
      if (found == 3) return Error{"a UPnP device answered, but it is not an internet gateway"};
      return Error{"no UPnP internet gateway found"};
    }
    lan_address_ = lan;
    return std::string(urls_.controlURL) + " (this host: " + lan_address_ + ")";
  }

  Result<std::string> external_address() override {
    if (!have_urls_) return Error{"no UPnP gateway"};
    char ip[40] = {};
    int r = UPNP_GetExternalIPAddress(urls_.controlURL, data_.first.servicetype, ip);
    if (r != 0) return Error{"GetExternalIPAddress: " + upnp_error(r)};
    if (!ip[0]) return Error{"the router has no external address"};
    return std::string(ip);
  }

  Result<PortMapping> map(MappedProtocol protocol, std::uint16_t internal_port, std::uint16_t wanted,
                          std::chrono::seconds lease) override {
    if (!have_urls_) return Error{"no UPnP gateway"};
    std::uint16_t external = wanted ? wanted : internal_port;
    std::string proto(protocol == MappedProtocol::Tcp ? "TCP" : "UDP");
    for (int attempt = 0; attempt <= kConflictRetries;) {
      auto ext = std::to_string(external);
      auto in = std::to_string(internal_port);
      auto duration = std::to_string(lease.count());
      int r = UPNP_AddPortMapping(urls_.controlURL, data_.first.servicetype, ext.c_str(), in.c_str(),
                                  lan_address_.c_str(), "annex-swarm", proto.c_str(), nullptr, duration.c_str());
      if (r == 0) return PortMapping{protocol, internal_port, external, lease};
      if (r == kOnlyPermanentLeasesSupported && lease.count() != 0) {
        lease = std::chrono::seconds(0);  // we renew and remove it ourselves
        continue;
      }
      if (r != kConflictInMappingEntry)
        return Error{"AddPortMapping " + proto + " " + ext + ": " + upnp_error(r)};
      ++attempt;
      external = static_cast<std::uint16_t>(std::uniform_int_distribution<int>(1024, 65535)(rng_));
    }
    return Error{"AddPortMapping " + proto + ": every port tried is taken on the router"};
  }

  std::optional<bool> still_mapped(const PortMapping& m) override {
    if (!have_urls_) return std::nullopt;
    char client[64] = {}, port[8] = {}, desc[80] = {}, enabled[8] = {}, duration[16] = {};
    auto ext = std::to_string(m.external_port);
    int r = UPNP_GetSpecificPortMappingEntry(urls_.controlURL, data_.first.servicetype, ext.c_str(),
                                             m.protocol == MappedProtocol::Tcp ? "TCP" : "UDP", nullptr, client,
                                             port, desc, enabled, duration);
    if (r == kNoSuchEntryInArray) return false;
    if (r != 0) return std::nullopt;
    return lan_address_ == client && std::to_string(m.internal_port) == port;
  }

  Result<bool> unmap(const PortMapping& m) override {
    if (!have_urls_) return Error{"no UPnP gateway"};
    auto ext = std::to_string(m.external_port);
    int r = UPNP_DeletePortMapping(urls_.controlURL, data_.first.servicetype, ext.c_str(),
                                   m.protocol == MappedProtocol::Tcp ? "TCP" : "UDP", nullptr);
    if (r != 0 && r != kNoSuchEntryInArray) return Error{"DeletePortMapping " + ext + ": " + upnp_error(r)};
    return true;
  }

private:
  void release() {
    if (have_urls_) FreeUPNPUrls(&urls_);
    have_urls_ = false;
    urls_ = {};
    data_ = {};
  }

  std::chrono::milliseconds timeout_;
  UPNPUrls urls_{};
  IGDdatas data_{};
  bool have_urls_ = false;
  std::string lan_address_;
  std::minstd_rand rng_{std::random_device{}()};
};

}  // namespace

std::unique_ptr<MappingBackend> make_upnp_backend(std::chrono::milliseconds discover_timeout) {
  return std::make_unique<UpnpIgd>(discover_timeout);
}

}  // namespace annexswarm::nat
