#include <boost/test/unit_test.hpp>

#include "tests/support/test_support.hpp"

#include "protocol/annex_key.hpp"

using annexswarm::AnnexKey;
using annexswarm::HashAlgorithm;

namespace {
const std::string kSha = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
}

BOOST_AUTO_TEST_SUITE(annex_key)

BOOST_AUTO_TEST_CASE(parses_fields_of_a_sha256e_key) {
  auto key = AnnexKey::parse("SHA256E-s6-m1700000000--" + kSha + ".txt");
  BOOST_REQUIRE_MESSAGE(key, key.error());
  BOOST_TEST(key->backend() == "SHA256E");
  BOOST_TEST(*key->size() == 6u);
  BOOST_TEST(*key->mtime() == 1700000000u);
  BOOST_TEST(key->digest_hex() == kSha);
  BOOST_TEST(key->verifiable());
  BOOST_TEST((key->hash() == HashAlgorithm::Sha256));
}

BOOST_AUTO_TEST_CASE(parses_chunk_fields) {
  auto key = AnnexKey::parse("SHA256-s100-S10-C3--" + kSha);
  BOOST_REQUIRE(key);
  BOOST_TEST(*key->chunk_size() == 10u);
  BOOST_TEST(*key->chunk_number() == 3u);
}

BOOST_AUTO_TEST_CASE(share_keys_name_their_manifest_root_and_size) {
  std::string root(64, 'a');
  auto k = AnnexKey::parse("SWARMSHARE-s12582912--" + root);
  BOOST_REQUIRE(k);
  BOOST_TEST(k->is_share());
  BOOST_TEST(k->share_root_hex() == root);
  BOOST_TEST(*k->content_size() == 12582912u);
  BOOST_TEST(!k->verifiable());  // not by a digest of its bytes: by its manifest
  BOOST_TEST(k->checkable());
  BOOST_TEST(AnnexKey::parse("SHA256E-s1--" + std::string(64, 'a'))->share_root_hex().empty());
  for (auto bad : {"SWARMSHARE--" + root, "SWARMSHARE-s1--" + root.substr(1), "SWARMSHARE-s1--" + root + ".x",
                   "SWARMSHARE-s1--" + std::string(64, 'A'), "SWARMSHARE-s1-S1-C1--" + root})
    BOOST_TEST(!AnnexKey::parse(bad), bad);
}

BOOST_AUTO_TEST_CASE(worm_and_url_keys_are_not_verifiable) {
  auto worm = AnnexKey::parse("WORM-s5-m1--photo.jpg");
  BOOST_REQUIRE(worm);
  BOOST_TEST(!worm->verifiable());
  auto url = AnnexKey::parse("URL--example.org&cfile");
  BOOST_REQUIRE(url);
  BOOST_TEST(!url->verifiable());
}

BOOST_AUTO_TEST_CASE(rejects_path_like_and_malformed_keys) {
  for (std::string bad : {std::string(""), std::string("../x"), std::string("..--.."),
                          std::string("SHA256E-s1--../../etc/passwd"), std::string("WORM--a/b"),
                          std::string("nodashes"), std::string("-s1--x"), std::string("SHA256E-s1--"),
                          std::string("SHA256E-sX--" + kSha), std::string("SHA256E-q1--" + kSha),
                          std::string("SHA256E-s1-s2--" + kSha), std::string("SHA256--abc"),
                          std::string("SHA256--" + kSha + ".txt"), std::string("WORM--a b"),
                          std::string("WORM--a\nb"), std::string("WORM--.."),
                          std::string("SHA256E-s1--" + std::string(64, 'G'))}) {
    auto key = AnnexKey::parse(bad);
    BOOST_TEST(!key, "accepted: " << bad);
    if (!key) BOOST_TEST(!key.error().empty());
  }
}

BOOST_AUTO_TEST_CASE(rejects_over_long_keys) {
  BOOST_TEST(!AnnexKey::parse("WORM--" + std::string(AnnexKey::kMaxLength, 'a')));
  BOOST_TEST(AnnexKey::parse("WORM--" + std::string(AnnexKey::kMaxLength - 6, 'a')));
}

BOOST_AUTO_TEST_CASE(hash_dirs_have_git_annex_shape) {
  auto key = AnnexKey::parse("SHA256E-s6--" + kSha + ".txt");
  BOOST_REQUIRE(key);
  BOOST_TEST(key->hash_dir_mixed().size() == 5u);
  BOOST_TEST(key->hash_dir_mixed()[2] == '/');
  BOOST_TEST(key->hash_dir_lower().size() == 7u);
  BOOST_TEST(key->hash_dir_lower()[3] == '/');
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(annex_key_chunks)

BOOST_AUTO_TEST_CASE(a_chunk_key_names_its_own_size_and_cannot_be_hashed_alone) {
  const std::string digest(64, 'a');
  auto first = AnnexKey::parse("SHA256E-s10485760-S104857-C1--" + digest + ".bin").value();
  auto last = AnnexKey::parse("SHA256E-s10485760-S104857-C101--" + digest + ".bin").value();
  auto past = AnnexKey::parse("SHA256E-s10485760-S104857-C102--" + digest + ".bin").value();
  auto whole = AnnexKey::parse("SHA256E-s10485760--" + digest + ".bin").value();
  BOOST_TEST(first.is_chunk());
  BOOST_TEST(!first.verifiable());
  BOOST_TEST(first.checked_by_annex());
  BOOST_TEST(first.content_size().value() == 104857u);
  BOOST_TEST(last.content_size().value() == 10485760u - 100u * 104857u);
  BOOST_TEST(!past.content_size());
  BOOST_TEST(whole.verifiable());
  BOOST_TEST(!whole.checked_by_annex());
  BOOST_TEST(whole.content_size().value() == 10485760u);
  BOOST_TEST(AnnexKey::parse("GPGHMACSHA1--0123456789abcdef").value().checked_by_annex());
  BOOST_TEST(!AnnexKey::parse("WORM-s5-m1--photo.jpg").value().checked_by_annex());
}

BOOST_AUTO_TEST_SUITE_END()
