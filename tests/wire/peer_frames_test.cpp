#include <boost/test/unit_test.hpp>

#include "tests/support/test_support.hpp"

#include "protocol/peer_frames.hpp"

#include <set>
#include <utility>

using namespace annexswarm;
using namespace annexswarm::peer;

namespace {
const std::string kKey = "SHA256E-s6--5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03.txt";

ByteView body_of(const Bytes& frame) { return ByteView(frame).subspan(4); }

// Frames we send: encode_frame checks every field rule and the cap.
Bytes encoded(const Frame& f) {
  auto bytes = encode_frame(f);
  BOOST_REQUIRE_MESSAGE(bytes, bytes.error());
  return *bytes;
}
// Hostile bytes a peer might send: the field rules are not applied.
Bytes hostile(const Frame& f) { return encode_frame_unchecked(f).value(); }

Bytes raw_frame(std::initializer_list<std::uint8_t> body) {
  Bytes out{0, 0, 0, static_cast<std::uint8_t>(body.size())};
  out.insert(out.end(), body);
  return out;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(peer_frames)

BOOST_AUTO_TEST_CASE(get_frame_has_golden_bytes) {
  auto frame = encoded(Get{7, "WORM-s1-m1--x", 0, 65536});
  // length 23, then [7 (GET), 7, "WORM-s1-m1--x", 0, 65536]
  BOOST_TEST(to_hex(frame) == "00000017" "950707" "ad" + to_hex(as_bytes("WORM-s1-m1--x")) + "00" "ce00010000");
}

BOOST_AUTO_TEST_CASE(every_frame_type_round_trips) {
  std::vector<Frame> frames{Hello{1, 4096, "0a1b2c3d", "annex-swarm/0.1"},
                            Proof{Bytes(32, 9)},
                            Have{1, {kKey, "WORM-s1-m1--x"}, ""},
                            Have{1, {kKey}, "5b3b4ab8-0e3a-4c4f-9c1c-2d6e1f0a9b77"},
                            Remove{4, kKey, "5b3b4ab8-0e3a-4c4f-9c1c-2d6e1f0a9b77", Bytes(32, 7)},
                            HaveReply{1, {0, 7}},
                            Manifest{2, kKey},
                            ManifestReply{2, 4, 6, Bytes(32, 5), 0, Bytes(64, 1)},
                            ManifestReply{2, 1, 4097, Bytes(32, 5), 1, Bytes(32, 1)},
                            Get{3, kKey, 2, 4},
                            Data{3, 2, true, Bytes{'l', 'l', 'o', '\n'}},
                            Cancel{3},
                            Ping{99},
                            Pong{99},
                            ErrorFrame{3, ErrorCode::NotPresent, "not held here"},
                            DialBack{5, "", 4224},
                            DialBack{6, "2001:db8:1::2", 65535},
                            DialBackReply{5, true, "11.0.0.1", ""},
                            DialBackReply{6, false, "2001:db8::10", "Connection refused"},
                            Reserve{8},
                            ReserveReply{8, true, 120, ""},
                            ReserveReply{9, false, 0, "relay full"},
                            Connect{10, NodeId{}},
                            ConnectReply{10, true, Bytes(kCircuitToken, 3), ""},
                            ConnectReply{11, false, {}, "no reservation"},
                            Incoming{Bytes(kCircuitToken, 4), NodeId{}},
                            Prove{12, kKey, "", Bytes(32, 6), {0, 4096}, {1, kMaxProveRange}},
                            ProveReply{12, 4097, Bytes(32, 8)},
                            Take{13, "SWARMSHARE-s4096--" + std::string(64, 'a'), "0b8ae3c6-5b0a-4b2e-9d6c-2f5e4b7a1c3d",
                                 Bytes(32, 9), "annex-swarm share map 1\n"},
                            Open{14, "ssh"},
                            OpenReply{14, true, ""},
                            OpenReply{15, false, "nothing named 'web' is exposed here"},
                            Stream{Bytes{'S', 'S', 'H', '-'}, false},
                            Stream{{}, true}};
  for (const auto& f : frames) {
    auto whole = encoded(f);
    auto decoded = decode_frame_body(body_of(whole));
    BOOST_REQUIRE_MESSAGE(decoded, decoded.error());
    BOOST_TEST((*decoded == f));
  }
}

BOOST_AUTO_TEST_CASE(dial_back_frames_have_golden_bytes) {
  // [14 (DIAL_BACK), 5, "", 4224]
  BOOST_TEST(to_hex(encoded(DialBack{5, "", 4224})) == "00000007" "940e05a0cd1080");
  // [15 (DIAL_BACK_REPLY), 5, true, "1.2.3.4", ""]
  BOOST_TEST(to_hex(encoded(DialBackReply{5, true, "1.2.3.4", ""})) ==
             "0000000d" "950f05c3a7" + to_hex(as_bytes("1.2.3.4")) + "a0");
}

BOOST_AUTO_TEST_CASE(dial_back_refuses_what_is_not_an_ip_address_or_a_port) {
  for (const auto& host : {std::string("example.org"), std::string("1.2.3.4:80"), std::string("../../etc"),
                           std::string("1.2.3.4 "), std::string(70, '1')}) {
    auto frame = hostile(DialBack{1, host, 4224});
    BOOST_TEST_INFO(host);
    BOOST_TEST(!decode_frame_body(body_of(frame)));
  }
  BOOST_TEST(!decode_frame_body(body_of(hostile(DialBack{1, "1.2.3.4", 0}))));
  BOOST_TEST(!decode_frame_body(body_of(hostile(DialBackReply{1, true, "not-an-address", ""}))));
  BOOST_TEST(!decode_frame_body(body_of(hostile(DialBackReply{1, false, "", std::string(600, 'x')}))));
}

BOOST_AUTO_TEST_CASE(relay_frames_refuse_short_tokens_and_node_ids) {
  BOOST_TEST(!decode_frame_body(body_of(hostile(ConnectReply{1, true, Bytes(31, 1), ""}))));
  BOOST_TEST(!decode_frame_body(body_of(hostile(Incoming{Bytes(33, 1), NodeId{}}))));
  // CONNECT with a 19-byte target: [18, 1, bin(19)]
  Bytes body{0x93, 0x12, 0x01, 0xc4, 19};
  body.resize(body.size() + 19, 7);
  BOOST_TEST(!decode_frame_body(body));
}

BOOST_AUTO_TEST_CASE(prove_frames_refuse_unmatched_empty_or_oversized_ranges) {
  BOOST_TEST(!decode_frame_body(body_of(hostile(Prove{1, kKey, "", Bytes(32, 1), {0, 1}, {1}}))));
  BOOST_TEST(!decode_frame_body(body_of(hostile(Prove{1, kKey, "", Bytes(32, 1), {}, {}}))));
  BOOST_TEST(!decode_frame_body(body_of(hostile(Prove{1, kKey, "", Bytes(32, 1), {0}, {0}}))));
  BOOST_TEST(!decode_frame_body(body_of(hostile(Prove{1, kKey, "", Bytes(32, 1), {0}, {kMaxProveRange + 1}}))));
  BOOST_TEST(!decode_frame_body(body_of(hostile(Prove{1, kKey, "", Bytes(32, 1), {UINT64_MAX}, {2}}))));
  BOOST_TEST(!decode_frame_body(body_of(hostile(Prove{1, kKey, "", Bytes(31, 1), {0}, {1}}))));
  BOOST_TEST(!decode_frame_body(body_of(hostile(Prove{1, "../../etc", "", Bytes(32, 1), {0}, {1}}))));
  BOOST_TEST(!decode_frame_body(body_of(hostile(ProveReply{1, 5, Bytes(16, 1)}))));
  // And what a sender would put on the wire is refused where it is sent.
  BOOST_TEST(!encode_frame(Prove{1, kKey, "", Bytes(32, 1), std::vector<std::uint64_t>(17, 0),
                                 std::vector<std::uint64_t>(17, 1)}));
}

BOOST_AUTO_TEST_CASE(the_proof_mac_covers_the_nonce_the_key_and_the_bytes) {
  Bytes nonce(32, 1), bytes{'a', 'b', 'c'};
  auto mac = prove_mac(nonce, kKey, bytes);
  BOOST_TEST(mac.size() == 32u);
  BOOST_TEST((prove_mac(nonce, kKey, bytes) == mac));
  BOOST_TEST((prove_mac(Bytes(32, 2), kKey, bytes) != mac));
  BOOST_TEST((prove_mac(nonce, "SHA256E-s3--x", bytes) != mac));
  BOOST_TEST((prove_mac(nonce, kKey, Bytes{'a', 'b', 'd'}) != mac));
}

BOOST_AUTO_TEST_CASE(data_header_then_payload_is_the_data_frame) {
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{255}, std::size_t{65536}, kMaxDataBytes}) {
    Data d{0xfffffff0u, (1ull << 40) + 7, n % 2 == 0, Bytes(n, 0xab)};
    auto frame = encode_data_header(d.id, d.offset, d.fin, n);
    BOOST_TEST(frame.size() <= kMaxDataHeader);
    frame.insert(frame.end(), d.bytes.begin(), d.bytes.end());
    BOOST_TEST((frame == encoded(d)));
  }
}

BOOST_AUTO_TEST_CASE(stream_header_payload_and_trailer_are_the_stream_frame) {
  for (std::size_t n : {std::size_t{1}, std::size_t{255}, std::size_t{65536}, kMaxDataBytes})
    for (bool fin : {false, true}) {
      Stream st{Bytes(n, 0x5c), fin};
      auto frame = encode_stream_header(n);
      BOOST_TEST(frame.size() <= kMaxStreamHeader);
      frame.insert(frame.end(), st.bytes.begin(), st.bytes.end());
      frame.push_back(encode_stream_trailer(fin));
      BOOST_TEST((frame == encoded(st)));
    }
}

BOOST_AUTO_TEST_CASE(view_decoding_agrees_with_copying_decoding) {
  Data d{9, 1u << 20, true, Bytes{1, 2, 3, 4, 5}};
  auto frame = encoded(d);
  ByteView body = ByteView(frame).subspan(4);
  auto view = decode_frame_body_view(body);
  BOOST_REQUIRE(view);
  auto* dv = std::get_if<DataView>(&*view);
  BOOST_REQUIRE(dv);
  BOOST_TEST(dv->id == 9u);
  BOOST_TEST(dv->offset == d.offset);
  BOOST_TEST(dv->fin);
  BOOST_TEST((Bytes(dv->bytes.begin(), dv->bytes.end()) == d.bytes));
  BOOST_TEST(dv->bytes.data() >= body.data());  // points into the body, not a copy
  auto ping = encoded(Ping{7});
  auto other = decode_frame_body_view(ByteView(ping).subspan(4));
  BOOST_REQUIRE(other);
  BOOST_TEST((std::get<Frame>(*other) == Frame{Ping{7}}));
  auto bad = encoded(Data{1, 0, false, Bytes(10)});
  bad[4 + 1] = 0x07;  // claims to be a GET with DATA's fields
  BOOST_TEST(!decode_frame_body_view(ByteView(bad).subspan(4)));
}

BOOST_AUTO_TEST_CASE(requests_with_hostile_fields_are_refused) {
  std::vector<Frame> bad{
      Get{1, "../../etc/passwd", 0, 1},                 // path-like key (encoder does not check)
      Get{1, kKey, 0, 0},                               // empty range
      Get{1, kKey, UINT64_MAX, 2},                      // range wraps around
      Manifest{1, ""},                                  // empty key
      Have{1, {kKey, "a/b"}, ""},                       // one bad key spoils the request
      Have{1, {kKey}, "../../etc"},                     // a scope that is not a UUID
      Remove{1, kKey, ""},                              // a removal must name its store
      ManifestReply{1, 4, 6, Bytes(32, 5), 0, Bytes(32, 1)},  // 6 bytes in 4-byte chunks need 2 hashes
      ManifestReply{1, 0, 6, Bytes(32, 5), 0, Bytes(64, 1)},  // zero chunk size
      ManifestReply{1, 4, 6, Bytes(32, 5), 1, Bytes(64, 1)},  // no page 1 for 2 chunks
      ManifestReply{1, 4, 6, Bytes(31, 5), 0, Bytes(64, 1)},  // a short root
      Proof{Bytes(31, 1)},                              // short MAC
  };
  for (const auto& f : bad) {
    auto decoded = decode_frame_body(body_of(hostile(f)));
    BOOST_TEST(!decoded);
  }
  Have many{1, {}};
  for (std::size_t i = 0; i <= kMaxHaveKeys; ++i) many.keys.push_back(kKey);
  BOOST_TEST(!decode_frame_body(body_of(hostile(many))));
  Data huge{1, 0, false, Bytes(kMaxDataBytes + 1, 0)};
  BOOST_TEST(!decode_frame_body(body_of(hostile(huge))));
}

BOOST_AUTO_TEST_CASE(frames_that_break_their_rules_or_the_cap_are_encode_errors_not_dropped_links) {
  // What we would send and the peer would refuse is refused here, with the frame's name.
  for (const Frame& f : std::vector<Frame>{Get{1, "../../etc/passwd", 0, 1}, Get{1, kKey, 0, 0},
                                           Have{1, {kKey}, "../../etc"}, DialBack{1, "example.org", 4224},
                                           ConnectReply{1, true, Bytes(31, 1), ""}, Proof{Bytes(31, 1)}}) {
    auto bytes = encode_frame(f);
    BOOST_TEST_INFO(frame_name(f));
    BOOST_REQUIRE(!bytes);
    BOOST_TEST(bytes.error().find(frame_name(f)) != std::string::npos, bytes.error());
  }
  // Even without the field rules, nothing over the frame cap is ever encoded.
  auto bytes = encode_frame_unchecked(Data{1, 0, false, Bytes(kMaxFrame, 0)});
  BOOST_REQUIRE(!bytes);
  BOOST_TEST(bytes.error().find("over the frame cap") != std::string::npos, bytes.error());
}

BOOST_AUTO_TEST_CASE(a_manifest_page_of_any_object_fits_one_frame) {
  // A 1 TiB object in 1 MiB chunks: 1,048,576 chunks, 256 pages of 4096 hashes.
  std::uint64_t size = 1ull << 40;
  BOOST_TEST(page_count(size, kManifestChunk) == 256u);
  ManifestReply last{9, kManifestChunk, size, Bytes(32, 1), 255, Bytes(std::size_t{kManifestPageChunks} * 32, 7)};
  auto bytes = encode_frame(last);
  BOOST_REQUIRE_MESSAGE(bytes, bytes.error());
  BOOST_TEST(bytes->size() <= kMaxFrame + 4);
  auto back = decode_frame_body(body_of(*bytes));
  BOOST_REQUIRE(back);
  BOOST_TEST((std::get<ManifestReply>(*back) == last));
  // The last page of a 9 GiB object holds what is left: 9216 - 2 * 4096 chunks.
  ManifestReply tail{1, kManifestChunk, 9ull << 30, Bytes(32, 1), 2, Bytes(1024 * 32, 7)};
  BOOST_TEST(encode_frame(tail).ok());
  tail.hashes.resize(1023 * 32);
  BOOST_TEST(!encode_frame(tail).ok());  // one hash short of what the page holds
}

BOOST_AUTO_TEST_CASE(every_frame_type_has_its_own_type_number_and_name) {
  std::set<std::uint32_t> types;
  std::set<std::string> names;
  std::size_t count = 0;
  auto visit = [&]<std::size_t... I>(std::index_sequence<I...>) {
    ((types.insert(kSpec<std::variant_alternative_t<I, Frame>>.type),
      names.insert(kSpec<std::variant_alternative_t<I, Frame>>.name), ++count), ...);
  };
  visit(std::make_index_sequence<std::variant_size_v<Frame>>{});
  BOOST_TEST(types.size() == count);
  BOOST_TEST(names.size() == count);
}

BOOST_AUTO_TEST_CASE(garbage_bodies_are_errors) {
  for (const Bytes& body : std::vector<Bytes>{{}, {0xc1}, {0x91, 0x63}, {0x92, 0x0a}, {0x93, 0x0a, 1, 2},
                                              {0x90}, {0x91, 0xa1, 'x'}, {0xdd, 0xff, 0xff, 0xff, 0xff}}) {
    auto decoded = decode_frame_body(body);
    BOOST_TEST(!decoded);
    if (!decoded) BOOST_TEST(!decoded.error().empty());
  }
}

BOOST_AUTO_TEST_CASE(reader_reassembles_frames_split_anywhere) {
  Bytes stream;
  for (std::uint64_t i = 0; i < 5; ++i) {
    auto f = encoded(Ping{i});
    stream.insert(stream.end(), f.begin(), f.end());
  }
  for (std::size_t step : {1u, 3u, 7u, 1000u}) {
    FrameReader reader;
    std::vector<std::uint64_t> seen;
    for (std::size_t pos = 0; pos < stream.size(); pos += step) {
      reader.feed(ByteView(stream).subspan(pos, std::min(step, stream.size() - pos)));
      while (auto body = reader.next()) {
        BOOST_REQUIRE(*body);
        auto frame = decode_frame_body(**body);
        BOOST_REQUIRE(frame);
        seen.push_back(std::get<Ping>(*frame).nonce);
      }
    }
    BOOST_TEST((seen == std::vector<std::uint64_t>{0, 1, 2, 3, 4}));
  }
}

BOOST_AUTO_TEST_CASE(reader_refuses_an_oversized_or_empty_length_once) {
  for (std::uint32_t n : {static_cast<std::uint32_t>(kMaxFrame + 1), 0xffffffffu, 0u}) {
    FrameReader reader;
    Bytes header{static_cast<std::uint8_t>(n >> 24), static_cast<std::uint8_t>(n >> 16),
                 static_cast<std::uint8_t>(n >> 8), static_cast<std::uint8_t>(n)};
    reader.feed(header);
    auto first = reader.next();
    BOOST_REQUIRE(first.has_value());
    BOOST_TEST(!*first);
    reader.feed(encoded(Ping{1}));
    BOOST_TEST(!reader.next().has_value());  // the stream is dead after a bad length
  }
  FrameReader partial;
  partial.feed(raw_frame({0x92, 0x0a}));
  auto body = partial.next();
  BOOST_REQUIRE(body.has_value());
  BOOST_REQUIRE(*body);
  BOOST_TEST(!decode_frame_body(**body));  // a complete frame whose body is malformed
}

BOOST_AUTO_TEST_CASE(membership_proof_depends_on_swarm_session_and_role) {
  auto swarm = SwarmToken::generate();
  Bytes exporter(32, 5), other_session(32, 6);
  auto mac = membership_mac(swarm, exporter, Role::Dialer);
  BOOST_TEST(mac.size() == 32u);
  BOOST_TEST(mac == membership_mac(swarm, exporter, Role::Dialer));
  BOOST_TEST(mac != membership_mac(swarm, exporter, Role::Listener));
  BOOST_TEST(mac != membership_mac(swarm, other_session, Role::Dialer));
  BOOST_TEST(mac != membership_mac(SwarmToken::generate(), exporter, Role::Dialer));
}

BOOST_AUTO_TEST_SUITE_END()
