// The codec stage of erasure-coded stores next to raw ISA-L on the same buffers, and the
// streaming encode/decode of an object through share files (SHA-256 of every unit
// included), in one run. Prints figures; asserts nothing.
//   erasure_codec_bench [--dir /dev/shm] [--object-mib 256]
#include <isa-l/erasure_code.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "erasure/codec.hpp"
#include "erasure/shares.hpp"

using namespace annexswarm;
using namespace annexswarm::erasure;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kUnit = 1 << 20;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Buffers {
  std::vector<Bytes> units;
  std::vector<std::uint8_t*> data, parity;
  Buffers(ShareShape s) : units(s.n(), Bytes(kUnit)) {
    std::mt19937 rng(1);
    for (unsigned i = 0; i < s.k; ++i)
      for (auto& b : units[i]) b = static_cast<std::uint8_t>(rng());
    for (unsigned i = 0; i < s.k; ++i) data.push_back(units[i].data());
    for (unsigned i = s.k; i < s.n(); ++i) parity.push_back(units[i].data());
  }
};

// GB/s of data put through `once`, one run of `rounds` segments.
template <class F>
double run_rate(ShareShape s, int rounds, F&& once) {
  auto t0 = Clock::now();
  for (int i = 0; i < rounds; ++i) once();
  return static_cast<double>(s.k) * kUnit * rounds / seconds_since(t0) / 1e9;
}

// Medians of 7 runs of each, interleaved so that neither gets a warmer cache or clock.
template <class A, class B>
std::pair<double, double> rates(ShareShape s, int rounds, A&& a, B&& b) {
  std::vector<double> ra, rb;
  run_rate(s, rounds, a);  // warm-up
  for (int r = 0; r < 7; ++r) {
    ra.push_back(run_rate(s, rounds, a));
    rb.push_back(run_rate(s, rounds, b));
  }
  return {median(ra), median(rb)};
}

void codec_stage(ShareShape s) {
  Buffers b(s);
  Codec codec(s);
  // Raw ISA-L: the same matrix and tables, built here by hand.
  std::vector<unsigned char> matrix(s.n() * s.k), tables(32 * s.k * s.m);
  gf_gen_cauchy1_matrix(matrix.data(), static_cast<int>(s.n()), static_cast<int>(s.k));
  ec_init_tables(static_cast<int>(s.k), static_cast<int>(s.m), matrix.data() + s.k * s.k, tables.data());
  const int rounds = 200 / static_cast<int>(s.k) + 20;
  auto [ours, raw] = rates(
      s, rounds, [&] { codec.encode(kUnit, b.data.data(), b.parity.data()); },
      [&] {
        ec_encode_data(kUnit, static_cast<int>(s.k), static_cast<int>(s.m), tables.data(), b.data.data(),
                       b.parity.data());
      });
  // Rebuild the first M data units from the rest (the worst case for a systematic code).
  std::vector<unsigned> from, wanted;
  for (unsigned i = s.m; i < s.n(); ++i) from.push_back(i);
  for (unsigned i = 0; i < s.m; ++i) wanted.push_back(i);
  auto rebuilder = codec.rebuilder(from, wanted);
  std::vector<Bytes> out(s.m, Bytes(kUnit));
  std::vector<const std::uint8_t*> in;
  for (auto i : from) in.push_back(b.units[i].data());
  std::vector<std::uint8_t*> outp;
  for (auto& o : out) outp.push_back(o.data());
  double rebuild = rates(s, rounds, [&] { rebuilder->run(kUnit, in.data(), outp.data()); }, [] {}).first;
  std::printf("  %-5s encode: ours %.1f GB/s, raw ISA-L %.1f GB/s, ours/raw %.2f; rebuild of %u lost data shares %.1f GB/s\n",
              s.text().c_str(), ours, raw, ours / raw, s.m, rebuild);
}

void file_stage(ShareShape s, const std::filesystem::path& dir, std::size_t mib) {
  auto object = dir / "object";
  {
    std::ofstream out(object, std::ios::binary);
    std::mt19937_64 rng(2);
    std::vector<std::uint64_t> block(kUnit / 8);
    for (std::size_t i = 0; i < mib; ++i) {
      for (auto& x : block) x = rng();
      out.write(reinterpret_cast<const char*>(block.data()), kUnit);
    }
  }
  auto layout = ShareLayout::plan(s, std::uint64_t{mib} << 20);
  std::vector<std::filesystem::path> shares;
  for (unsigned i = 0; i < s.n(); ++i) shares.push_back(dir / ("share" + std::to_string(i)));
  std::vector<double> enc, dec;
  ShareDigests digests;
  for (int r = 0; r < 3; ++r) {
    auto t0 = Clock::now();
    auto d = encode_object(object, layout, shares);
    enc.push_back(seconds_since(t0));
    if (!d) {
      std::fprintf(stderr, "encode failed: %s\n", d.error().c_str());
      std::exit(1);
    }
    digests = *d;
    ShareFiles files(shares.begin(), shares.end());
    for (unsigned i = 0; i < s.m; ++i) files[i].reset();  // lose M data shares
    t0 = Clock::now();
    auto back = decode_object(layout, files, digests, dir / "back");
    dec.push_back(seconds_since(t0));
    if (!back) {
      std::fprintf(stderr, "decode failed: %s\n", back.error().c_str());
      std::exit(1);
    }
  }
  double bytes = static_cast<double>(mib) * kUnit;
  std::printf("  %-5s %zu MiB object through share files in %s: encode %.2f GB/s, decode without %u data shares %.2f GB/s (SHA-256 of every unit included)\n",
              s.text().c_str(), mib, dir.c_str(), bytes / median(enc) / 1e9, s.m, bytes / median(dec) / 1e9);
  for (auto& p : shares) std::filesystem::remove(p);
  std::filesystem::remove(object);
  std::filesystem::remove(dir / "back");
}

}  // namespace

int main(int argc, char** argv) {
  std::filesystem::path base = "/dev/shm";
  std::size_t mib = 256;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--dir")) base = argv[i + 1];
    else if (!std::strcmp(argv[i], "--object-mib")) mib = std::stoul(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: erasure_codec_bench [--dir DIR] [--object-mib N]\n");
      return 2;
    }
  }
  std::printf("== codec stage, 1 MiB units, one core (medians of 7)\n");
  for (auto s : {ShareShape{4, 2}, ShareShape{10, 4}, ShareShape{16, 4}}) codec_stage(s);
  auto dir = base / ("annex-swarm-erasure-bench." + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::printf("== streaming through files (medians of 3)\n");
  for (auto s : {ShareShape{4, 2}, ShareShape{10, 4}}) file_stage(s, dir, mib);
  std::filesystem::remove_all(dir);
}
