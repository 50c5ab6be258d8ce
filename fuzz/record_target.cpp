#include "fuzz/record_target.hpp"

#include "protocol/annex_key.hpp"
#include "protocol/records.hpp"

namespace annexswarm::fuzz {
namespace {
const SwarmToken& fuzz_swarm() {
  static const SwarmToken token = SwarmToken::public_swarm();
  return token;
}
}  // namespace

void record_target(const std::uint8_t* data, std::size_t size) {
  ByteView input(data, size);
  (void)decode_contact(input);
  (void)decode_repo(input);
  (void)decode_provider_bucket(input);
  (void)AnnexKey::parse(std::string_view(reinterpret_cast<const char*>(data), size));
  auto opened = open_record(fuzz_swarm(), fuzz_swarm().nodes_location(), input);
  if (opened) (void)decode_contact(*opened);
}

std::vector<std::vector<std::uint8_t>> record_seeds() {
  NodeId node;
  node.bytes.fill(0x42);
  const std::string uuid = "bda09b6b-160b-4c29-a3e1-697e0686ed3a";
  std::vector<Bytes> seeds{
      encode(ContactRecord{node, kProtocolVersion, 1, {{EndpointKind::Lan, "192.168.1.2", 4224}}}),
      encode(RepoRecord{node, uuid}),
      encode(ProviderBucketRecord{node, uuid, 17, {1, 2, 0x0102030405060708ull}}),
  };
  seeds.push_back(seal_record(fuzz_swarm(), fuzz_swarm().nodes_location(), seeds[0]));
  return seeds;
}

}  // namespace annexswarm::fuzz
