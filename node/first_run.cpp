#include "node/first_run.hpp"

#include <fmt/format.h>

#include "nat/port_mapping.hpp"
#include "node/annex_repo.hpp"
#include "node/identity.hpp"
#include "node/state_files.hpp"
#include "protocol/ip_address.hpp"

namespace annexswarm {
namespace fs = std::filesystem;

namespace {

std::string probe_router() {
  std::string tried;
  for (auto method : {nat::NatMethod::Upnp, nat::NatMethod::NatPmp}) {
    auto backend = method == nat::NatMethod::Upnp ? nat::make_upnp_backend(std::chrono::milliseconds(2000))
                                                  : nat::make_natpmp_backend(std::chrono::milliseconds(2000));
    auto name = method == nat::NatMethod::Upnp ? "UPnP" : "NAT-PMP";
    auto found = backend->discover();
    if (!found) {
      tried += (tried.empty() ? "" : "; ") + std::string(name) + ": " + found.error();
      continue;
    }
    auto address = backend->external_address();
    std::string where = address ? *address : "unknown (" + address.error() + ")";
    std::string note;
    if (address && address_scope(*address) != AddressScope::Global)
      note = " - but that address is not public (a second NAT, e.g. the provider's): other nodes will need a relay";
    return fmt::format("the router answers {} ({}); its external address is {}{}", name, *found, where, note);
  }
  return "no router answered for port mapping (" + tried +
         "); the node will be reachable only if it has a public address, or through a relay";
}

}  // namespace

Result<InitResult> first_run(const InitOptions& options) {
  std::error_code ec;
  if (fs::exists(options.config_file, ec) && !options.force)
    return Error{options.config_file.string() + " exists already; edit it, or pass --force to write a new one"};
  InitResult out;
  if (options.repo) {
    auto repo = open_annex_repo(fs::absolute(*options.repo));
    if (!repo) return Error{repo.error() + " (pass --repo PATH, or --no-repo to serve none yet)"};
    out.repo_uuid = repo->uuid;
  }
  out.new_swarm = !options.swarm;
  out.swarm = options.swarm ? *options.swarm : SwarmToken::generate();
  if (auto r = prepare_state_dir(options.state_dir); !r) return Error{r.error()};
  bool created = false;
  auto identity = load_or_create_identity(options.state_dir, created);
  if (!identity) return Error{identity.error()};
  out.node_id = node_id_of(*identity).hex();

  std::string text = "# annex-swarm node configuration, written by 'annex-swarm init'.\n"
                     "# Every setting and its default: 'annex-swarm daemon --help'.\n"
                     "state-dir = " + fs::absolute(options.state_dir).string() + "\n"
                     "# The swarm token is a secret: whoever has it is a member.\n"
                     "swarm = " + out.swarm.str() + "\n";
  if (options.repo) text += "repo = " + fs::absolute(*options.repo).string() + "\n";
  for (const auto& b : options.bootstrap) text += "bootstrap = " + b + "\n";
  text += "# nat = auto\n# relay = auto\n# upload-rate = 0\n";
  fs::create_directories(options.config_file.parent_path(), ec);
  if (auto r = write_file_atomic(options.config_file, text, 0600); !r) return Error{r.error()};
  out.nat = options.probe_nat ? probe_router() : "not checked";
  return out;
}

}  // namespace annexswarm
