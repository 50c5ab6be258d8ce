// Our object-path computation and key scan against Debian's real git-annex.
#include <boost/test/unit_test.hpp>

#include <fstream>

#include "node/annex_repo.hpp"
#include "protocol/annex_key.hpp"
#include "protocol/bytes.hpp"
#include "protocol/content_hash.hpp"
#include "tests/support/test_support.hpp"

using namespace annexswarm;
using namespace annexswarm::test;

BOOST_AUTO_TEST_SUITE(object_layout)

BOOST_AUTO_TEST_CASE(hash_dirs_match_git_annex_examinekey) {
  TempDir dir;
  auto repo = make_annex_repo(dir.path() / "r", {{"a.txt", "alpha\n"}});
  std::vector<std::string> keys{repo.key_of("a.txt"), "WORM-s5-m1700000000--photo.jpg",
                                "SHA1-s0--da39a3ee5e6b4b0d3255bfef95601890afd80709",
                                "MD5E-s3--d41d8cd98f00b204e9800998ecf8427e.tar.gz",
                                "SHA256E-s10-S5-C2--" + std::string(64, 'a')};
  for (const auto& text : keys) {
    auto key = AnnexKey::parse(text);
    BOOST_REQUIRE_MESSAGE(key, key.error());
    auto out = sh(repo.path, "git annex examinekey --format='${hashdirmixed} ${hashdirlower}\\n' '" + text + "'");
    BOOST_TEST(out == key->hash_dir_mixed() + "/ " + key->hash_dir_lower() + "/\n", "key " << text);
  }
}

BOOST_AUTO_TEST_CASE(content_hash_matches_every_git_annex_hash_backend) {
  TempDir dir;
  auto repo = make_annex_repo(dir.path() / "r", {});
  // More than one BLAKE2 block and not a multiple of any block size.
  std::string content;
  for (std::uint32_t i = 0; i < 300000; ++i) content.push_back(static_cast<char>(i * 7919u % 251));
  std::ofstream(repo.path / "blob", std::ios::binary) << content;
  for (const char* backend :
       {"MD5", "SHA1", "SHA224", "SHA256E", "SHA384", "SHA512", "SHA3_224", "SHA3_256", "SHA3_384", "SHA3_512",
        "BLAKE2B160", "BLAKE2B224", "BLAKE2B256", "BLAKE2B384", "BLAKE2B512", "BLAKE2BP512", "BLAKE2S160",
        "BLAKE2S224", "BLAKE2S256", "BLAKE2SP224", "BLAKE2SP256"}) {
    auto text = sh(repo.path, std::string("git annex calckey --backend=") + backend + " blob");
    text.erase(text.find_last_not_of('\n') + 1);
    auto key = AnnexKey::parse(text);
    BOOST_REQUIRE_MESSAGE(key, key.error());
    BOOST_TEST_REQUIRE(key->verifiable(), backend);
    auto hash = ContentHash::start(key->hash());
    BOOST_REQUIRE(hash);
    // Fed in uneven pieces, as chunks arrive.
    for (std::size_t at = 0; at < content.size(); at += 65537)
      hash->update(as_bytes(std::string_view(content).substr(at, 65537)));
    BOOST_TEST(hash->finish_hex() == std::string(key->digest_hex()), backend);
  }
  // SKEIN is recognised but not computable: such keys need --unverified.
  auto skein_text = sh(repo.path, "git annex calckey --backend=SKEIN256 blob");
  auto skein = AnnexKey::parse(skein_text.substr(0, skein_text.find('\n')));
  BOOST_REQUIRE(skein);
  BOOST_TEST(!skein->verifiable());
  BOOST_TEST(!ContentHash::start(skein->hash()));
}

BOOST_AUTO_TEST_CASE(scan_lists_exactly_the_present_keys) {
  TempDir dir;
  auto repo = make_annex_repo(dir.path() / "r", {{"a", "one\n"}, {"b", "two\n"}, {"c", "three\n"}});
  auto opened = open_annex_repo(repo.path);
  BOOST_REQUIRE_MESSAGE(opened, opened.error());
  BOOST_TEST(opened->uuid == repo.uuid);
  auto scan = scan_present_keys(*opened);
  std::vector<std::string> expected{repo.key_of("a"), repo.key_of("b"), repo.key_of("c")};
  std::sort(expected.begin(), expected.end());
  BOOST_TEST(scan.keys == expected, boost::test_tools::per_element());

  auto before = change_stamp(*opened);
  sh(repo.path, "git annex drop -q --force b");
  BOOST_TEST(!(change_stamp(*opened) == before));
  scan = scan_present_keys(*opened);
  BOOST_TEST(scan.keys.size() == 2u);
  BOOST_TEST(!std::binary_search(scan.keys.begin(), scan.keys.end(), repo.key_of("b")));
}

BOOST_AUTO_TEST_CASE(a_directory_that_is_no_annex_repository_says_what_to_do) {
  TempDir dir;
  auto missing = open_annex_repo(dir.path() / "nope");
  BOOST_REQUIRE(!missing);
  BOOST_TEST(missing.error().find("does not exist") != std::string::npos);
  sh(dir.path(), "git init -q plain");
  auto plain = open_annex_repo(dir.path() / "plain");
  BOOST_REQUIRE(!plain);
  BOOST_TEST(plain.error().find("git annex init") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
