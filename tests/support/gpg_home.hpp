#pragma once
// A throwaway GnuPG home for tests: keys made on the spot without a passphrase, documents
// clear-signed with them, public keys exported. Its agent is stopped when it goes.
#include <fstream>
#include <string>

#include "node/subprocess.hpp"
#include "tests/support/test_support.hpp"

namespace annexswarm::test {

class GpgHome {
public:
  GpgHome() = default;
  ~GpgHome() { run_process({"gpgconf", "--homedir", home(), "--kill", "gpg-agent"}); }
  GpgHome(const GpgHome&) = delete;
  GpgHome& operator=(const GpgHome&) = delete;

  std::string home() const { return dir_.path().string(); }

  // A new signing key for `uid`; returns its fingerprint (empty if gpg failed).
  std::string new_key(const std::string& uid) {
    auto made = gpg({"--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign",
                     "never"});
    if (made.exit_code != 0) return {};
    auto listed = gpg({"--with-colons", "--fingerprint", uid});
    // The first fpr line after the uid's pub line is the primary key's.
    auto at = listed.out.find("\nfpr:");
    if (at == std::string::npos) return {};
    auto line = listed.out.substr(at + 1, listed.out.find('\n', at + 1) - at - 1);
    auto end = line.rfind(':');
    auto start = line.rfind(':', end - 1);
    return line.substr(start + 1, end - start - 1);
  }
  // `text` clear-signed by the key `fingerprint`.
  std::string clearsign(const std::string& fingerprint, const std::string& text) {
    auto in = dir_.path() / "to-sign.txt";
    auto out = dir_.path() / "signed.asc";
    std::ofstream(in) << text;
    auto signed_ = gpg({"--pinentry-mode", "loopback", "--passphrase", "", "--yes", "--local-user", fingerprint,
                        "--output", out.string(), "--clearsign", in.string()});
    if (signed_.exit_code != 0) return {};
    std::ifstream file(out);
    return std::string((std::istreambuf_iterator<char>(file)), {});
  }
  std::string public_key(const std::string& fingerprint) {
    return gpg({"--armor", "--export", fingerprint}).out;
  }
  ProcessOutput gpg(std::vector<std::string> args) {
    args.insert(args.begin(), {"gpg", "--homedir", home(), "--batch", "--quiet"});
    return run_process(args);
  }

private:
  TempDir dir_;
};

}  // namespace annexswarm::test
