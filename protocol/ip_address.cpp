#include "protocol/ip_address.hpp"

#include <arpa/inet.h>

#include <cstdint>

namespace annexswarm {
namespace {

bool in(std::uint32_t ip, std::uint32_t net, int bits) {
  return bits == 0 || (ip >> (32 - bits)) == (net >> (32 - bits));
}

AddressScope scope_v4(std::uint32_t ip) {
  if (in(ip, 0x00000000, 8)) return ip == 0 ? AddressScope::Unspecified : AddressScope::Reserved;
  if (in(ip, 0x7f000000, 8)) return AddressScope::Loopback;
  if (in(ip, 0xa9fe0000, 16)) return AddressScope::LinkLocal;
  if (in(ip, 0x0a000000, 8) || in(ip, 0xac100000, 12) || in(ip, 0xc0a80000, 16) || in(ip, 0x64400000, 10))
    return AddressScope::Private;
  // 192.0.0/24, documentation (192.0.2, 198.51.100, 203.0.113), benchmarking (198.18/15),
  // multicast and the rest of 224/3.
  if (in(ip, 0xc0000000, 24) || in(ip, 0xc0000200, 24) || in(ip, 0xc6336400, 24) || in(ip, 0xcb007100, 24) ||
      in(ip, 0xc6120000, 15) || in(ip, 0xe0000000, 3))
    return AddressScope::Reserved;
  return AddressScope::Global;
}

AddressScope scope_v6(const in6_addr& a) {
  const auto* b = a.s6_addr;
  if (IN6_IS_ADDR_UNSPECIFIED(&a)) return AddressScope::Unspecified;
  if (IN6_IS_ADDR_LOOPBACK(&a)) return AddressScope::Loopback;
  if (IN6_IS_ADDR_V4MAPPED(&a)) {
    return scope_v4(std::uint32_t(b[12]) << 24 | std::uint32_t(b[13]) << 16 | std::uint32_t(b[14]) << 8 | b[15]);
  }
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return AddressScope::LinkLocal;
  if ((b[0] & 0xfe) == 0xfc) return AddressScope::Private;
  if (b[0] == 0xff) return AddressScope::Reserved;
  // Global unicast is 2000::/3. 2001:db8::/32 (documentation) counts as global so that a
  // lab built from it behaves like the internet.
  if ((b[0] & 0xe0) == 0x20) return AddressScope::Global;
  return AddressScope::Reserved;
}

}  // namespace

AddressScope address_scope(std::string_view text) {
  if (text.empty() || text.size() > 45) return AddressScope::Invalid;
  std::string s(text);
  in_addr a4{};
  if (inet_pton(AF_INET, s.c_str(), &a4) == 1) return scope_v4(ntohl(a4.s_addr));
  in6_addr a6{};
  if (inet_pton(AF_INET6, s.c_str(), &a6) == 1) return scope_v6(a6);
  return AddressScope::Invalid;
}

std::string host_port(std::string_view host, unsigned port) {
  if (host.find(':') != std::string_view::npos) return "[" + std::string(host) + "]:" + std::to_string(port);
  return std::string(host) + ":" + std::to_string(port);
}

std::pair<std::string, std::string> split_host_port(std::string_view text) {
  auto colon = text.rfind(':');
  std::string host(text.substr(0, colon));
  std::string port(colon == std::string_view::npos ? text : text.substr(colon + 1));
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  return {host, port};
}

}  // namespace annexswarm
