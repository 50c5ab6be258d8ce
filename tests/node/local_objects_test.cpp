// Local objects: swarm stores made on demand, never over a repository, and where keys are.
#include <boost/test/unit_test.hpp>

#include <fstream>

#include "node/local_objects.hpp"
#include "node/swarm_store.hpp"
#include "protocol/crypto.hpp"
#include "tests/support/test_support.hpp"

using namespace annexswarm;

namespace {
const std::string kStore = "11111111-2222-3333-4444-555555555555";
const std::string kOther = "99999999-2222-3333-4444-555555555555";
}

BOOST_AUTO_TEST_SUITE(local_objects)

BOOST_AUTO_TEST_CASE(a_store_is_made_once_and_found_again_after_a_restart) {
  test::TempDir dir;
  LocalObjects objects(dir.path());
  BOOST_REQUIRE(objects.open({}));
  std::vector<std::size_t> added;
  objects.on_added([&](std::size_t i) { added.push_back(i); });
  auto first = objects.store(kStore);
  BOOST_REQUIRE(first);
  BOOST_TEST(objects.store(kStore).value() == *first);
  BOOST_TEST(added.size() == 1u);
  std::string content = "bytes\n";
  auto key = AnnexKey::parse("SHA256E-s6--" + to_hex(crypto::sha256(as_bytes(content)))).value();
  std::ofstream(dir.path() / "f") << content;
  BOOST_REQUIRE(import_into_store(objects.at(*first), key, dir.path() / "f", nullptr));
  LocalObjects again(dir.path());
  BOOST_REQUIRE(again.open({}));
  BOOST_REQUIRE(again.index_of(kStore));
  BOOST_TEST(again.locate(key, kStore).has_value());
  BOOST_TEST(again.locate(key, "").has_value());
  BOOST_TEST(!again.locate(key, kOther).has_value());
}

BOOST_AUTO_TEST_CASE(removing_what_is_not_there_is_no_error_and_no_change) {
  test::TempDir dir;
  LocalObjects objects(dir.path());
  BOOST_REQUIRE(objects.open({}));
  objects.store(kStore).value();
  int changed = 0;
  objects.on_changed([&](std::size_t, const AnnexKey&, bool) { ++changed; });
  auto key = AnnexKey::parse("SHA256E-s1--" + std::string(64, 'a')).value();
  auto r = objects.remove_from_store(key, kStore);
  BOOST_REQUIRE(r);
  BOOST_TEST(!*r);
  BOOST_TEST(changed == 0);
  BOOST_TEST(!objects.remove_from_store(key, kOther));  // no such store here
}

BOOST_AUTO_TEST_CASE(repositories_that_cannot_be_served_are_all_listed) {
  test::TempDir dir;
  LocalObjects objects(dir.path());
  auto r = objects.open({dir.path() / "missing-a", dir.path() / "missing-b"});
  BOOST_REQUIRE(!r);
  BOOST_TEST(r.error().find("missing-a") != std::string::npos);
  BOOST_TEST(r.error().find("missing-b") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
