// Erasure coding: any K of K+M units rebuild a segment; an object goes to K+M share files
// and comes back from any K of them, a corrupt share unit is found by its digest and
// replaced; lost shares are rebuilt byte for byte; shares are placed on distinct members
// with room, the same way on every node.
#include <boost/test/unit_test.hpp>

#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "erasure/codec.hpp"
#include "erasure/placement.hpp"
#include "erasure/share_map.hpp"
#include "erasure/shares.hpp"
#include "protocol/crypto.hpp"
#include "tests/support/test_support.hpp"

using namespace annexswarm;
using namespace annexswarm::erasure;
namespace fs = std::filesystem;

namespace {

Bytes random_bytes(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  Bytes out(n);
  for (auto& b : out) b = static_cast<std::uint8_t>(rng());
  return out;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Every way to choose `k` of `n`, in order.
std::vector<std::vector<unsigned>> choices(unsigned n, unsigned k) {
  std::vector<std::vector<unsigned>> out;
  for (unsigned mask = 0; mask < (1u << n); ++mask)
    if (static_cast<unsigned>(__builtin_popcount(mask)) == k) {
      std::vector<unsigned> c;
      for (unsigned i = 0; i < n; ++i)
        if (mask & (1u << i)) c.push_back(i);
      out.push_back(c);
    }
  return out;
}

// A segment's K data units and their M parity units.
struct Segment {
  ShareShape shape;
  std::size_t len;
  std::vector<Bytes> units;
  Segment(ShareShape s, std::size_t l, std::uint32_t seed) : shape(s), len(l) {
    for (unsigned i = 0; i < s.k; ++i) units.push_back(random_bytes(len, seed * 131 + i));
    units.resize(s.n(), Bytes(len));
    std::vector<const std::uint8_t*> data;
    std::vector<std::uint8_t*> parity;
    for (unsigned i = 0; i < s.k; ++i) data.push_back(units[i].data());
    for (unsigned i = s.k; i < s.n(); ++i) parity.push_back(units[i].data());
    Codec(s).encode(len, data.data(), parity.data());
  }
  // Rebuilds every unit not in `from` from those in it; true when all come out right.
  bool rebuilds_from(const Codec& codec, const std::vector<unsigned>& from) const {
    std::vector<unsigned> wanted;
    for (unsigned i = 0; i < shape.n(); ++i)
      if (std::find(from.begin(), from.end(), i) == from.end()) wanted.push_back(i);
    auto r = codec.rebuilder(from, wanted);
    if (!r) return false;
    std::vector<const std::uint8_t*> in;
    for (auto i : from) in.push_back(units[i].data());
    std::vector<Bytes> out(wanted.size(), Bytes(len));
    std::vector<std::uint8_t*> outp;
    for (auto& o : out) outp.push_back(o.data());
    r->run(len, in.data(), outp.data());
    for (std::size_t w = 0; w < wanted.size(); ++w)
      if (out[w] != units[wanted[w]]) return false;
    return true;
  }
};

struct Stored {
  test::TempDir dir;
  Bytes content;
  ShareLayout layout;
  ShareDigests digests;
  std::vector<fs::path> shares;
  fs::path object;

  Stored(ShareShape shape, std::size_t size, std::uint32_t seed = 1) : content(random_bytes(size, seed)) {
    object = dir.path() / "object";
    std::ofstream(object, std::ios::binary).write(reinterpret_cast<const char*>(content.data()),
                                                 static_cast<std::streamsize>(content.size()));
    layout = ShareLayout::plan(shape, size);
    for (unsigned i = 0; i < shape.n(); ++i) shares.push_back(dir.path() / ("share" + std::to_string(i)));
    auto d = encode_object(object, layout, shares);
    BOOST_REQUIRE_MESSAGE(d, d.error());
    digests = *d;
  }
  ShareFiles without(const std::vector<unsigned>& lost) const {
    ShareFiles out;
    for (unsigned i = 0; i < shares.size(); ++i)
      if (std::find(lost.begin(), lost.end(), i) == lost.end()) out.emplace_back(shares[i]);
      else out.emplace_back(std::nullopt);
    return out;
  }
  Result<RebuildReport> decode(const ShareFiles& files, const fs::path& out) const {
    return decode_object(layout, files, digests, out);
  }
  bool matches(const fs::path& out) const {
    auto got = slurp(out);
    return got.size() == content.size() && std::equal(got.begin(), got.end(), content.begin(),
                                                      [](char a, std::uint8_t b) { return static_cast<std::uint8_t>(a) == b; });
  }
};

NodeId node(unsigned i) {
  NodeId id;
  id.bytes[0] = static_cast<std::uint8_t>(i);
  id.bytes[1] = static_cast<std::uint8_t>(i >> 8);
  id.bytes[19] = 0x5a;
  return id;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(erasure)

BOOST_AUTO_TEST_CASE(a_share_shape_is_k_plus_m_within_the_limits) {
  auto s = ShareShape::parse("4+2");
  BOOST_REQUIRE(s);
  BOOST_TEST(s->k == 4u);
  BOOST_TEST(s->m == 2u);
  BOOST_TEST(s->text() == "4+2");
  BOOST_TEST(static_cast<bool>(ShareShape::parse("16+4")));
  BOOST_TEST(static_cast<bool>(ShareShape::parse("32+16")));
  for (auto bad : {"0+2", "4+0", "33+1", "4+17", "4", "4+x", "+2", "4+2+1", "-1+2", ""}) {
    auto r = ShareShape::parse(bad);
    BOOST_TEST(!r, bad);
    if (!r) BOOST_TEST(r.error().find("for example 4+2") != std::string::npos, r.error());
  }
}

BOOST_AUTO_TEST_CASE(any_k_units_of_a_4_plus_2_segment_rebuild_all_the_others) {
  ShareShape shape{4, 2};
  Codec codec(shape);
  Segment seg(shape, 4096 + 64, 7);
  for (const auto& from : choices(6, 4)) BOOST_TEST(seg.rebuilds_from(codec, from));
}

BOOST_AUTO_TEST_CASE(wide_codes_up_to_32_plus_16_rebuild_from_any_k_units) {
  std::mt19937 rng(3);
  for (ShareShape shape : {ShareShape{10, 4}, ShareShape{16, 4}, ShareShape{32, 16}}) {
    Codec codec(shape);
    Segment seg(shape, 1024, shape.k);
    for (int trial = 0; trial < 30; ++trial) {
      std::vector<unsigned> all(shape.n());
      for (unsigned i = 0; i < shape.n(); ++i) all[i] = i;
      std::shuffle(all.begin(), all.end(), rng);
      all.resize(shape.k);
      BOOST_TEST(seg.rebuilds_from(codec, all), shape.text() << " trial " << trial);
    }
    // Losing exactly the data shares is the hardest case for a systematic code.
    std::vector<unsigned> parity_and_rest;
    for (unsigned i = shape.m; i < shape.n(); ++i) parity_and_rest.push_back(i);
    BOOST_TEST(seg.rebuilds_from(codec, parity_and_rest), shape.text());
  }
}

BOOST_AUTO_TEST_CASE(a_rebuild_from_the_wrong_number_of_units_is_refused) {
  Codec codec(ShareShape{4, 2});
  BOOST_TEST(!codec.rebuilder({0, 1, 2}, {3}));
  BOOST_TEST(!codec.rebuilder({0, 1, 2, 2}, {3}));
  BOOST_TEST(!codec.rebuilder({0, 1, 2, 9}, {3}));
  BOOST_TEST(!codec.rebuilder({0, 1, 2, 3}, {6}));
}

BOOST_AUTO_TEST_CASE(the_layout_uses_chunk_sized_units_and_small_objects_stay_small) {
  auto big = ShareLayout::plan({4, 2}, 1ull << 30);
  BOOST_TEST(big.unit == 1024u * 1024u);
  BOOST_TEST(big.segments() == 256u);
  BOOST_TEST(big.share_size() == 256ull << 20);
  auto small = ShareLayout::plan({4, 2}, 4096);
  BOOST_TEST(small.unit == 1024u);
  BOOST_TEST(small.segments() == 1u);
  BOOST_TEST(small.share_size() * 6 == 6144u);  // 1.5x, not 6 chunks
  auto odd = ShareLayout::plan({4, 2}, 4097);
  BOOST_TEST(odd.unit % 64 == 0u);
  BOOST_TEST(odd.segment_bytes() >= 4097u);
  auto tail = ShareLayout::plan({4, 2}, (9ull << 20) + 5);
  BOOST_TEST(tail.segments() == 3u);
  BOOST_TEST(ShareLayout::plan({4, 2}, 0).segments() == 0u);
}

BOOST_AUTO_TEST_CASE(an_object_comes_back_from_any_four_of_its_six_shares) {
  for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{4095}, (std::size_t{9} << 20) + 5}) {
    Stored s({4, 2}, size, static_cast<std::uint32_t>(size));
    for (unsigned i = 0; i < 6; ++i) BOOST_TEST(fs::file_size(s.shares[i]) == s.layout.share_size());
    for (const auto& lost : choices(6, 2)) {
      auto out = s.dir.path() / "out";
      auto r = s.decode(s.without(lost), out);
      BOOST_REQUIRE_MESSAGE(r, r.error());
      BOOST_TEST(s.matches(out), "size " << size << " without " << lost[0] << "," << lost[1]);
      BOOST_TEST(r->corrupt_units.empty());
    }
  }
}

BOOST_AUTO_TEST_CASE(three_lost_shares_of_4_plus_2_are_one_too_many_and_say_so) {
  Stored s({4, 2}, 3 << 20);
  auto r = s.decode(s.without({0, 3, 5}), s.dir.path() / "out");
  BOOST_REQUIRE(!r);
  BOOST_TEST(r.error().find("3 intact shares, and 4 are needed") != std::string::npos, r.error());
}

BOOST_AUTO_TEST_CASE(a_corrupt_unit_is_found_by_its_digest_and_rebuilt_from_another_share) {
  Stored s({4, 2}, (9 << 20) + 77);
  {
    std::fstream f(s.shares[1], std::ios::in | std::ios::out | std::ios::binary);
    f.seekp((1 << 20) + 500);  // segment 1 of share 1
    f.put('X');
  }
  fs::resize_file(s.shares[2], (2 << 20) + 10);  // share 2 ends inside segment 2
  auto out = s.dir.path() / "out";
  auto r = s.decode(s.without({}), out);
  BOOST_REQUIRE_MESSAGE(r, r.error());
  BOOST_TEST(s.matches(out));
  std::vector<std::pair<unsigned, std::uint64_t>> expected{{1, 1}, {2, 2}};
  BOOST_TEST((r->corrupt_units == expected));
}

BOOST_AUTO_TEST_CASE(a_download_plan_spreads_segments_evenly_over_every_share_with_k_each) {
  auto layout = ShareLayout::plan({4, 2}, (24u << 20) + 9);  // 7 segments of 4 MiB
  BOOST_REQUIRE(layout.segments() == 7u);
  auto plan = plan_segments(layout, HeldSegments(6), std::vector<bool>(6, true));
  BOOST_REQUIRE_MESSAGE(plan, plan.error());
  std::vector<unsigned> per_share(6, 0);
  for (std::uint64_t seg = 0; seg < layout.segments(); ++seg) {
    unsigned shares = 0;
    for (unsigned i = 0; i < 6; ++i)
      if (!(*plan)[i].empty() && (*plan)[i][seg]) ++shares, ++per_share[i];
    BOOST_TEST(shares == 4u, "segment " << seg);
  }
  // 28 units over 6 shares: none carries more than one unit over its even part.
  for (unsigned i = 0; i < 6; ++i) BOOST_TEST((per_share[i] == 4u || per_share[i] == 5u), "share " << i);
  // One segment: the data shares, nothing to decode.
  auto small = ShareLayout::plan({4, 2}, 1000);
  auto one = plan_segments(small, HeldSegments(6), std::vector<bool>(6, true));
  BOOST_REQUIRE(one);
  for (unsigned i = 0; i < 6; ++i) BOOST_TEST(((*one)[i].empty() ? false : bool((*one)[i][0])) == (i < 4), "share " << i);
}

BOOST_AUTO_TEST_CASE(a_share_that_failed_has_its_segments_planned_again_on_the_others) {
  auto layout = ShareLayout::plan({4, 2}, 12u << 20);  // 3 segments
  HeldSegments none(6);
  auto first = plan_segments(layout, none, std::vector<bool>(6, true));
  BOOST_REQUIRE(first);
  // Share 1 failed; the others hold what the first plan gave them.
  HeldSegments held = *first;
  held[1].clear();
  std::vector<bool> usable(6, true);
  usable[1] = false;
  auto second = plan_segments(layout, held, usable);
  BOOST_REQUIRE_MESSAGE(second, second.error());
  BOOST_TEST((*second)[1].empty());
  for (std::uint64_t seg = 0; seg < 3; ++seg) {
    unsigned have = 0;
    for (unsigned i = 0; i < 6; ++i) {
      bool h = !held[i].empty() && held[i][seg];
      bool a = !(*second)[i].empty() && (*second)[i][seg];
      BOOST_TEST(!(h && a), "share " << i << " is planned a segment it holds");
      have += (h || a) ? 1 : 0;
    }
    BOOST_TEST(have == 4u, "segment " << seg);
  }
  // Three shares gone: one too many, and the error says which segment and why.
  usable[0] = usable[2] = false;
  HeldSegments held3 = held;
  held3[0].clear();
  held3[2].clear();
  auto third = plan_segments(layout, held3, usable);
  BOOST_REQUIRE(!third);
  BOOST_TEST(third.error().find("are needed to rebuild it") != std::string::npos, third.error());
}

BOOST_AUTO_TEST_CASE(an_object_comes_back_from_shares_that_each_hold_only_their_planned_segments) {
  Stored s({4, 2}, (21u << 20) + 333);  // 6 segments, the last one short
  auto plan = plan_segments(s.layout, HeldSegments(6), std::vector<bool>(6, true));
  BOOST_REQUIRE(plan);
  // Each share keeps only its planned units; the rest is zeros, as a part-fetched share is.
  for (unsigned i = 0; i < 6; ++i) {
    std::fstream f(s.shares[i], std::ios::in | std::ios::out | std::ios::binary);
    std::string zeros(s.layout.unit, '\0');
    for (std::uint64_t seg = 0; seg < s.layout.segments(); ++seg)
      if ((*plan)[i].empty() || !(*plan)[i][seg]) {
        f.seekp(static_cast<std::streamoff>(seg * s.layout.unit));
        f.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
      }
  }
  // Each segment from the shares planned for it, as a download rebuilds it.
  auto rebuild = [&](bool as_planned) {
    auto out = s.dir.path() / "out";
    auto writer = ObjectRebuilder::open(s.layout, out, nullptr);
    BOOST_REQUIRE_MESSAGE(writer, writer.error());
    for (std::uint64_t seg = 0; seg < s.layout.segments(); ++seg) {
      std::vector<std::pair<unsigned, fs::path>> units;
      for (unsigned i = 0; i < 6; ++i)
        if (as_planned ? !(*plan)[i].empty() && (*plan)[i][seg] : i < 4) units.emplace_back(i, s.shares[i]);
      auto w = (*writer)->write_next(units);
      BOOST_REQUIRE_MESSAGE(w, w.error());
    }
    BOOST_REQUIRE((*writer)->finish());
    return s.matches(out);
  };
  BOOST_TEST(rebuild(true));
  // Taking the data shares where they hold zeros instead would give other bytes.
  BOOST_TEST(!rebuild(false));
}

BOOST_AUTO_TEST_CASE(an_object_is_rebuilt_segment_by_segment_from_units_in_files_still_being_written) {
  Stored s({4, 2}, (13u << 20) + 21);  // 4 segments
  // Share 5 is "still being fetched": only its .part exists.
  auto part5 = s.shares[5];
  part5 += ".part";
  fs::rename(s.shares[5], part5);
  auto hash = ContentHash::start(HashAlgorithm::Sha256);
  auto out = s.dir.path() / "out";
  auto writer = ObjectRebuilder::open(s.layout, out, &*hash);
  BOOST_REQUIRE_MESSAGE(writer, writer.error());
  BOOST_TEST(!(*writer)->finish(), "finished before every segment");
  // Each segment from another four shares, two of them parity.
  std::vector<std::vector<unsigned>> from{{0, 1, 2, 3}, {2, 3, 4, 5}, {0, 1, 4, 5}, {1, 3, 4, 5}};
  for (const auto& shares : from) {
    std::vector<std::pair<unsigned, fs::path>> units;
    for (auto i : shares) units.emplace_back(i, s.shares[i]);
    auto w = (*writer)->write_next(units);
    BOOST_REQUIRE_MESSAGE(w, w.error());
  }
  BOOST_TEST((*writer)->written() == 4u);
  BOOST_REQUIRE((*writer)->finish());
  BOOST_TEST(s.matches(out));
  BOOST_TEST(hash->finish_hex() == to_hex(crypto::sha256(s.content)));
  // Three units, or one share twice, are refused.
  auto again = ObjectRebuilder::open(s.layout, out, nullptr);
  BOOST_REQUIRE(again);
  BOOST_TEST(!(*again)->write_next({{0, s.shares[0]}, {1, s.shares[1]}, {2, s.shares[2]}}));
  BOOST_TEST(!(*again)->write_next({{0, s.shares[0]}, {0, s.shares[0]}, {1, s.shares[1]}, {2, s.shares[2]}}));
}

BOOST_AUTO_TEST_CASE(lost_shares_are_rebuilt_byte_for_byte) {
  Stored s({4, 2}, (5 << 20) + 3);
  std::vector<std::string> before;
  for (const auto& p : s.shares) before.push_back(slurp(p));
  for (const auto& lost : choices(6, 2)) {
    std::vector<fs::path> out{s.dir.path() / "new-a", s.dir.path() / "new-b"};
    auto r = rebuild_shares(s.layout, s.without(lost), s.digests, lost, out);
    BOOST_REQUIRE_MESSAGE(r, r.error());
    BOOST_TEST(slurp(out[0]) == before[lost[0]]);
    BOOST_TEST(slurp(out[1]) == before[lost[1]]);
  }
}

BOOST_AUTO_TEST_CASE(share_digests_are_the_manifest_of_each_share) {
  Stored s({4, 2}, (3 << 20) + 1);
  for (unsigned i = 0; i < 6; ++i) {
    auto bytes = slurp(s.shares[i]);
    Bytes hashes;
    for (std::size_t at = 0; at < bytes.size(); at += s.layout.unit) {
      auto d = crypto::sha256(as_bytes(std::string_view(bytes).substr(at, s.layout.unit)));
      hashes.insert(hashes.end(), d.begin(), d.end());
    }
    BOOST_TEST((s.digests.units[i] == hashes));
    auto root = crypto::sha256(hashes);
    BOOST_TEST((s.digests.root(i) == Bytes(root.begin(), root.end())));
  }
}

BOOST_AUTO_TEST_CASE(a_share_map_names_the_shares_by_their_manifest_roots_and_reads_back_strictly) {
  Stored s({4, 2}, (3 << 20) + 1);
  auto key = *AnnexKey::parse("SHA256E-s" + std::to_string(s.content.size()) + "--" +
                              to_hex(crypto::sha256(s.content)) + ".bin");
  auto map = ShareMap::of(key, s.layout, s.digests);
  BOOST_REQUIRE(map.shares.size() == 6u);
  for (unsigned i = 0; i < 6; ++i) {
    BOOST_TEST(map.shares[i].is_share());
    BOOST_TEST(map.shares[i].share_root_hex() == to_hex(s.digests.root(i)));
    BOOST_TEST(*map.shares[i].content_size() == s.layout.share_size());
    BOOST_TEST(*map.index_of(map.shares[i]) == i);
  }
  auto back = ShareMap::parse(map.text(), key);
  BOOST_REQUIRE_MESSAGE(back, back.error());
  BOOST_TEST((back->shares == map.shares));
  BOOST_TEST((back->layout == map.layout));
  BOOST_TEST(ShareMap::map_key(key).str().starts_with("SWARMMAP--"));
  BOOST_TEST(ShareMap::map_key(key).str() != ShareMap::map_key(map.shares[0]).str());
  // Another object's map, a tampered layout, a missing share, a truncated text: refused.
  auto other = *AnnexKey::parse("SHA256E-s5--" + std::string(64, '0'));
  BOOST_TEST(!ShareMap::parse(map.text(), other));
  auto text = map.text();
  auto tampered = text;
  auto unit_line = "unit " + std::to_string(s.layout.unit);
  tampered.replace(tampered.find(unit_line), unit_line.size(), "unit " + std::to_string(s.layout.unit - 64));
  BOOST_TEST(!ShareMap::parse(tampered, key));
  auto missing = text.substr(0, text.rfind("share "));
  BOOST_TEST(!ShareMap::parse(missing, key));
  BOOST_TEST(!ShareMap::parse(text.substr(0, text.size() - 1), key));
  auto shape = text;
  shape.replace(shape.find("shape 4+2"), 9, "shape 4+9");
  BOOST_TEST(!ShareMap::parse(shape, key));
}

BOOST_AUTO_TEST_CASE(shares_go_to_distinct_members_with_room_the_same_way_every_time) {
  std::vector<StoreOffer> members;
  for (unsigned i = 0; i < 10; ++i) members.push_back({node(i), 100ull << 30});
  members[3].free_bytes = 1000;  // no room for a share
  members.push_back(members[5]);  // listed twice
  auto a = place_shares("SHA256E-s100--abc", members, 6, 1 << 20);
  auto shuffled = members;
  std::reverse(shuffled.begin(), shuffled.end());
  auto b = place_shares("SHA256E-s100--abc", shuffled, 6, 1 << 20);
  BOOST_TEST((a == b));
  BOOST_TEST(a.size() == 6u);
  BOOST_TEST(std::set<NodeId>(a.begin(), a.end()).size() == 6u);
  BOOST_TEST((std::find(a.begin(), a.end(), node(3)) == a.end()));
  BOOST_TEST(place_shares("k", members, 20, 1 << 20).size() == 9u);  // only nine have room
  BOOST_TEST((place_shares("SHA256E-s100--abd", members, 6, 1 << 20) != a));  // another key, other holders
}

BOOST_AUTO_TEST_CASE(a_member_joining_takes_only_the_places_it_wins) {
  std::vector<StoreOffer> members;
  for (unsigned i = 0; i < 8; ++i) members.push_back({node(i), 50ull << 30});
  auto grown = members;
  grown.push_back({node(100), 50ull << 30});
  int moved = 0;
  for (int key = 0; key < 300; ++key) {
    auto name = "key" + std::to_string(key);
    auto before = place_shares(name, members, 6, 1);
    auto after = place_shares(name, grown, 6, 1);
    // The old members keep their order; the newcomer slots in or does not appear.
    std::vector<NodeId> without_new;
    for (const auto& n : after)
      if (n != node(100)) without_new.push_back(n);
    BOOST_TEST(std::equal(without_new.begin(), without_new.end(), before.begin()));
    moved += after != before;
  }
  BOOST_TEST(moved > 0);
}

BOOST_AUTO_TEST_CASE(members_offering_more_space_hold_more_shares) {
  std::vector<StoreOffer> members;
  for (unsigned i = 0; i < 6; ++i) members.push_back({node(i), 10ull << 30});
  members.push_back({node(50), 40ull << 30});  // four times the space of each other
  std::map<NodeId, int> firsts;
  for (int key = 0; key < 4000; ++key) ++firsts[place_shares("key" + std::to_string(key), members, 1, 1)[0]];
  // Expected share of first places: 4/10 for the big one, 1/10 each for the others.
  BOOST_TEST(firsts[node(50)] > 1400);
  BOOST_TEST(firsts[node(50)] < 1800);
  for (unsigned i = 0; i < 6; ++i) BOOST_TEST(firsts[node(i)] < 550);
}

BOOST_AUTO_TEST_SUITE_END()
