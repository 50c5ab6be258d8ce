// ChunkSink: chunks are checked against the manifest, written, listed for resume, and
// the object hash is fed in order whatever order chunks arrive in.
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "protocol/crypto.hpp"
#include "transfer/chunk_sink.hpp"

using namespace annexswarm;
namespace fs = std::filesystem;

namespace {

struct Object {
  std::string content;
  ObjectManifest manifest;
  fs::path dir;
  fs::path part;

  Object() {
    for (int i = 0; i < 10 * 1000 + 123; ++i) content.push_back(static_cast<char>(i * 31 % 256));
    manifest.size = content.size();
    manifest.chunk = 1000;
    for (std::size_t at = 0; at < content.size(); at += manifest.chunk) {
      auto d = crypto::sha256(as_bytes(std::string_view(content).substr(at, manifest.chunk)));
      manifest.hashes.insert(manifest.hashes.end(), d.begin(), d.end());
    }
    dir = fs::temp_directory_path() / ("chunk-sink-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    part = dir / "object.part";
  }
  ~Object() { fs::remove_all(dir); }

  ByteView chunk(std::size_t i) const {
    return as_bytes(std::string_view(content).substr(i * manifest.chunk, manifest.chunk_length(i)));
  }
  std::string digest() const { return to_hex(crypto::sha256(as_bytes(content))); }
  std::unique_ptr<ChunkSink> open(bool check_chunks = true) const {
    auto sink = ChunkSink::open(part, manifest, HashAlgorithm::Sha256, check_chunks);
    BOOST_REQUIRE_MESSAGE(sink, sink.error());
    return std::move(*sink);
  }
  std::string part_content() const {
    std::ifstream in(part, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(chunk_sink)

BOOST_AUTO_TEST_CASE(chunks_in_any_order_give_the_object_and_its_hash) {
  Object o;
  auto sink = o.open();
  BOOST_TEST(o.manifest.chunk_count() == 11u);
  for (std::size_t i : {3u, 0u, 10u, 1u, 2u, 9u, 4u, 5u, 8u, 7u, 6u})
    BOOST_TEST((sink->accept(i, o.chunk(i)).value() == ChunkSink::Verdict::Stored));
  BOOST_TEST((sink->accept(5, o.chunk(5)).value() == ChunkSink::Verdict::Duplicate));
  BOOST_TEST(sink->finish().value() == o.digest());
  BOOST_TEST((o.part_content() == o.content));
}

BOOST_AUTO_TEST_CASE(a_corrupt_or_misplaced_chunk_is_refused_and_not_written) {
  Object o;
  auto sink = o.open();
  Bytes bad(o.chunk(2).begin(), o.chunk(2).end());
  bad[17] ^= 1;
  BOOST_TEST((sink->accept(2, bad).value() == ChunkSink::Verdict::Corrupt));
  BOOST_TEST((sink->accept(3, o.chunk(2)).value() == ChunkSink::Verdict::Corrupt));  // right bytes, wrong place
  BOOST_TEST((sink->accept(99, o.chunk(2)).value() == ChunkSink::Verdict::Corrupt));  // no such chunk
  BOOST_TEST((sink->accept(10, o.chunk(10).first(5)).value() == ChunkSink::Verdict::Corrupt));  // short
  BOOST_TEST(!sink->done()[2]);
  BOOST_TEST(!sink->finish());  // incomplete
}

BOOST_AUTO_TEST_CASE(unchecked_chunks_that_spoil_the_digest_are_found_by_the_recheck_and_taken_again) {
  Object o;
  auto sink = o.open(false);
  Bytes bad(o.chunk(4).begin(), o.chunk(4).end());
  bad[3] ^= 1;
  for (std::size_t i = 0; i < 11; ++i)  // taken on trust: only the lengths are checked
    BOOST_TEST((sink->accept(i, i == 4 ? ByteView(bad) : o.chunk(i)).value() == ChunkSink::Verdict::Stored));
  auto digest = sink->finish();
  BOOST_REQUIRE(digest);
  BOOST_TEST(*digest != o.digest());
  auto culprits = sink->recheck();
  BOOST_REQUIRE(culprits);
  BOOST_TEST(*culprits == std::vector<std::size_t>{4}, boost::test_tools::per_element());
  BOOST_TEST(!sink->done()[4]);
  // From now on chunks are checked on arrival; the digest starts over.
  BOOST_TEST((sink->accept(4, bad).value() == ChunkSink::Verdict::Corrupt));
  BOOST_TEST((sink->accept(4, o.chunk(4)).value() == ChunkSink::Verdict::Stored));
  BOOST_TEST(sink->finish().value() == o.digest());
  BOOST_TEST((o.part_content() == o.content));
  BOOST_TEST(sink->recheck().value().empty());  // nothing left unchecked
}

BOOST_AUTO_TEST_CASE(a_reopened_sink_keeps_listed_chunks_that_still_verify) {
  Object o;
  {
    auto sink = o.open();
    for (std::size_t i : {0u, 1u, 2u, 6u}) BOOST_REQUIRE(sink->accept(i, o.chunk(i)));
  }  // a crash: nothing else saved
  {
    // Chunk 1 was damaged on disk, and the list names chunks that are not there.
    std::fstream f(o.part, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1500);
    f.put('X');
    std::ofstream(o.part.string() + ".chunks", std::ios::app) << "7\n999999\ngarbage\n";
  }
  auto sink = o.open();
  std::vector<bool> expected(11, false);
  expected[0] = expected[2] = expected[6] = true;
  BOOST_TEST(sink->done() == expected, boost::test_tools::per_element());
  BOOST_TEST(sink->resumed_bytes() == 3000u);
  for (std::size_t i = 0; i < 11; ++i)
    if (!expected[i]) BOOST_REQUIRE(sink->accept(i, o.chunk(i)));
  BOOST_TEST(sink->finish().value() == o.digest());
  BOOST_TEST((o.part_content() == o.content));
}

BOOST_AUTO_TEST_CASE(a_part_of_an_object_without_a_digest_is_complete_with_its_wanted_chunks_only) {
  Object o;
  auto opened = ChunkSink::open(o.part, o.manifest, HashAlgorithm::None);
  BOOST_REQUIRE_MESSAGE(opened, opened.error());
  auto& sink = **opened;
  std::vector<bool> wanted(o.manifest.chunk_count(), false);
  wanted[1] = wanted[4] = wanted[10] = true;
  BOOST_REQUIRE(sink.leave_out(wanted));
  BOOST_TEST(!sink.finish(), "complete before the wanted chunks came");
  for (std::size_t i : {10u, 1u, 4u}) BOOST_TEST((sink.accept(i, o.chunk(i)).value() == ChunkSink::Verdict::Stored));
  // Still checked against the manifest: a chunk that does not match is refused.
  BOOST_TEST((sink.accept(4, o.chunk(5)).value() == ChunkSink::Verdict::Corrupt));
  BOOST_TEST(sink.finish().ok());
  auto got = o.part_content();
  BOOST_TEST(got.substr(1000, 1000) == o.content.substr(1000, 1000));
  BOOST_TEST(got.substr(2000, 1000) == std::string(1000, '\0'));
  // With the key's digest to check, a part cannot be asked for.
  auto hashed = o.open();
  BOOST_TEST(!hashed->leave_out(wanted));
  // A list of the wrong length is refused.
  auto other = ChunkSink::open(o.dir / "other.part", o.manifest, HashAlgorithm::None);
  BOOST_REQUIRE(other);
  BOOST_TEST(!(*other)->leave_out(std::vector<bool>(3, true)));
}

BOOST_AUTO_TEST_CASE(a_mirror_grows_in_order_whatever_order_chunks_come_in_and_holds_the_object_at_the_end) {
  Object o;
  {
    auto sink = o.open();
    for (std::size_t i : {0u, 1u, 5u}) BOOST_REQUIRE(sink->accept(i, o.chunk(i)));
  }  // a crash: chunks 0, 1 and 5 stay in the partial file
  auto file = o.dir / "retrieve";
  std::ofstream(file) << "left over from an earlier try";
  auto sink = o.open();
  BOOST_REQUIRE(sink->mirror_to(file));
  auto mirrored = [&] { return fs::file_size(file); };
  BOOST_TEST(mirrored() == 2000u);  // the resumed prefix, and nothing of what was there
  BOOST_TEST(sink->prefix_bytes() == 2000u);
  BOOST_REQUIRE(sink->accept(3, o.chunk(3)));
  BOOST_TEST(mirrored() == 2000u);  // chunk 2 is still missing: 3 waits in the partial file
  BOOST_REQUIRE(sink->accept(2, o.chunk(2)));
  BOOST_TEST(mirrored() == 4000u);
  for (std::size_t i : {10u, 4u, 9u, 6u, 8u, 7u}) BOOST_REQUIRE(sink->accept(i, o.chunk(i)));
  BOOST_TEST(sink->prefix_bytes() == o.content.size());
  BOOST_TEST(sink->finish().value() == o.digest());
  BOOST_REQUIRE(sink->finish_mirror());
  std::ifstream in(file, std::ios::binary);
  BOOST_TEST((std::string((std::istreambuf_iterator<char>(in)), {}) == o.content));
  BOOST_TEST(!fs::exists(o.part));  // the mirror holds the object now
  BOOST_TEST(!fs::exists(o.part.string() + ".chunks"));
}

BOOST_AUTO_TEST_CASE(discard_removes_the_partial_file_and_its_list) {
  Object o;
  auto sink = o.open();
  BOOST_REQUIRE(sink->accept(0, o.chunk(0)));
  sink->discard();
  BOOST_TEST(!fs::exists(o.part));
  BOOST_TEST(!fs::exists(o.part.string() + ".chunks"));
}

BOOST_AUTO_TEST_SUITE_END()
