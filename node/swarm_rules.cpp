#include "node/swarm_rules.hpp"

#include <gpgme.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <mutex>

#include "node/config.hpp"
#include "node/log.hpp"
#include "node/state_files.hpp"
#include "protocol/records.hpp"

namespace annexswarm {
namespace fs = std::filesystem;

namespace {

std::vector<std::string_view> words(std::string_view s) {
  std::vector<std::string_view> out;
  while (true) {
    s = trim(s);
    if (s.empty()) return out;
    auto end = s.find_first_of(" \t");
    out.push_back(s.substr(0, end));
    if (end == std::string_view::npos) return out;
    s.remove_prefix(end);
  }
}

// "2027-06-01" -> unix seconds at 00:00 UTC of that day.
std::optional<std::int64_t> parse_day(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  auto y = parse_number<int>(s.substr(0, 4));
  auto m = parse_number<unsigned>(s.substr(5, 2));
  auto d = parse_number<unsigned>(s.substr(8, 2));
  if (!y || !m || !d) return std::nullopt;
  std::chrono::year_month_day day{std::chrono::year{*y}, std::chrono::month{*m}, std::chrono::day{*d}};
  if (!day.ok()) return std::nullopt;
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::sys_days{day}.time_since_epoch()).count();
}

bool is_group_name(std::string_view s) {
  return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
}

std::once_flag gpgme_ready;

struct Ctx {
  gpgme_ctx_t ctx = nullptr;
  ~Ctx() {
    if (ctx) gpgme_release(ctx);
  }
};
struct Data {
  gpgme_data_t data = nullptr;
  ~Data() {
    if (data) gpgme_data_release(data);
  }
};

std::string gpg_error(gpgme_error_t e) { return gpgme_strerror(e); }

struct VerifyFailure {
  RulesRefusal kind;
  std::string why;
};

// A keyring made for one verification and removed after it: the keys that came with one
// document never stay to confuse the check of another (a key binding an admin's subkey
// under someone else's primary key, say), and nobody can fill the disk with keys.
struct ScratchHome {
  fs::path path;
  explicit ScratchHome(const fs::path& parent) {
    std::error_code ec;
    fs::create_directories(parent, ec);
    auto pattern = (parent / "verify-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) return;  // mode 0700, as gpg wants
    path = pattern;
    // No gpg-agent per keyring (importing public keys would start one): agents would
    // linger, and in a container where the node is pid 1 end as zombies nobody reaps.
    // GPGME 1.18 has no context flag for it; gpg reads its home's gpg.conf.
    std::ofstream(path / "gpg.conf") << "no-autostart\n";
  }
  ~ScratchHome() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

std::variant<VerifiedText, VerifyFailure> verify(const fs::path& scratch_parent, std::string_view armored,
                                                 std::string_view public_keys) {
  auto internal = [](std::string why) { return VerifyFailure{RulesRefusal::BadSignature, std::move(why)}; };
  std::call_once(gpgme_ready, [] { gpgme_check_version(nullptr); });
  ScratchHome home(scratch_parent);
  if (home.path.empty()) return internal("cannot make a keyring in " + scratch_parent.string());
  Ctx c;
  if (auto e = gpgme_new(&c.ctx)) return internal("cannot start GPGME: " + gpg_error(e));
  if (auto e = gpgme_ctx_set_engine_info(c.ctx, GPGME_PROTOCOL_OpenPGP, nullptr, home.path.c_str()))
    return internal("cannot use the keyring in " + home.path.string() + ": " + gpg_error(e));
  gpgme_set_offline(c.ctx, 1);  // no keyserver or WKD lookups

  if (!public_keys.empty()) {
    Data keys;
    if (gpgme_data_new_from_mem(&keys.data, public_keys.data(), public_keys.size(), 1) == 0)
      gpgme_op_import(c.ctx, keys.data);  // a bad key block only means its signatures fail below
  }
  Data sig, plain;
  if (gpgme_data_new_from_mem(&sig.data, armored.data(), armored.size(), 1) || gpgme_data_new(&plain.data))
    return internal("out of memory");
  auto err = gpgme_op_verify(c.ctx, sig.data, nullptr, plain.data);
  auto* result = gpgme_op_verify_result(c.ctx);
  if (gpgme_err_code(err) == GPG_ERR_NO_DATA || !result || !result->signatures)
    return VerifyFailure{RulesRefusal::Unsigned, "not an OpenPGP clear-signed document"};
  if (err) return VerifyFailure{RulesRefusal::BadSignature, "cannot check the signature: " + gpg_error(err)};
  auto* s = result->signatures;
  if (s->next) return VerifyFailure{RulesRefusal::BadSignature, "more than one signature"};
  auto code = gpgme_err_code(s->status);
  if (code == GPG_ERR_NO_PUBKEY)
    return VerifyFailure{RulesRefusal::NotAnAdmin,
                         std::string("signed by key ") + (s->fpr ? s->fpr : "?") + ", whose public key did not come with it"};
  if (code == GPG_ERR_BAD_SIGNATURE)
    return VerifyFailure{RulesRefusal::BadSignature, "the signature does not match the text (altered after signing?)"};
  if (code != GPG_ERR_NO_ERROR && code != GPG_ERR_KEY_EXPIRED)
    return VerifyFailure{RulesRefusal::BadSignature, "bad signature: " + gpg_error(s->status)};
  if (s->wrong_key_usage) return VerifyFailure{RulesRefusal::BadSignature, "signed with a key not made for signing"};
  if (s->summary & (GPGME_SIGSUM_KEY_REVOKED | GPGME_SIGSUM_KEY_EXPIRED | GPGME_SIGSUM_SIG_EXPIRED))
    return VerifyFailure{RulesRefusal::BadSignature, "signed by a revoked or expired key, or the signature expired"};
  // The signer's primary key (a signing subkey has its own fingerprint).
  std::string fingerprint = s->fpr ? s->fpr : "";
  gpgme_key_t key = nullptr;
  if (gpgme_get_key(c.ctx, fingerprint.c_str(), &key, 0) == 0 && key) {
    if (key->fpr) fingerprint = key->fpr;
    gpgme_key_unref(key);
  }
  std::size_t size = 0;
  char* bytes = gpgme_data_release_and_get_mem(plain.data, &size);
  plain.data = nullptr;
  VerifiedText out{bytes ? std::string(bytes, size) : std::string(), fingerprint};
  if (bytes) gpgme_free(bytes);
  return out;
}

}  // namespace

Result<std::string> normalize_fingerprint(std::string_view text) {
  std::string out;
  text = trim(text);
  if (text.starts_with("0x") || text.starts_with("0X")) text.remove_prefix(2);
  for (char c : text) {
    if (c == ' ') continue;
    if (!std::isxdigit(static_cast<unsigned char>(c))) return Error{"not an OpenPGP fingerprint: " + std::string(text)};
    out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  if (out.size() != 40 && out.size() != 64)
    return Error{"an OpenPGP fingerprint has 40 hex digits (64 for a v5 key; gpg --fingerprint shows it); got " +
                 std::to_string(out.size())};
  return out;
}

Result<SwarmRules> parse_rules(std::string_view text) {
  SwarmRules r;
  std::string errors;
  auto fail = [&](std::size_t line, const std::string& why) {
    errors += (errors.empty() ? "" : "\n") + ("line " + std::to_string(line) + ": " + why);
  };
  std::set<std::string> seen;  // single-valued names given once
  std::map<std::string, std::size_t> keep_on_lines;
  bool version_seen = false;
  for_each_setting_line(text, [&](const SettingLine& line) {
    auto line_no = line.number;
    if (!line.has_value) return fail(line_no, "expected 'name = value', got '" + std::string(line.name) + "'");
    auto name = std::string(line.name);
    auto value = line.value;
    if (name != "admin" && !seen.insert(name).second) {
      fail(line_no, name + " is given twice");
      return;
    }
    if (name == "version") {
      auto v = parse_number<std::uint64_t>(value);
      if (!v || *v == 0) fail(line_no, "version is a whole number from 1");
      else r.version = *v, version_seen = true;
    } else if (name == "expires") {
      auto day = parse_day(value);
      if (!day) fail(line_no, "expires is a day, YYYY-MM-DD (UTC)");
      else r.expires = *day;
    } else if (name == "swarm") {
      auto id = std::string(value);
      if (id.size() != 32 || !std::all_of(id.begin(), id.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); }))
        fail(line_no, "swarm is the swarm's public id (32 hex digits, `annex-swarm status` shows it)");
      else
        r.swarm = id;
    } else if (name == "admin") {
      auto fpr = normalize_fingerprint(value);
      if (!fpr) fail(line_no, fpr.error());
      else if (std::find(r.admins.begin(), r.admins.end(), *fpr) == r.admins.end()) r.admins.push_back(*fpr);
    } else if (name.starts_with("group.")) {
      auto group = name.substr(6);
      if (!is_group_name(group)) {
        fail(line_no, "a group name is letters, digits, '-' and '_': '" + group + "'");
        return;
      }
      auto& members = r.groups[group];
      for (auto w : words(value)) {
        auto node = NodeId::from_hex(w);
        if (!node) fail(line_no, "not a node id (40 hex digits, `annex-swarm status` shows it): '" + std::string(w) + "'");
        else members.push_back(*node);
      }
      if (members.empty()) fail(line_no, "group " + group + " names no node");
    } else if (name.starts_with("store.")) {
      auto rest = std::string_view(name).substr(6);
      auto dot = rest.rfind('.');
      auto uuid = std::string(rest.substr(0, dot == std::string_view::npos ? 0 : dot));
      auto what = dot == std::string_view::npos ? std::string_view{} : rest.substr(dot + 1);
      if (!is_annex_uuid(uuid)) {
        fail(line_no, "expected store.UUID.copies, .keep-on or .grace with a git-annex UUID, got '" + name + "'");
        return;
      }
      auto& store = r.stores[uuid];
      if (what == "copies") {
        auto n = parse_number<unsigned>(value);
        if (!n || *n == 0 || *n > 100) fail(line_no, "copies is a whole number from 1 to 100");
        else store.copies = *n;
      } else if (what == "keep-on") {
        for (auto w : words(value)) store.keep_on.emplace_back(w);
        if (store.keep_on.empty()) fail(line_no, "keep-on names no group");
        keep_on_lines[uuid] = line_no;
      } else if (what == "grace") {
        auto d = parse_duration(value);
        if (!d) fail(line_no, "grace: " + d.error());
        else store.grace = *d;
      } else {
        fail(line_no, "unknown store setting '" + std::string(what) + "' (copies, keep-on, grace)");
      }
    } else {
      fail(line_no, "unknown name '" + name + "' (version, expires, swarm, admin, group.NAME, store.UUID.*)");
    }
  });
  for (const auto& [uuid, line] : keep_on_lines)
    for (const auto& g : r.stores[uuid].keep_on)
      if (!r.groups.count(g)) fail(line, "keep-on names group '" + g + "', which no group." + g + " line defines");
  if (!version_seen && errors.empty()) errors = "no version line (version = N)";
  if (r.admins.empty() && errors.empty())
    errors = "no admin line: nobody could sign the next version (admin = FINGERPRINT)";
  if (!errors.empty()) return Error{errors};
  return r;
}

std::uint64_t claimed_version(std::string_view armored) {
  std::optional<std::uint64_t> version;
  for_each_setting_line(armored.substr(0, armored.find("-----BEGIN PGP SIGNATURE-----")), [&](const SettingLine& line) {
    if (!version && line.has_value && line.name == "version") version = parse_number<std::uint64_t>(line.value).value_or(0);
  });
  return version.value_or(0);
}

Result<VerifiedText> verify_clearsigned(const fs::path& scratch_parent, std::string_view armored,
                                        std::string_view public_keys) {
  auto v = verify(scratch_parent, armored, public_keys);
  if (auto* f = std::get_if<VerifyFailure>(&v)) return Error{f->why};
  return std::get<VerifiedText>(std::move(v));
}

std::string_view to_string(RulesRefusal r) {
  switch (r) {
    case RulesRefusal::Unsigned: return "unsigned";
    case RulesRefusal::BadSignature: return "bad signature";
    case RulesRefusal::NotAnAdmin: return "not signed by an admin";
    case RulesRefusal::Rollback: return "not newer than the version held";
    case RulesRefusal::Expired: return "expired";
    case RulesRefusal::Malformed: return "malformed";
  }
  return "?";
}

std::uint64_t& RulesRefusals::operator[](RulesRefusal r) {
  switch (r) {
    case RulesRefusal::Unsigned: return unsigned_text;
    case RulesRefusal::BadSignature: return bad_signature;
    case RulesRefusal::NotAnAdmin: return not_an_admin;
    case RulesRefusal::Rollback: return rollback;
    case RulesRefusal::Expired: return expired;
    case RulesRefusal::Malformed: return malformed;
  }
  return malformed;
}

RulesBook::RulesBook(fs::path state_dir, std::vector<std::string> config_admins, std::vector<std::string> swarms)
    : dir_(std::move(state_dir) / "rules"), config_admins_(std::move(config_admins)), swarms_(std::move(swarms)) {}

Result<bool> RulesBook::load() {
  auto armored = read_file(dir_ / "adopted.asc");
  if (!armored) return false;  // none adopted yet
  // What was checked at adoption is trusted now (the node's own 0600 files): an admin key
  // that expired since must not send the node back to trusting its config's admins.
  auto text = read_file(dir_ / "adopted.txt");
  auto signer = read_file(dir_ / "adopted.signer");
  auto keys = read_file(dir_ / "adopted-keys.asc");
  auto rules = text ? parse_rules(*text) : Result<SwarmRules>(Error{text.error()});
  if (!rules || !signer) {
    locked_ = true;  // never fall back to the config's admins: that would allow a rollback
    return Error{"the rules adopted before (" + dir_.string() + ") cannot be read back (" +
                 (rules ? signer.error() : rules.error()) +
                 "); refusing every new version until that directory is removed (then the config's rules-admin "
                 "counts again)"};
  }
  current_ = Adopted{std::move(*rules), *signer, std::move(*armored), keys ? *keys : std::string()};
  return true;
}

RulesBook::Outcome RulesBook::refuse(RulesRefusal why, std::string detail) {
  ++refusals_[why];
  auto line = std::string(to_string(why)) + ": " + detail;
  if (logged_.size() < 256 && logged_.insert(line).second) log::warn("swarm rules refused, {}", line);
  return Outcome{false, why, std::move(line)};
}

RulesBook::Outcome RulesBook::offer(std::string_view armored, std::string_view public_keys, std::int64_t now) {
  if (current_ && armored == current_->armored) return Outcome{false, std::nullopt, "already held"};
  if (locked_)
    return refuse(RulesRefusal::Malformed, "the rules adopted before cannot be read back (see the log at start)");
  // The keys that came with the version held count too (its signer's, at least).
  auto keys = std::string(public_keys) + (current_ ? "\n" + current_->public_keys : std::string());
  auto v = verify(dir_, armored, keys);
  if (auto* f = std::get_if<VerifyFailure>(&v)) return refuse(f->kind, f->why);
  auto& checked = std::get<VerifiedText>(v);
  auto rules = parse_rules(checked.text);
  if (!rules) return refuse(RulesRefusal::Malformed, rules.error());
  if (current_ && rules->version <= current_->rules.version)
    return refuse(RulesRefusal::Rollback, "version " + std::to_string(rules->version) + " offered, version " +
                                              std::to_string(current_->rules.version) + " held");
  // Who may sign: the admins of the version held, or for the first one the config's.
  const auto& admins = current_ ? current_->rules.admins : config_admins_;
  if (std::find(admins.begin(), admins.end(), checked.fingerprint) == admins.end())
    return refuse(RulesRefusal::NotAnAdmin,
                  "version " + std::to_string(rules->version) + " signed by " + checked.fingerprint +
                      ", who is not an admin of " +
                      (current_ ? "version " + std::to_string(current_->rules.version) : std::string("this node's config")));
  if (rules->expires && *rules->expires <= now)
    return refuse(RulesRefusal::Expired, "version " + std::to_string(rules->version) + " expired");
  if (rules->swarm && !swarms_.empty() && std::find(swarms_.begin(), swarms_.end(), *rules->swarm) == swarms_.end())
    return refuse(RulesRefusal::Malformed, "version " + std::to_string(rules->version) + " is for swarm " +
                                               *rules->swarm + ", not one of this node's");
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (auto w = write_file_atomic(dir_ / "adopted-keys.asc", std::string(public_keys), 0600); !w)
    return refuse(RulesRefusal::Malformed, "cannot keep it: " + w.error());
  // The text and signer first, the document last: load() reads the document's presence as
  // "adopted", and the files before it are then whole.
  for (const auto& [name, content] : {std::pair<const char*, std::string>{"adopted.txt", checked.text},
                                      {"adopted.signer", checked.fingerprint},
                                      {"adopted.asc", std::string(armored)}})
    if (auto w = write_file_atomic(dir_ / name, content, 0600); !w)
      return refuse(RulesRefusal::Malformed, "cannot keep it: " + w.error());
  log::info("swarm rules version {} adopted (signed by {})", rules->version, checked.fingerprint);
  current_ = Adopted{std::move(*rules), checked.fingerprint, std::string(armored), std::string(public_keys)};
  return Outcome{true, std::nullopt, "adopted"};
}

}  // namespace annexswarm
