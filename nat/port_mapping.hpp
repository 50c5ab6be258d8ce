#pragma once
// Port mapping on the home router: one interface, two backends (UPnP IGD through
// miniupnpc, NAT-PMP through libnatpmp). Backend calls block on the network for up to
// a few seconds, so only PortMapper's worker thread makes them.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/result.hpp"

namespace annexswarm::nat {

enum class NatMethod { Auto, Upnp, NatPmp, None };
std::string_view to_string(NatMethod method);
std::optional<NatMethod> nat_method_from_string(std::string_view text);

enum class MappedProtocol { Tcp, Udp };
std::string_view to_string(MappedProtocol protocol);

struct PortMapping {
  MappedProtocol protocol = MappedProtocol::Tcp;
  std::uint16_t internal_port = 0;
  std::uint16_t external_port = 0;
  std::chrono::seconds lease{0};  // as granted; 0: until removed
  friend bool operator==(const PortMapping&, const PortMapping&) = default;
};

class MappingBackend {
public:
  virtual ~MappingBackend() = default;
  virtual NatMethod method() const = 0;
  // Finds the router; says which one (its control URL or address), or why none.
  virtual Result<std::string> discover() = 0;
  virtual Result<std::string> external_address() = 0;
  // Maps the port, or refreshes a mapping we already hold; when the wanted external port
  // is taken by another host, another one is tried. Returns what the router granted.
  virtual Result<PortMapping> map(MappedProtocol protocol, std::uint16_t internal_port,
                                  std::uint16_t wanted_external_port, std::chrono::seconds lease) = 0;
  // False when the router has lost the mapping (it restarted); nullopt when it cannot tell.
  virtual std::optional<bool> still_mapped(const PortMapping& mapping) = 0;
  virtual Result<bool> unmap(const PortMapping& mapping) = 0;
};

std::unique_ptr<MappingBackend> make_upnp_backend(std::chrono::milliseconds discover_timeout);
std::unique_ptr<MappingBackend> make_natpmp_backend(std::chrono::milliseconds reply_timeout);

}  // namespace annexswarm::nat
