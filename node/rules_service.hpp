#pragma once
// The swarm rules this node holds, kept current through the DHT without a tracker: every
// member that adopted a version publishes it at the swarm's rules location (sealed, signed
// by the member, like its other records) and checks every check_every what the others
// publish, adopting a newer version signed by an admin it trusts (node/swarm_rules.hpp).
// A push hands a signed document to this node, which adopts it and publishes it.
//
// Signatures are checked by gpg through GPGME, on the worker thread; the book lives there.
// What the io thread answers (show, status) is a copy taken after each change.
#include <asio/io_context.hpp>
#include <asio/thread_pool.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "node/control_api.hpp"
#include "node/swarm_directory.hpp"
#include "node/swarm_rules.hpp"
#include "node/timers.hpp"

namespace annexswarm {

class RulesService {
public:
  struct Settings {
    std::filesystem::path state_dir;
    std::vector<std::string> admins;  // rules-admin: who may sign the first version
    std::vector<std::string> swarms;  // public ids of the node's private swarms
    std::chrono::milliseconds check_every{std::chrono::seconds(30)};
    std::chrono::milliseconds publish_every{std::chrono::minutes(20)};  // records live an hour
  };
  RulesService(asio::io_context& io, asio::thread_pool& worker, Timers& timers, SwarmDirectory& directory,
               Settings settings);
  ~RulesService();

  // Loads the version adopted before a restart (an error is logged; the node goes on
  // without rules), publishes it, and starts the checks.
  void start();
  void stop();

  void push(const RulesPushRequest& request, Done<RulesReply> done);
  RulesReply show() const;

private:
  void check();
  void publish();
  // On the worker: offers each document not judged before; then, on io, `then(adopted)`.
  void offer(std::vector<RulesRecord> records, std::function<void(bool adopted)> then);
  void snapshot();  // on the worker: copies what show() answers, for the io thread
  std::int64_t unix_now() const;

  asio::io_context& io_;
  asio::thread_pool& worker_;
  Timers& timers_;
  SwarmDirectory& directory_;
  Settings settings_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  // Worker thread only.
  RulesBook book_;
  std::set<std::string> judged_;  // digests of documents offered already (bounded)
  // io thread only.
  RulesReply shown_;
  std::unique_ptr<Timer> check_timer_, publish_timer_;
  bool checking_ = false, stopping_ = false;
};

}  // namespace annexswarm
