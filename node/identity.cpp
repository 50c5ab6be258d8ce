#include "node/identity.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <iterator>

#include "node/state_files.hpp"

namespace annexswarm {
namespace fs = std::filesystem;

NodeId node_id_of(const dht::crypto::Identity& identity) {
  NodeId id;
  const auto& h = identity.second->getId();
  std::copy_n(h.data(), id.bytes.size(), id.bytes.begin());
  return id;
}

Result<dht::crypto::Identity> load_or_create_identity(const fs::path& state_dir, bool& created) {
  created = false;
  auto key_path = state_dir / "identity.key";
  auto crt_path = state_dir / "identity.crt";
  std::error_code ec;
  if (fs::exists(key_path, ec) || fs::exists(crt_path, ec)) {
    auto key = read_file(key_path);
    auto crt = read_file(crt_path);
    if (!key) return Error{key.error()};
    if (!crt) return Error{crt.error()};
    try {
      auto private_key = std::make_shared<dht::crypto::PrivateKey>(
          dht::Blob(key->begin(), key->end()));
      auto certificate = std::make_shared<dht::crypto::Certificate>(
          dht::Blob(crt->begin(), crt->end()));
      if (private_key->getPublicKey().getId() != certificate->getId())
        return Error{"identity in " + state_dir.string() +
                     " is inconsistent (key and certificate differ); move identity.* away to make a new one"};
      return dht::crypto::Identity{private_key, certificate};
    } catch (const std::exception& e) {
      return Error{"identity in " + state_dir.string() + " is unreadable (" + e.what() +
                   "); move identity.* away to make a new one"};
    }
  }
  auto identity = dht::crypto::generateIdentity("annex-swarm node", {}, kIdentityKeyBits);
  auto key_blob = identity.first->serialize();
  dht::Blob crt_blob;
  identity.second->pack(crt_blob);
  if (auto r = write_file_atomic(key_path, std::string(key_blob.begin(), key_blob.end()), 0600); !r)
    return Error{r.error()};
  if (auto r = write_file_atomic(crt_path, std::string(crt_blob.begin(), crt_blob.end()), 0644); !r)
    return Error{r.error()};
  created = true;
  return identity;
}

}  // namespace annexswarm
