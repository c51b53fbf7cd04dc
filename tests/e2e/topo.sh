#!/bin/bash
# topo.sh - the COLO test topology in network namespaces.
#
#   client --- switch(br0) ---+--- phost ==[proxy primary]== pguest
#                             |      | link 10.78.0.1
#                             |      | link 10.78.0.2
#                             +--- shost ==[proxy secondary]== sguest
#
# pguest and sguest have the same IP and MAC addresses, each its own TCP
# stack. Every name starts with $P (default "cpx$$-" style prefix given by
# the caller), so parallel runs and other users' namespaces never clash.
#
#   topo.sh up PREFIX        build it (guests idle, no proxies)
#   topo.sh native-on PREFIX bridge phost's sw and gst ports (proxy bypassed)
#   topo.sh native-off PREFIX
#   topo.sh down PREFIX      remove every namespace (idempotent)
set -u

CMD=${1:?usage: topo.sh up|down|native-on|native-off PREFIX}
P=${2:?prefix}
GUEST_IP=10.77.0.10
GUEST_IP6=fd77::10
GUEST_MAC=02:c0:10:00:00:10
CLIENT_IP=10.77.0.1

ns() { local n=$1; shift; ip netns exec "$P$n" "$@"; }

link_up() { # ns ifname
	ns "$1" ip link set "$2" up
}

up() {
	local n
	for n in client switch phost shost pguest sguest; do
		ip netns add "$P$n" || return 1
		ns $n ip link set lo up
		ns $n sysctl -qw net.ipv6.conf.all.disable_ipv6=0 2>/dev/null
	done
	ns switch ip link add br0 type bridge
	ns switch ip link set br0 type bridge ageing_time 3000 stp_state 0 \
		forward_delay 0 2>/dev/null
	ns switch ip link set br0 up
	# client <-> switch
	ip link add "${P}c" type veth peer name "${P}cs"
	ip link set "${P}c" netns "${P}client" name eth0
	ip link set "${P}cs" netns "${P}switch" name cl
	# phost / shost <-> switch
	ip link add "${P}p" type veth peer name "${P}ps"
	ip link set "${P}p" netns "${P}phost" name sw
	ip link set "${P}ps" netns "${P}switch" name ph
	ip link add "${P}s" type veth peer name "${P}ss"
	ip link set "${P}s" netns "${P}shost" name sw
	ip link set "${P}ss" netns "${P}switch" name sh
	for n in cl ph sh; do
		ns switch ip link set $n master br0
		link_up switch $n
	done
	# guests <-> hosts
	ip link add "${P}pg" type veth peer name "${P}pgh"
	ip link set "${P}pg" netns "${P}pguest" name eth0
	ip link set "${P}pgh" netns "${P}phost" name gst
	ip link add "${P}sg" type veth peer name "${P}sgh"
	ip link set "${P}sg" netns "${P}sguest" name eth0
	ip link set "${P}sgh" netns "${P}shost" name gst
	# replication link
	ip link add "${P}l" type veth peer name "${P}ls"
	ip link set "${P}l" netns "${P}phost" name lnk
	ip link set "${P}ls" netns "${P}shost" name lnk
	ns phost ip addr add 10.78.0.1/24 dev lnk
	ns shost ip addr add 10.78.0.2/24 dev lnk
	for n in phost shost; do
		ns $n sysctl -qw net.ipv6.conf.sw.disable_ipv6=1
		ns $n sysctl -qw net.ipv6.conf.gst.disable_ipv6=1
		link_up $n sw
		link_up $n gst
		link_up $n lnk
		ns $n ip link set sw promisc on
		ns $n ip link set gst promisc on
	done
	# E2E_CC: congestion control of every TCP stack in the test (default:
	# the machine's). In a namespace only those listed in the host's
	# net.ipv4.tcp_allowed_congestion_control may be chosen.
	if [ -n "${E2E_CC:-}" ]; then
		for n in client phost shost pguest sguest; do
			ns $n sysctl -qw net.ipv4.tcp_congestion_control="$E2E_CC" ||
				return 1
		done
	fi
	ns client ip addr add $CLIENT_IP/24 dev eth0
	ns client ip addr add fd77::1/64 dev eth0 nodad
	link_up client eth0
	for n in pguest sguest; do
		# IPv6 chatter that two guests send at random moments (router
		# solicitations, DAD, repeated MLD reports) would be compared
		# like any output: keep it short and before the proxies start.
		for k in addr_gen_mode=1 router_solicitations=0 accept_dad=0 \
			mldv1_unsolicited_report_interval=10 \
			mldv2_unsolicited_report_interval=10; do
			ns $n sysctl -qw net.ipv6.conf.eth0.$k
		done
		# Receive windows that follow buffer space only (no
		# autotuning): the two guests then advertise the same window
		# and the secondary never drops, as beyond its window, a
		# segment the client sent into the primary's.
		ns $n sysctl -qw net.ipv4.tcp_moderate_rcvbuf=0
		ns $n sysctl -qw net.ipv4.tcp_rmem="4096 4194304 8388608"
		ns $n ip link set eth0 address $GUEST_MAC
		ns $n ip addr add $GUEST_IP/24 dev eth0
		ns $n ip addr add $GUEST_IP6/64 dev eth0 nodad
		link_up $n eth0
	done
	sleep 0.3 # the last MLD reports leave before any proxy starts
	return 0
}

down() {
	local n
	for n in client switch phost shost pguest sguest; do
		ip netns pids "$P$n" 2>/dev/null | xargs -r kill -9 2>/dev/null
	done
	for n in client switch phost shost pguest sguest; do
		ip netns del "$P$n" 2>/dev/null
	done
	return 0
}

case $CMD in
up) up ;;
down) down ;;
native-on)
	ns phost ip link add nbr type bridge &&
		ns phost ip link set nbr type bridge forward_delay 0 &&
		ns phost ip link set sw master nbr &&
		ns phost ip link set gst master nbr &&
		ns phost ip link set nbr up ;;
native-off)
	ns phost ip link del nbr ;;
*) echo "unknown command $CMD" >&2; exit 2 ;;
esac
