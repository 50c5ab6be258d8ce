#pragma once
// Swarm rules (issue 16): a plain-text document a person edits, signed with an admin's own
// OpenPGP key, that every member adopts when it is newer than the one it holds and signed
// by someone it already trusts.
//
//   version = 7                      # a later version replaces an earlier one, never back
//   expires = 2027-06-01             # UTC; from that day on the document is refused
//   swarm = PUBLIC_ID                # optional: only that swarm's members adopt it
//   admin = FINGERPRINT              # repeatable: who may sign the next version
//   group.home = NODEID NODEID       # named groups of node ids
//   store.UUID.copies = 3            # per swarm store (its annex UUID)
//   store.UUID.keep-on = home        # groups that keep its copies
//   store.UUID.grace = 10m           # how long a silent keeper may be away
//
// Trust: the first version a node adopts must be signed by an admin of its own config
// (`rules-admin`); every later one by an admin named in the version it holds. Signatures
// are checked with GPGME in a keyring private to the node (keys come with the document
// and count only through their fingerprints).
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/result.hpp"
#include "protocol/swarm_token.hpp"

namespace annexswarm {

struct StoreRule {
  std::optional<unsigned> copies;
  std::vector<std::string> keep_on;  // group names
  std::optional<std::chrono::seconds> grace;
};

struct SwarmRules {
  std::uint64_t version = 0;
  std::optional<std::int64_t> expires;  // unix seconds (00:00 UTC of the day named)
  std::optional<std::string> swarm;     // the swarm's public id, when the document names it
  std::vector<std::string> admins;      // OpenPGP fingerprints, 40 upper-case hex digits
  std::map<std::string, std::vector<NodeId>> groups;
  std::map<std::string, StoreRule> stores;  // by annex UUID
};

// Every problem, one per line, each with its line number.
Result<SwarmRules> parse_rules(std::string_view text);

// "0123 4567 ..." or "0x0123..." -> 40 upper-case hex digits, or an error.
Result<std::string> normalize_fingerprint(std::string_view text);

// The version a clear-signed document says it is, unchecked (0 when it names none): lets a
// member skip, without counting a refusal, the older versions others still publish.
std::uint64_t claimed_version(std::string_view armored);

// A clear-signed document checked with GPGME in a keyring made for it under `scratch_parent`
// (and removed after), holding only `public_keys` (armored; may be empty).
struct VerifiedText {
  std::string text;         // what was signed
  std::string fingerprint;  // the signer's primary key
};
Result<VerifiedText> verify_clearsigned(const std::filesystem::path& scratch_parent, std::string_view armored,
                                        std::string_view public_keys);

// Why a document was not adopted.
enum class RulesRefusal { Unsigned, BadSignature, NotAnAdmin, Rollback, Expired, Malformed };
std::string_view to_string(RulesRefusal r);

struct RulesRefusals {
  std::uint64_t unsigned_text = 0, bad_signature = 0, not_an_admin = 0, rollback = 0, expired = 0, malformed = 0;
  std::uint64_t& operator[](RulesRefusal r);
};

// The rules this node holds: adopts a newer valid version, refuses (and counts) the rest,
// and keeps what it adopted in the state directory across restarts.
class RulesBook {
public:
  // `swarms`: the public ids of the node's swarms (a document naming another is refused).
  RulesBook(std::filesystem::path state_dir, std::vector<std::string> config_admins,
            std::vector<std::string> swarms = {});

  // The version adopted before a restart, if any.
  Result<bool> load();

  struct Adopted {
    SwarmRules rules;
    std::string signer;
    std::string armored;      // the signed document as it was offered
    std::string public_keys;  // the keys that came with it (passed on with it)
  };
  struct Outcome {
    bool adopted = false;  // false: already held (same version and text), or refused
    std::optional<RulesRefusal> refused;
    std::string why;
  };
  // Offers a signed document (from the DHT, a push, a peer). `now` in unix seconds.
  Outcome offer(std::string_view armored, std::string_view public_keys, std::int64_t now);

  const std::optional<Adopted>& current() const { return current_; }
  const RulesRefusals& refusals() const { return refusals_; }
  const std::vector<std::string>& config_admins() const { return config_admins_; }

private:
  Outcome refuse(RulesRefusal why, std::string detail);

  std::filesystem::path dir_;
  std::vector<std::string> config_admins_;
  std::vector<std::string> swarms_;
  std::optional<Adopted> current_;
  bool locked_ = false;  // what was adopted cannot be read back: nothing is adopted
  RulesRefusals refusals_;
  std::set<std::string> logged_;  // refusals logged once each (bounded)
};

}  // namespace annexswarm
