#include "fuzz/parser_target.hpp"

#include "protocol/annex_key.hpp"
#include "protocol/ip_address.hpp"
#include "protocol/peer_frames.hpp"
#include "protocol/records.hpp"

namespace annexswarm::fuzz {
namespace {
const SwarmToken& fuzz_swarm() {
  static const SwarmToken token = SwarmToken::public_swarm();
  return token;
}
}  // namespace

void parse_untrusted(const std::uint8_t* data, std::size_t size) {
  ByteView input(data, size);
  (void)decode_contact(input);
  (void)decode_repo(input);
  (void)decode_provider_bucket(input);
  (void)AnnexKey::parse(std::string_view(reinterpret_cast<const char*>(data), size));
  (void)address_scope(std::string_view(reinterpret_cast<const char*>(data), size));
  auto opened = open_record(fuzz_swarm(), fuzz_swarm().nodes_location(), input);
  if (opened) (void)decode_contact(opened->body);
  (void)peer::decode_frame_body(input);
  (void)peer::decode_frame_body_view(input);
  (void)peer::decode_tunnel_frame_view(input);
  // The same bytes as a stream, fed in two pieces.
  peer::FrameReader reader;
  reader.feed(input.first(size / 2));
  reader.feed(input.subspan(size / 2));
  while (auto body = reader.next()) {
    if (!*body) break;
    (void)peer::decode_frame_body(**body);
  }
}

std::vector<std::vector<std::uint8_t>> parser_seeds() {
  NodeId node;
  node.bytes.fill(0x42);
  const std::string uuid = "bda09b6b-160b-4c29-a3e1-697e0686ed3a";
  const std::string key = "SHA256E-s6--" + std::string(64, 'a') + ".txt";
  std::vector<Bytes> seeds{
      encode(ContactRecord{node, kProtocolVersion, 1, {{EndpointKind::Lan, "192.168.1.2", 4224},
                                                       {EndpointKind::Relay, "11.0.0.10", 4224, node.hex()}}}),
      encode(RepoRecord{node, uuid}),
      encode(ProviderBucketRecord{node, uuid, 17, {1, 2, 0x0102030405060708ull}}),
  };
  seeds.push_back(seal_record(fuzz_swarm(), fuzz_swarm().nodes_location(), seeds[0], 1800000000));
  for (const peer::Frame& f : std::vector<peer::Frame>{
           peer::Hello{1, 4096, "0a1b2c3d", "annex-swarm"}, peer::Proof{Bytes(32, 7)}, peer::Have{1, {key, key}, uuid},
           peer::Remove{4, key, uuid, Bytes(32, 3)},
           peer::HaveReply{1, {0, 7}}, peer::Manifest{2, key}, peer::ManifestReply{2, 4, 6, Bytes(32, 3), 0, Bytes(64, 1)},
           peer::Get{3, key, 0, 6}, peer::Data{3, 0, true, Bytes(6, 'x')}, peer::Cancel{3}, peer::Ping{9},
           peer::Pong{9}, peer::ErrorFrame{3, peer::ErrorCode::NotPresent, "not here"},
           peer::DialBack{5, "", 4224}, peer::DialBack{6, "2001:db8::1", 4224},
           peer::DialBackReply{5, false, "11.0.0.2", "Connection refused"}, peer::Reserve{7},
           peer::ReserveReply{7, true, 120, ""}, peer::Connect{8, node}, peer::ConnectReply{8, true, Bytes(32, 1), ""},
           peer::Incoming{Bytes(32, 2), node}, peer::Prove{9, key, uuid, Bytes(32, 4), {0, 2}, {2, 4}},
           peer::ProveReply{9, 6, Bytes(32, 5)}}) {
    auto whole = peer::encode_frame(f).value();
    seeds.push_back(whole);                              // a stream with one frame
    seeds.push_back(Bytes(whole.begin() + 4, whole.end()));  // the body alone
  }
  return seeds;
}

}  // namespace annexswarm::fuzz
