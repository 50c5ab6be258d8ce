#include "protocol/possession.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "protocol/crypto.hpp"
#include "protocol/peer_frames.hpp"

namespace annexswarm {
namespace {
std::uint64_t le64(const crypto::Sha256Digest& d, std::size_t at) {
  std::uint64_t v = 0;
  for (std::size_t b = 0; b < 8; ++b) v |= static_cast<std::uint64_t>(d[at + b]) << (8 * b);
  return v;
}

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};
}  // namespace

PossessionChallenge derive_challenge(ByteView seed, std::uint32_t index, std::uint64_t size) {
  PossessionChallenge c;
  auto label = "challenge/" + std::to_string(index);
  auto nonce = crypto::hmac_sha256(seed, as_bytes(label + "/nonce"));
  c.nonce.assign(nonce.begin(), nonce.end());
  auto length = std::min<std::uint64_t>(kChallengeRange, size);
  for (std::size_t r = 0; r < kChallengeRanges; ++r) {
    auto pick = le64(crypto::hmac_sha256(seed, as_bytes(label + "/range/" + std::to_string(r))), 0);
    c.offsets.push_back(size > length ? pick % (size - length + 1) : 0);
    c.lengths.push_back(length);
  }
  return c;
}

namespace {
// The answer to `challenge` from the open file `fd` (`object` names it in errors).
Result<Bytes> answer_from(int fd, std::string_view key, const std::filesystem::path& object,
                          const PossessionChallenge& challenge) {
  Bytes bytes;
  for (std::size_t i = 0; i < challenge.offsets.size() && i < challenge.lengths.size(); ++i) {
    auto at = bytes.size();
    bytes.resize(at + challenge.lengths[i]);
    auto n = ::pread(fd, bytes.data() + at, challenge.lengths[i], static_cast<off_t>(challenge.offsets[i]));
    if (n != static_cast<ssize_t>(challenge.lengths[i]))
      return Error{"cannot read " + object.string() + " (shorter than the challenge?)"};
  }
  return peer::prove_mac(challenge.nonce, key, bytes);
}
}  // namespace

Result<Bytes> answer_challenge(std::string_view key, const std::filesystem::path& object,
                               const PossessionChallenge& challenge) {
  Fd file{::open(object.c_str(), O_RDONLY | O_CLOEXEC)};
  if (file.fd < 0) return Error{"cannot open " + object.string() + ": " + std::strerror(errno)};
  return answer_from(file.fd, key, object, challenge);
}

Result<std::vector<PossessionChallenge>> make_challenges(std::string_view key, const std::filesystem::path& object,
                                                         ByteView seed, std::size_t count) {
  Fd file{::open(object.c_str(), O_RDONLY | O_CLOEXEC)};
  struct stat st {};
  if (file.fd < 0 || ::fstat(file.fd, &st) != 0)
    return Error{"cannot read " + object.string() + ": " + std::strerror(errno)};
  if (st.st_size <= 0) return std::vector<PossessionChallenge>{};  // nothing to prove: the key says it all
  std::vector<PossessionChallenge> out;
  for (std::uint32_t i = 0; i < count; ++i) {
    auto c = derive_challenge(seed, i, static_cast<std::uint64_t>(st.st_size));
    auto mac = answer_from(file.fd, key, object, c);
    if (!mac) return Error{mac.error()};
    c.mac = std::move(*mac);
    out.push_back(std::move(c));
  }
  return out;
}

Result<std::vector<PossessionChallenge>> make_challenges(std::string_view key, const std::filesystem::path& object,
                                                         std::size_t count) {
  Bytes seed(32);
  crypto::random_fill(seed);
  return make_challenges(key, object, seed, count);
}

}  // namespace annexswarm
