#include "protocol/crypto.hpp"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <stdexcept>
#include <string>

namespace annexswarm::crypto {
namespace {
void check(int rc, const char* what) {
  // Only reachable on a broken GnuTLS installation, never from input data.
  if (rc < 0) throw std::runtime_error(std::string(what) + ": " + gnutls_strerror(rc));
}

class AeadCipher {
public:
  explicit AeadCipher(const AeadKey& key) {
    gnutls_datum_t k{const_cast<unsigned char*>(key.data()), kAeadKeySize};
    check(gnutls_aead_cipher_init(&handle_, GNUTLS_CIPHER_AES_256_GCM, &k), "aead init");
  }
  ~AeadCipher() { gnutls_aead_cipher_deinit(handle_); }
  AeadCipher(const AeadCipher&) = delete;
  AeadCipher& operator=(const AeadCipher&) = delete;
  gnutls_aead_cipher_hd_t get() const { return handle_; }

private:
  gnutls_aead_cipher_hd_t handle_ = nullptr;
};
}  // namespace

Sha256Digest sha256(ByteView data) {
  Sha256Digest out;
  check(gnutls_hash_fast(GNUTLS_DIG_SHA256, data.data(), data.size(), out.data()), "sha256");
  return out;
}

Sha256Digest hmac_sha256(ByteView key, ByteView message) {
  Sha256Digest out;
  check(gnutls_hmac_fast(GNUTLS_MAC_SHA256, key.data(), key.size(), message.data(),
                         message.size(), out.data()),
        "hmac-sha256");
  return out;
}

Md5Digest md5(ByteView data) {
  Md5Digest out;
  check(gnutls_hash_fast(GNUTLS_DIG_MD5, data.data(), data.size(), out.data()), "md5");
  return out;
}

void random_fill(std::span<std::uint8_t> out) {
  check(gnutls_rnd(GNUTLS_RND_KEY, out.data(), out.size()), "random");
}

Bytes aead_seal(const AeadKey& key, const AeadNonce& nonce, ByteView aad, ByteView plaintext) {
  AeadCipher cipher(key);
  Bytes out(plaintext.size() + kAeadTagSize);
  std::size_t out_len = out.size();
  check(gnutls_aead_cipher_encrypt(cipher.get(), nonce.data(), nonce.size(), aad.data(),
                                   aad.size(), kAeadTagSize, plaintext.data(), plaintext.size(),
                                   out.data(), &out_len),
        "aead seal");
  out.resize(out_len);
  return out;
}

std::optional<Bytes> aead_open(const AeadKey& key, const AeadNonce& nonce, ByteView aad,
                               ByteView sealed) {
  if (sealed.size() < kAeadTagSize) return std::nullopt;
  AeadCipher cipher(key);
  Bytes out(sealed.size());
  std::size_t out_len = out.size();
  int rc = gnutls_aead_cipher_decrypt(cipher.get(), nonce.data(), nonce.size(), aad.data(),
                                      aad.size(), kAeadTagSize, sealed.data(), sealed.size(),
                                      out.data(), &out_len);
  if (rc < 0) return std::nullopt;
  out.resize(out_len);
  return out;
}

}  // namespace annexswarm::crypto
