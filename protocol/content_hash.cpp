#include "protocol/content_hash.hpp"

#include <blake2.h>
#include <gnutls/crypto.h>

namespace annexswarm {

class ContentHash::Impl {
public:
  virtual ~Impl() = default;
  virtual void update(ByteView bytes) = 0;
  virtual Bytes finish() = 0;
};

namespace {

class GnutlsHash final : public ContentHash::Impl {
public:
  explicit GnutlsHash(gnutls_digest_algorithm_t algorithm) : algorithm_(algorithm) {
    if (gnutls_hash_init(&handle_, algorithm) < 0) handle_ = nullptr;
  }
  ~GnutlsHash() override {
    if (handle_) gnutls_hash_deinit(handle_, nullptr);
  }
  bool ok() const { return handle_ != nullptr; }
  void update(ByteView bytes) override { gnutls_hash(handle_, bytes.data(), bytes.size()); }
  Bytes finish() override {
    Bytes out(gnutls_hash_get_len(algorithm_));
    gnutls_hash_output(handle_, out.data());
    return out;
  }

private:
  gnutls_digest_algorithm_t algorithm_;
  gnutls_hash_hd_t handle_ = nullptr;
};

// libb2's four BLAKE2 flavours share one shape: init(state, outlen), update, final.
template <class State, int (*Init)(State*, std::size_t), int (*Update)(State*, const void*, std::size_t),
          int (*Final)(State*, void*, std::size_t)>
class Blake2Hash final : public ContentHash::Impl {
public:
  explicit Blake2Hash(std::size_t bytes) : bytes_(bytes) { Init(&state_, bytes); }
  void update(ByteView bytes) override { Update(&state_, bytes.data(), bytes.size()); }
  Bytes finish() override {
    Bytes out(bytes_);
    Final(&state_, out.data(), out.size());
    return out;
  }

private:
  State state_{};
  std::size_t bytes_;
};

// libb2 declares its functions with uint8_t pointers; these adapters give them one signature.
#define ANNEX_SWARM_BLAKE2_ADAPTERS(name)                                                              \
  int name##_init_n(name##_state* s, std::size_t n) { return name##_init(s, n); }                     \
  int name##_update_n(name##_state* s, const void* in, std::size_t n) {                               \
    return name##_update(s, static_cast<const std::uint8_t*>(in), n);                                 \
  }                                                                                                    \
  int name##_final_n(name##_state* s, void* out, std::size_t n) {                                     \
    return name##_final(s, static_cast<std::uint8_t*>(out), n);                                       \
  }                                                                                                    \
  using name##_hash = Blake2Hash<name##_state, name##_init_n, name##_update_n, name##_final_n>;
ANNEX_SWARM_BLAKE2_ADAPTERS(blake2b)
ANNEX_SWARM_BLAKE2_ADAPTERS(blake2bp)
ANNEX_SWARM_BLAKE2_ADAPTERS(blake2s)
ANNEX_SWARM_BLAKE2_ADAPTERS(blake2sp)
#undef ANNEX_SWARM_BLAKE2_ADAPTERS

std::unique_ptr<ContentHash::Impl> gnutls(gnutls_digest_algorithm_t algorithm) {
  auto h = std::make_unique<GnutlsHash>(algorithm);
  if (!h->ok()) return nullptr;
  return h;
}

std::unique_ptr<ContentHash::Impl> make_impl(HashAlgorithm algorithm) {
  switch (algorithm) {
    case HashAlgorithm::Md5: return gnutls(GNUTLS_DIG_MD5);
    case HashAlgorithm::Sha1: return gnutls(GNUTLS_DIG_SHA1);
    case HashAlgorithm::Sha224: return gnutls(GNUTLS_DIG_SHA224);
    case HashAlgorithm::Sha256: return gnutls(GNUTLS_DIG_SHA256);
    case HashAlgorithm::Sha384: return gnutls(GNUTLS_DIG_SHA384);
    case HashAlgorithm::Sha512: return gnutls(GNUTLS_DIG_SHA512);
    case HashAlgorithm::Sha3_224: return gnutls(GNUTLS_DIG_SHA3_224);
    case HashAlgorithm::Sha3_256: return gnutls(GNUTLS_DIG_SHA3_256);
    case HashAlgorithm::Sha3_384: return gnutls(GNUTLS_DIG_SHA3_384);
    case HashAlgorithm::Sha3_512: return gnutls(GNUTLS_DIG_SHA3_512);
    case HashAlgorithm::Blake2b160: return std::make_unique<blake2b_hash>(20);
    case HashAlgorithm::Blake2b224: return std::make_unique<blake2b_hash>(28);
    case HashAlgorithm::Blake2b256: return std::make_unique<blake2b_hash>(32);
    case HashAlgorithm::Blake2b384: return std::make_unique<blake2b_hash>(48);
    case HashAlgorithm::Blake2b512: return std::make_unique<blake2b_hash>(64);
    case HashAlgorithm::Blake2bp512: return std::make_unique<blake2bp_hash>(64);
    case HashAlgorithm::Blake2s160: return std::make_unique<blake2s_hash>(20);
    case HashAlgorithm::Blake2s224: return std::make_unique<blake2s_hash>(28);
    case HashAlgorithm::Blake2s256: return std::make_unique<blake2s_hash>(32);
    case HashAlgorithm::Blake2sp224: return std::make_unique<blake2sp_hash>(28);
    case HashAlgorithm::Blake2sp256: return std::make_unique<blake2sp_hash>(32);
    case HashAlgorithm::None:
    case HashAlgorithm::Other: return nullptr;
  }
  return nullptr;
}

}  // namespace

std::optional<ContentHash> ContentHash::start(HashAlgorithm algorithm) {
  auto impl = make_impl(algorithm);
  if (!impl) return std::nullopt;
  return ContentHash(std::move(impl));
}

ContentHash::ContentHash(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ContentHash::ContentHash(ContentHash&&) noexcept = default;
ContentHash& ContentHash::operator=(ContentHash&&) noexcept = default;
ContentHash::~ContentHash() = default;

void ContentHash::update(ByteView bytes) { impl_->update(bytes); }
std::string ContentHash::finish_hex() { return to_hex(impl_->finish()); }

}  // namespace annexswarm
