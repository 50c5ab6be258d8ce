// The announcer over an in-memory DHT and a swarm store on disk: a key stored is
// announced, a key removed is withdrawn with the next version, state survives a restart.
#include <boost/test/unit_test.hpp>

#include <fstream>

#include "node/announcer.hpp"
#include "node/swarm_store.hpp"
#include "protocol/crypto.hpp"
#include "tests/support/fake_dht.hpp"
#include "tests/support/manual_timers.hpp"
#include "tests/support/test_support.hpp"

using namespace annexswarm;
using namespace std::chrono_literals;

namespace {
const std::string kStore = "11111111-2222-3333-4444-555555555555";

struct World {
  test::ManualTimers timers;
  test::TempDir dir;
  NodeId self;
  test::FakeDht dht{self};
  SwarmToken swarm = SwarmToken::generate();
  SwarmDirectory directory{dht, timers, self, {swarm}, 5s, {}};
  LocalObjects objects{dir.path()};
  std::unique_ptr<Announcer> announcer;

  World() { BOOST_REQUIRE(objects.open({})); }
  void start(double rate = 400) {
    announcer = std::make_unique<Announcer>(timers, directory, objects, Announcer::Settings{dir.path(), rate, 256, 3000s, 5s},
                                            Announcer::Mediator{[](std::function<void()> work) { work(); }, [] { return true; }});
    objects.on_added([this](std::size_t i) { announcer->repo_added(i); });
    objects.on_changed([this](std::size_t i, const AnnexKey& key, bool present) { announcer->key_changed(i, key, present); });
    announcer->start();
  }
  AnnexKey store(const std::string& content) {
    auto key = AnnexKey::parse("SHA256E-s" + std::to_string(content.size()) + "--" + to_hex(crypto::sha256(as_bytes(content)))).value();
    auto file = dir.path() / "incoming";
    std::ofstream(file, std::ios::binary) << content;
    auto index = objects.store(kStore).value();
    BOOST_REQUIRE(import_into_store(objects.at(index), key, file, nullptr));
    objects.changed(index, key, true);
    return key;
  }
  bool announced(const AnnexKey& key) {
    bool found = false;
    directory.providers(key, [&](std::vector<Provider> p) { found = !p.empty(); });
    return found;
  }
};
}  // namespace

BOOST_AUTO_TEST_SUITE(announcer)

BOOST_AUTO_TEST_CASE(a_stored_key_is_announced_and_a_removed_one_withdrawn) {
  World w;
  w.start();
  auto key = w.store("hello swarm\n");
  w.timers.advance(2s);  // a change goes out 1 s after it (changes close together: one put)
  BOOST_TEST(w.announced(key));
  auto st = w.announcer->status();
  BOOST_REQUIRE(st.repos.size() == 1u);
  BOOST_TEST(st.repos[0].keys == 1u);
  BOOST_TEST(st.repos[0].per_swarm[0].first == 1u);  // confirmed on the DHT
  BOOST_TEST(w.objects.remove_from_store(key, kStore).value());
  w.timers.advance(2s);
  BOOST_TEST(!w.announced(key));
}

BOOST_AUTO_TEST_CASE(a_restart_puts_nothing_again_until_the_refresh) {
  World w;
  w.start();
  w.store("kept\n");
  w.timers.advance(1s);
  w.announcer->stop();  // saves the table
  auto puts = w.dht.puts;
  w.start();
  w.timers.advance(10s);
  BOOST_TEST(w.dht.puts == puts);  // the unchanged bucket waits for its refresh
  w.timers.advance(3000s);
  BOOST_TEST(w.dht.puts > puts);
}

BOOST_AUTO_TEST_CASE(the_put_budget_holds_whatever_the_key_count) {
  World w;
  w.start(10);  // ten puts per second
  std::vector<AnnexKey> keys;
  for (int i = 0; i < 60; ++i) keys.push_back(w.store("object " + std::to_string(i) + "\n"));
  w.timers.advance(6s);  // the next poll scans all 60 (about 60 buckets to put)
  auto after = w.dht.puts;
  BOOST_TEST(after <= 25u);  // at most a burst of ten, then ten a second
  w.timers.advance(10s);
  for (const auto& k : keys) BOOST_TEST(w.announced(k));
}

BOOST_AUTO_TEST_CASE(failed_puts_are_retried_when_the_dht_connects) {
  World w;
  w.dht.fail_puts = true;
  w.start();
  auto key = w.store("retry me\n");
  w.timers.advance(1s);
  BOOST_TEST(!w.announced(key));
  BOOST_TEST(w.announcer->status().puts_failed >= 1u);
  w.dht.fail_puts = false;
  w.announcer->dht_connected();
  w.timers.advance(1s);
  BOOST_TEST(w.announced(key));
}

BOOST_AUTO_TEST_SUITE_END()
