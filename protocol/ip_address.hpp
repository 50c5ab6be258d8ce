#pragma once
// What kind of address an IP literal is, as far as reaching a node goes. Pure text
// functions: no sockets, no lookups.
#include <string>
#include <string_view>
#include <utility>

namespace annexswarm {

enum class AddressScope {
  Invalid,      // not an IPv4 or IPv6 literal
  Unspecified,  // 0.0.0.0, ::
  Loopback,     // 127/8, ::1
  LinkLocal,    // 169.254/16, fe80::/10
  Private,      // 10/8, 172.16/12, 192.168/16, 100.64/10 (carrier NAT), fc00::/7
  Reserved,     // multicast, documentation and benchmark ranges, 240/4, ...: not dialled
  Global,       // everything else: may be reachable from the internet
};

AddressScope address_scope(std::string_view text);
inline bool is_ip_literal(std::string_view text) { return address_scope(text) != AddressScope::Invalid; }
// "1.2.3.4:5" or "[2001:db8::1]:5".
std::string host_port(std::string_view host, unsigned port);
// The reverse, on text: "host:port" or "[v6]:port" to host (without brackets) and port.
// The text after the last ':' is the port (config checks that one is there).
std::pair<std::string, std::string> split_host_port(std::string_view text);

}  // namespace annexswarm
