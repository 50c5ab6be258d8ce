// The download state machine in virtual time: every way a download can go wrong ends in
// a result or a clear failure within a bounded time, and a good copy online always wins.
#include <boost/test/unit_test.hpp>

#include <deque>
#include <set>

#include "protocol/crypto.hpp"
#include "transfer/download_machine.hpp"

using namespace annexswarm;
using namespace std::chrono_literals;
using M = DownloadMachine;

namespace {

constexpr std::uint32_t kChunk = 1024;  // small chunks: the limits say so
constexpr std::uint32_t kPage = peer::kManifestPageChunks;

// An object and the manifest pages a peer holding it would send.
struct Copy {
  std::uint64_t size;
  Bytes hashes;  // 32 bytes per chunk
  Bytes root;
  explicit Copy(std::uint64_t size_, std::uint8_t salt = 0) : size(size_) {
    auto chunks = (size + kChunk - 1) / kChunk;
    for (std::uint64_t i = 0; i < chunks; ++i) {
      Bytes b(8);
      for (int k = 0; k < 8; ++k) b[k] = static_cast<std::uint8_t>((i >> (8 * k)) + (k == 0 ? salt : 0));
      auto h = crypto::sha256(b);
      hashes.insert(hashes.end(), h.begin(), h.end());
    }
    auto r = crypto::sha256(hashes);
    root.assign(r.begin(), r.end());
  }
  std::size_t chunks() const { return hashes.size() / 32; }
  peer::ManifestReply page(std::uint32_t p) const {
    auto first = std::min<std::size_t>(std::size_t{p} * kPage, chunks());
    auto last = std::min<std::size_t>(first + kPage, chunks());
    return {0, kChunk, size, root, p, Bytes(hashes.begin() + first * 32, hashes.begin() + last * 32)};
  }
};

struct Run {
  M machine;
  M::Clock::time_point now{std::chrono::hours(1)};
  std::vector<M::Action> all;  // every action so far
  std::vector<M::Action> last;

  Run(std::size_t peers, std::optional<std::uint64_t> key_size, DownloadLimits limits = {})
      : machine(names(peers), "KEY", key_size, with_chunk(limits)) {}
  static std::vector<std::string> names(std::size_t n) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < n; ++i) out.push_back("peer" + std::to_string(i));
    return out;
  }
  static DownloadLimits with_chunk(DownloadLimits l) {
    l.chunk_size = kChunk;
    return l;
  }
  std::deque<M::RequestChunk> unserved;  // chunk requests not yet answered by the test
  std::deque<M::RequestPage> unanswered;  // page requests likewise
  std::size_t dials_seen = 0;
  std::vector<M::Action>& on(const M::Event& e) {
    last = machine.handle(e, now);
    all.insert(all.end(), last.begin(), last.end());
    for (const auto& a : last) {
      if (auto* r = std::get_if<M::RequestChunk>(&a)) unserved.push_back(*r);
      if (auto* r = std::get_if<M::RequestPage>(&a)) unanswered.push_back(*r);
      if (auto* c = std::get_if<M::Cancel>(&a))
        std::erase_if(unserved, [&](const M::RequestChunk& r) { return r.request == c->request; });
      if (auto* d = std::get_if<M::Drop>(&a))
        std::erase_if(unserved, [&](const M::RequestChunk& r) { return r.peer == d->peer; });
    }
    return last;
  }
  void advance(std::chrono::milliseconds d) {
    auto end = now + d;
    while (true) {
      auto at = machine.next_deadline();
      if (!at || *at > end) break;
      now = std::max(now, *at);
      on(M::Tick{});
    }
    now = end;
    on(M::Tick{});
  }
  template <class A>
  std::vector<A> of(const std::vector<M::Action>& actions) const {
    std::vector<A> out;
    for (const auto& a : actions)
      if (auto* x = std::get_if<A>(&a)) out.push_back(*x);
    return out;
  }
  template <class A>
  std::vector<A> taken() const { return of<A>(all); }
  std::optional<std::string> failure() const {
    auto f = taken<M::Fail>();
    if (f.empty()) return std::nullopt;
    return f.back().why;
  }
  bool done() const { return !taken<M::Finish>().empty(); }

  // Answers every page request waiting (and those that come of it) from copies[peer];
  // a peer without a copy stays silent.
  void answer_pages(const std::vector<const Copy*>& copies) {
    std::deque<M::RequestPage> silent;
    while (!unanswered.empty()) {
      auto r = unanswered.front();
      unanswered.pop_front();
      if (copies[r.peer]) on(M::PageArrived{r.peer, r.request, copies[r.peer]->page(r.page)});
      else silent.push_back(r);
    }
    unanswered = std::move(silent);
  }
  // Dials the machine asked for since the last call.
  std::vector<M::Dial> new_dials() {
    auto dials = taken<M::Dial>();
    std::vector<M::Dial> out(dials.begin() + static_cast<std::ptrdiff_t>(dials_seen), dials.end());
    dials_seen = dials.size();
    return out;
  }
  // Serves one waiting chunk request (not a silent peer's) as the peer's copy would check
  // out (good: Stored); false when there is none.
  bool serve_one(const std::vector<bool>& good, const std::set<M::PeerId>& silent) {
    auto it = std::find_if(unserved.begin(), unserved.end(), [&](const M::RequestChunk& r) { return !silent.count(r.peer); });
    if (it == unserved.end()) return false;
    auto r = *it;
    unserved.erase(it);
    on(M::ChunkArrived{r.peer, r.request});
    on(M::ChunkChecked{r.peer, r.chunk, good[r.peer] ? ChunkSink::Verdict::Stored : ChunkSink::Verdict::Corrupt,
                       static_cast<std::size_t>(r.length)});
    return true;
  }
};

// Connects every peer, answers pages from `copies`, opens the sink; returns the run.
void bring_up(Run& run, const std::vector<const Copy*>& copies) {
  auto& start = run.on(M::Start{});
  BOOST_REQUIRE_EQUAL(run.of<M::Dial>(start).size(), copies.size());
  for (M::PeerId p = 0; p < copies.size(); ++p) {
    run.on(M::Connected{p});
    run.answer_pages(copies);
  }
}

void open_sink(Run& run, std::vector<bool> done = {}) {
  auto opens = run.of<M::OpenSink>(run.all);
  BOOST_REQUIRE(!opens.empty());
  auto chunks = opens.back().manifest.chunk_count();
  if (done.empty()) done.assign(chunks, false);
  run.on(M::SinkOpened{done, 0});
}

// Serves until the machine asks to check the object or the serving stops.
void serve_until_check(Run& run, const std::vector<bool>& good, std::set<M::PeerId> silent = {}) {
  auto checks = run.taken<M::CheckObject>().size();
  for (int rounds = 0; rounds < 100000 && run.taken<M::CheckObject>().size() == checks && !run.failure(); ++rounds)
    if (!run.serve_one(good, silent)) break;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(download_machine)

BOOST_AUTO_TEST_CASE(two_peers_with_the_same_copy_share_the_work_and_the_object_is_checked_once) {
  Copy copy(10 * kChunk + 7);
  Run run(2, copy.size);
  bring_up(run, {&copy, &copy});
  open_sink(run);
  serve_until_check(run, {true, true});
  BOOST_REQUIRE_EQUAL(run.taken<M::CheckObject>().size(), 1u);
  run.on(M::ObjectChecked{true});
  BOOST_TEST(run.done());
  BOOST_TEST(run.machine.report()[0].bytes > 0u);
  BOOST_TEST(run.machine.report()[1].bytes > 0u);
  BOOST_TEST(run.machine.bytes_fetched() == copy.size);
}

BOOST_AUTO_TEST_CASE(a_link_lost_before_the_manifest_is_dialled_again_and_the_download_goes_on) {
  Copy copy(4 * kChunk);
  Run run(1, copy.size);
  run.on(M::Start{});
  run.on(M::Connected{0});
  run.on(M::LinkLost{0, "connection reset"});
  BOOST_TEST(run.taken<M::Dial>().size() == 1u);
  run.advance(2s);  // the redial backoff
  BOOST_REQUIRE_EQUAL(run.taken<M::Dial>().size(), 2u);
  run.on(M::Connected{0});
  run.answer_pages({&copy});
  open_sink(run);
  serve_until_check(run, {true});
  run.on(M::ObjectChecked{true});
  BOOST_TEST(run.done());
  BOOST_TEST(run.machine.report()[0].redialled.find("connection reset") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_peer_whose_link_broke_before_its_manifest_does_not_delay_the_choice) {
  Copy copy(4 * kChunk);
  Run run(2, copy.size);
  run.on(M::Start{});
  run.on(M::Connected{0});
  run.on(M::Connected{1});
  run.on(M::LinkLost{1, "connection reset"});  // a provider gone, still on the DHT
  auto page_requests = run.taken<M::RequestPage>();
  run.on(M::PageArrived{0, page_requests[0].request, copy.page(0)});
  BOOST_TEST(run.taken<M::OpenSink>().size() == 1u);  // at once, not after the grace
  open_sink(run);
  serve_until_check(run, {true, true});
  run.on(M::ObjectChecked{true});
  BOOST_TEST(run.done());
}

BOOST_AUTO_TEST_CASE(a_peer_silent_before_its_manifest_holds_nobody_back) {
  Copy copy(8 * kChunk);
  Run run(2, copy.size);
  run.on(M::Start{});
  run.on(M::Connected{0});
  run.on(M::Connected{1});  // peer 1 never answers its page request
  auto page_requests = run.taken<M::RequestPage>();
  BOOST_REQUIRE_EQUAL(page_requests.size(), 2u);
  run.on(M::PageArrived{0, page_requests[0].request, copy.page(0)});
  BOOST_TEST(run.taken<M::OpenSink>().empty());
  run.advance(1s);  // the grace after the first answer, not the silent peer's deadline
  BOOST_REQUIRE_EQUAL(run.taken<M::OpenSink>().size(), 1u);
  open_sink(run);
  serve_until_check(run, {true, true});
  BOOST_TEST(run.taken<M::CheckObject>().size() == 1u);
  // The silent one is dropped at its deadline, with the reason.
  run.advance(20s);
  BOOST_TEST(run.machine.report()[1].dropped.find("no answer to MANIFEST") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_stall_mid_chunk_sends_the_chunk_to_another_peer) {
  Copy copy(8 * kChunk);
  Run run(2, copy.size);
  bring_up(run, {&copy, &copy});
  open_sink(run);
  // Peer 0 streams slowly (its frames keep coming); peer 1 sends nothing at all.
  for (int i = 0; i < 30; ++i) {
    run.advance(1s);
    run.on(M::DataSeen{0});
  }
  BOOST_TEST(run.machine.report()[1].redialled.find("stalled") != std::string::npos);
  BOOST_TEST(run.machine.report()[0].redialled.empty());
  // Peer 1's chunks went back to the others: peer 0 serves them all.
  serve_until_check(run, {true, true}, {1});
  BOOST_REQUIRE_EQUAL(run.taken<M::CheckObject>().size(), 1u);
  BOOST_TEST(run.machine.report()[0].bytes == copy.size);
}

BOOST_AUTO_TEST_CASE(every_peer_gone_is_a_clear_failure_within_a_bounded_time) {
  Copy copy(8 * kChunk);
  Run run(1, copy.size);
  bring_up(run, {&copy});
  open_sink(run);
  serve_until_check(run, {true}, {0});  // the only peer stalls
  run.new_dials();
  for (int i = 0; i < 10 && !run.failure(); ++i) {
    run.advance(31s);
    for (const auto& d : run.new_dials()) run.on(M::ConnectFailed{d.peer, "Connection refused"});
  }
  BOOST_REQUIRE(run.failure());
  BOOST_TEST(run.failure()->find("every provider failed") != std::string::npos, *run.failure());
  BOOST_TEST(run.failure()->find("peer0") != std::string::npos, *run.failure());
  BOOST_TEST((run.now - M::Clock::time_point{std::chrono::hours(1)} < 2min));
}

BOOST_AUTO_TEST_CASE(a_final_hash_mismatch_tries_the_next_copy_without_its_backers) {
  Copy good(6 * kChunk), bad(6 * kChunk, 1);  // same size, other bytes: a corrupt replica
  Run run(2, good.size);
  // The corrupt replica answers first and wins the tie.
  bring_up(run, {&bad, &good});
  auto opens = run.taken<M::OpenSink>();
  BOOST_REQUIRE_EQUAL(opens.size(), 1u);
  BOOST_TEST((opens[0].manifest.hashes == bad.hashes));
  open_sink(run);
  serve_until_check(run, {true, true});
  BOOST_REQUIRE_EQUAL(run.taken<M::CheckObject>().size(), 1u);
  run.on(M::ObjectChecked{false});
  // No second check of the bad copy starts while its backers are dropped.
  BOOST_REQUIRE_EQUAL(run.taken<M::CheckObject>().size(), 1u);
  // Its backer is dropped; the other copy's manifest is fetched and opened.
  BOOST_TEST(run.machine.report()[0].dropped.find("does not match the key") != std::string::npos);
  opens = run.taken<M::OpenSink>();
  BOOST_REQUIRE_EQUAL(opens.size(), 2u);
  BOOST_TEST((opens[1].manifest.hashes == good.hashes));
  auto asked_before = run.taken<M::RequestChunk>().size();
  open_sink(run);
  BOOST_TEST(run.taken<M::RequestChunk>().size() > asked_before);  // the good copy's chunks are asked for
  serve_until_check(run, {true, true});
  BOOST_REQUIRE_EQUAL(run.taken<M::CheckObject>().size(), 2u);
  run.on(M::ObjectChecked{true});
  BOOST_TEST(run.done());
}

BOOST_AUTO_TEST_CASE(chunks_found_bad_after_the_digest_fails_drop_their_sender_and_come_again_from_the_others) {
  Copy copy(8 * kChunk);
  Run run(2, copy.size);
  bring_up(run, {&copy, &copy});
  open_sink(run);
  // Both serve; the chunks were stored unchecked (ChunkSink::open), so all look good.
  serve_until_check(run, {true, true});
  BOOST_REQUIRE_EQUAL(run.taken<M::CheckObject>().size(), 1u);
  std::vector<std::size_t> from_peer1;
  for (const auto& r : run.taken<M::RequestChunk>())
    if (r.peer == 1) from_peer1.push_back(r.chunk);
  BOOST_REQUIRE(!from_peer1.empty());
  auto asked = run.taken<M::RequestChunk>().size();
  // The digest fails and the recheck blames one chunk that peer 1 sent.
  run.on(M::ObjectChecked{false, {from_peer1.front()}});
  BOOST_TEST(run.machine.report()[1].dropped.find("fails verification") != std::string::npos,
             run.machine.report()[1].dropped);
  BOOST_TEST(run.machine.report()[0].dropped.empty());  // the honest backer stays
  auto again = run.taken<M::RequestChunk>();
  BOOST_REQUIRE(again.size() > asked);
  BOOST_TEST(again.back().peer == 0u);
  BOOST_TEST(again.back().chunk == from_peer1.front());
  serve_until_check(run, {true, true});
  BOOST_REQUIRE_EQUAL(run.taken<M::CheckObject>().size(), 2u);
  run.on(M::ObjectChecked{true});
  BOOST_TEST(run.done());
  BOOST_TEST(run.machine.bytes_fetched() == copy.size);  // the bad chunk is not counted twice
}

BOOST_AUTO_TEST_CASE(with_a_pinned_root_only_the_copy_with_that_manifest_is_taken) {
  Copy good(4 * kChunk), other(4 * kChunk, 3);
  Run run(2, good.size);
  run.machine.pin_root(good.root);
  bring_up(run, {&other, &good});
  BOOST_TEST(run.machine.report()[0].dropped.find("another manifest root") != std::string::npos,
             run.machine.report()[0].dropped);
  auto opens = run.taken<M::OpenSink>();
  BOOST_REQUIRE_EQUAL(opens.size(), 1u);
  BOOST_TEST((opens[0].manifest.hashes == good.hashes));
}

BOOST_AUTO_TEST_CASE(a_peer_with_the_wrong_chunk_size_or_object_size_is_dropped) {
  Copy copy(3 * kChunk);
  Copy other_size(5 * kChunk);
  Run run(3, copy.size);
  run.on(M::Start{});
  for (M::PeerId p = 0; p < 3; ++p) run.on(M::Connected{p});
  auto pages = run.taken<M::RequestPage>();
  auto odd = copy.page(0);
  odd.chunk_size = 4096;
  run.on(M::PageArrived{0, pages[0].request, odd});
  run.on(M::PageArrived{1, pages[1].request, other_size.page(0)});
  run.on(M::PageArrived{2, pages[2].request, copy.page(0)});
  BOOST_TEST(run.machine.report()[0].dropped.find("not the protocol's") != std::string::npos);
  BOOST_TEST(run.machine.report()[1].dropped.find("the key says") != std::string::npos);
  BOOST_REQUIRE_EQUAL(run.taken<M::OpenSink>().size(), 1u);
  auto drops = run.taken<M::Drop>();
  BOOST_TEST(drops.size() == 2u);
  BOOST_TEST(drops[0].bad_data);
}

BOOST_AUTO_TEST_CASE(an_object_of_many_manifest_pages_is_fetched_page_by_page_from_its_backers) {
  Copy copy(std::uint64_t{2} * kPage * kChunk + 5);  // three pages
  Run run(2, copy.size);
  bring_up(run, {&copy, &copy});
  // Pages 1 and 2 were asked of the two backers; the answers came; the root checked out.
  auto pages = run.taken<M::RequestPage>();
  BOOST_TEST(pages.size() == 4u);
  auto opens = run.taken<M::OpenSink>();
  BOOST_REQUIRE_EQUAL(opens.size(), 1u);
  BOOST_TEST(opens[0].manifest.chunk_count() == copy.chunks());
}

BOOST_AUTO_TEST_CASE(pages_that_do_not_match_their_root_drop_the_peer_that_sent_them) {
  Copy copy(std::uint64_t{kPage} * kChunk + 1);  // two pages
  Run run(1, copy.size);
  run.on(M::Start{});
  auto acts = run.on(M::Connected{0});
  run.on(M::PageArrived{0, run.of<M::RequestPage>(acts)[0].request, copy.page(0)});
  auto page1 = run.of<M::RequestPage>(run.last);
  BOOST_REQUIRE_EQUAL(page1.size(), 1u);
  auto forged = copy.page(1);
  forged.hashes[0] ^= 1;
  run.on(M::PageArrived{0, page1[0].request, forged});
  BOOST_TEST(run.machine.report()[0].dropped.find("do not match its own root") != std::string::npos);
  BOOST_REQUIRE(run.failure());
}

BOOST_AUTO_TEST_CASE(a_busy_peer_is_asked_again_when_it_says_and_a_hashing_seeder_is_waited_for) {
  Copy copy(4 * kChunk);
  Run run(1, copy.size);
  run.on(M::Start{});
  auto& acts = run.on(M::Connected{0});
  auto page = run.of<M::RequestPage>(acts);
  run.on(M::Refused{0, page[0].request, peer::ErrorCode::Busy, "hashing the object: 40%", 2000});
  auto p = run.machine.progress(run.now);
  BOOST_TEST(p.waiting == 1u);
  BOOST_TEST(p.waiting_why == "hashing the object: 40%");
  run.advance(1900ms);
  BOOST_TEST(run.taken<M::RequestPage>().size() == 1u);
  run.advance(1s);  // 2 s and at most a quarter more
  auto again = run.taken<M::RequestPage>();
  BOOST_REQUIRE_EQUAL(again.size(), 2u);
  run.on(M::PageArrived{0, again[1].request, copy.page(0)});
  BOOST_TEST(run.taken<M::OpenSink>().size() == 1u);
  BOOST_TEST(!run.failure());
}

BOOST_AUTO_TEST_CASE(a_full_peer_is_dialled_again_when_it_says_and_that_is_no_failure) {
  Copy copy(4 * kChunk);
  Run run(1, copy.size);
  run.on(M::Start{});
  run.on(M::Connected{0});
  run.new_dials();
  run.on(M::PeerBusy{0, "node busy: serving 4 members, its limit", 3000ms});
  BOOST_TEST(!run.failure());
  auto p = run.machine.progress(run.now);
  BOOST_TEST(p.waiting == 1u);
  BOOST_TEST(p.waiting_why == "node busy: serving 4 members, its limit");
  run.advance(2900ms);
  BOOST_TEST(run.new_dials().empty());
  run.advance(1s);  // 3 s and at most a quarter more
  BOOST_TEST(run.new_dials().size() == 1u);
  run.on(M::Connected{0});
  run.answer_pages({&copy});
  BOOST_TEST(run.taken<M::OpenSink>().size() == 1u);
  BOOST_TEST(run.machine.report()[0].redialled.empty());  // busy is not a broken link
  BOOST_TEST(run.machine.report()[0].dropped.empty());
}

BOOST_AUTO_TEST_CASE(a_peer_that_does_not_hold_the_object_is_dropped_and_nobody_left_is_a_failure) {
  Run run(2, 100);
  run.on(M::Start{});
  run.on(M::Connected{0});
  run.on(M::ConnectFailed{1, "no answer within 5 s"});
  auto page = run.taken<M::RequestPage>();
  run.on(M::Refused{0, page[0].request, peer::ErrorCode::NotPresent, "not held here", 0});
  BOOST_REQUIRE(run.failure());
  BOOST_TEST(run.failure()->find("no provider could serve KEY") != std::string::npos, *run.failure());
  BOOST_TEST(run.failure()->find("not held here") != std::string::npos);
  BOOST_TEST(run.failure()->find("no answer within 5 s") != std::string::npos);
  // The report tells one that does not hold it from one that could not be reached.
  BOOST_TEST(run.machine.report()[0].absent);
  BOOST_TEST(!run.machine.report()[1].absent);
  BOOST_TEST(!run.machine.report()[0].bad_data);
}

BOOST_AUTO_TEST_CASE(a_corrupt_chunk_costs_its_sender_and_goes_to_another_peer) {
  Copy copy(8 * kChunk);
  Run run(2, copy.size);
  bring_up(run, {&copy, &copy});
  open_sink(run);
  serve_until_check(run, {true, false});  // peer 1 sends garbage
  BOOST_REQUIRE_EQUAL(run.taken<M::CheckObject>().size(), 1u);
  BOOST_TEST(run.machine.report()[1].dropped == "sent a chunk that fails verification");
  BOOST_TEST(run.machine.report()[1].bad_data);
  BOOST_TEST(!run.machine.report()[1].absent);
  auto drops = run.taken<M::Drop>();
  BOOST_REQUIRE_EQUAL(drops.size(), 1u);
  BOOST_TEST(drops[0].bad_data);
  BOOST_TEST(run.machine.report()[0].bytes == copy.size);
}

BOOST_AUTO_TEST_CASE(a_resumed_download_asks_only_for_what_is_missing) {
  Copy copy(6 * kChunk);
  Run run(1, copy.size);
  bring_up(run, {&copy});
  run.on(M::SinkOpened{{true, true, true, false, true, false}, 4 * kChunk});
  auto asked = run.taken<M::RequestChunk>();
  BOOST_REQUIRE_EQUAL(asked.size(), 2u);
  BOOST_TEST(asked[0].chunk == 3u);
  BOOST_TEST(asked[1].chunk == 5u);
  BOOST_TEST(asked[1].offset == 5u * kChunk);
}

BOOST_AUTO_TEST_CASE(an_empty_object_needs_no_chunk) {
  Copy copy(0);
  Run run(1, 0);
  bring_up(run, {&copy});
  open_sink(run);
  BOOST_TEST(run.taken<M::RequestChunk>().empty());
  BOOST_TEST(run.taken<M::CheckObject>().size() == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
