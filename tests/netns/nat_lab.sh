#!/usr/bin/env bash
# The NAT lab: a small internet inside this machine, built from network namespaces.
#
#   nat_lab.sh up DIR      build it (state and router configs in DIR); prints nothing on success
#   nat_lab.sh down        tear it down (also removes what a crashed run left)
#   nat_lab.sh routerd N DIR   exec miniupnpd in the foreground on router N (1: UPnP IGD and
#                          NAT-PMP, 3: NAT-PMP only), after a "router reboot" that flushes
#                          the mappings a previous miniupnpd left in the kernel
#
#        pub (public host)      11.0.0.10   2001:db8::10
#              |
#     [ inet: bridge br0 ]----- r1 wan 11.0.0.1 (+ 2001:db8::1) -- lan 10.0.1.1 -- h1 10.0.1.2
#              |                                                    (2001:db8:1::1)   (2001:db8:1::2)
#              |--------------- r2 wan 11.0.0.2 -- lan 10.0.2.1 -- h2 10.0.2.2
#              '--------------- r3 wan 11.0.0.3 -- lan 10.0.3.1 -- h3 10.0.3.2
#
# Every router masquerades its LAN behind its WAN address (nftables). IPv6 goes through
# r1 without NAT, as home routers give it. Router 2 runs nothing: plain NAT.
#
# The fake internet is 11.0.0.0/24, not a documentation range: Debian's miniupnpd 2.3.1
# refuses to map ports when its WAN address is reserved (192.0.2.0/24, 198.51.100.0/24 and
# 203.0.113.0/24 included) and has no option to allow it. These addresses exist only on
# interfaces inside the lab's namespaces, which have no link to the host's own network.
set -euo pipefail

P=${NAT_LAB_PREFIX:-asl}
NAMESPACES=(inet pub r1 r2 r3 h1 h2 h3)
ns() { echo "$P-$1"; }
in_ns() { local n=$1; shift; ip netns exec "$(ns "$n")" "$@"; }

down() {
  local n
  for n in "${NAMESPACES[@]}"; do
    if ip netns pids "$(ns "$n")" >/dev/null 2>&1; then
      # Processes left in a namespace (a crashed test's daemons, miniupnpd) go first.
      ip netns pids "$(ns "$n")" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    fi
    ip netns del "$(ns "$n")" 2>/dev/null || true
  done
}

up() {
  local dir=$1
  [ "$(id -u)" -eq 0 ] || { echo "nat_lab: needs root (network namespaces)" >&2; exit 77; }
  command -v miniupnpd >/dev/null || { echo "nat_lab: miniupnpd is not installed" >&2; exit 1; }
  down
  trap 'down' ERR
  mkdir -p "$dir"
  local n
  for n in "${NAMESPACES[@]}"; do
    ip netns add "$(ns "$n")"
    in_ns "$n" ip link set lo up
  done
  in_ns inet ip link add br0 type bridge
  in_ns inet ip link set br0 up

  # A veth pair whose two ends are created inside namespaces: nothing touches the host.
  wire() {  # wire NS_A IF_A NS_B IF_B
    ip -n "$(ns "$1")" link add "$2" type veth peer name "$4" netns "$(ns "$3")"
    in_ns "$1" ip link set "$2" up
    in_ns "$3" ip link set "$4" up
  }
  wire inet pub pub eth0
  in_ns inet ip link set pub master br0
  in_ns pub ip addr add 11.0.0.10/24 dev eth0
  in_ns pub ip -6 addr add 2001:db8::10/64 dev eth0 nodad
  in_ns pub ip -6 route add 2001:db8:1::/64 via 2001:db8::1

  local i
  for i in 1 2 3; do
    wire inet "r$i" "r$i" wan
    in_ns inet ip link set "r$i" master br0
    wire "r$i" lan "h$i" eth0
    in_ns "r$i" ip addr add "11.0.0.$i/24" dev wan
    in_ns "r$i" ip addr add "10.0.$i.1/24" dev lan
    in_ns "r$i" sysctl -qw net.ipv4.ip_forward=1
    in_ns "h$i" ip addr add "10.0.$i.2/24" dev eth0
    in_ns "h$i" ip route add default via "10.0.$i.1"
    # Masquerading NAT, and the tables and chains miniupnpd fills with its mappings.
    in_ns "r$i" nft -f - <<NFT
table inet filter {
  chain forward { type filter hook forward priority 0; policy drop;
    ct state established,related accept;
    iifname "lan" accept;
    jump miniupnpd; }
  chain miniupnpd { }
  chain prerouting { type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }
  chain postrouting { type nat hook postrouting priority 100; policy accept; jump postrouting_miniupnpd;
    oifname "wan" meta nfproto ipv4 masquerade; }
  chain prerouting_miniupnpd { }
  chain postrouting_miniupnpd { }
}
NFT
  done
  in_ns r1 ip -6 addr add 2001:db8::1/64 dev wan nodad
  in_ns r1 ip -6 addr add 2001:db8:1::1/64 dev lan nodad
  in_ns r1 sysctl -qw net.ipv6.conf.all.forwarding=1
  in_ns h1 ip -6 addr add 2001:db8:1::2/64 dev eth0 nodad
  in_ns h1 ip -6 route add default via 2001:db8:1::1
  # IPv6 to h1 is routed, not translated; this router's firewall lets it in.
  in_ns r1 nft add rule inet filter forward iifname wan ip6 daddr 2001:db8:1::/64 accept

  local uuid
  for i in 1 3; do
    uuid=$(cat /proc/sys/kernel/random/uuid)
    cat >"$dir/r$i.conf" <<CONF
ext_ifname=wan
listening_ip=lan
http_port=5000
enable_natpmp=yes
enable_upnp=$([ "$i" = 1 ] && echo yes || echo no)
secure_mode=yes
system_uptime=no
notify_interval=60
clean_ruleset_interval=600
uuid=$uuid
upnp_table_name=filter
upnp_nat_table_name=filter
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
allow 1024-65535 10.0.$i.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
CONF
  done
  trap - ERR
}

routerd() {
  local i=$1 dir=$2
  # A router that restarts loses its mappings: flush what an earlier miniupnpd put there.
  in_ns "r$i" nft flush chain inet filter miniupnpd
  in_ns "r$i" nft flush chain inet filter prerouting_miniupnpd
  in_ns "r$i" nft flush chain inet filter postrouting_miniupnpd
  exec ip netns exec "$(ns "r$i")" miniupnpd -d -f "$dir/r$i.conf" -P "$dir/r$i.pid"
}

case "${1:-}" in
  up) up "${2:?usage: nat_lab.sh up DIR}" ;;
  down) down ;;
  routerd) routerd "${2:?router number}" "${3:?lab dir}" ;;
  *) echo "usage: nat_lab.sh up DIR | down | routerd N DIR" >&2; exit 2 ;;
esac
