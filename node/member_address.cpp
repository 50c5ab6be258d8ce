#include "node/member_address.hpp"

namespace annexswarm {

std::vector<FetchSource> dialable(const std::vector<Member>& members, const SelfAddress& self) {
  std::vector<FetchSource> sources;
  for (const auto& [si, contact] : members) {
    FetchSource source{{contact.node, {}}, si};
    for (const auto& e : contact.endpoints) {
      std::error_code ec;
      auto address = asio::ip::make_address(e.host, ec);
      if (ec) continue;
      if (e.kind == EndpointKind::Candidate) continue;  // not confirmed: for dial-back helpers only
      if (e.kind != EndpointKind::Relay) {
        source.address.endpoints.emplace_back(address, e.port);
        continue;
      }
      auto relay = NodeId::from_hex(e.via);
      if (!relay) continue;
      asio::ip::tcp::endpoint at(address, e.port);
      if (*relay == self.node) {
        bool wildcard = self.listen.empty() || asio::ip::make_address(self.listen, ec).is_unspecified();
        at = asio::ip::tcp::endpoint(asio::ip::make_address(wildcard ? "127.0.0.1" : self.listen, ec), self.peer_port);
      }
      source.address.relays.push_back({*relay, {at}});
    }
    if (!source.address.endpoints.empty() || !source.address.relays.empty()) sources.push_back(std::move(source));
  }
  return sources;
}

}  // namespace annexswarm
