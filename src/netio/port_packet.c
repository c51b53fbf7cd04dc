/*
 * port_packet.c - "packet:IFNAME": an AF_PACKET socket on an existing
 * interface (the host end of a veth, or the tap a QEMU VM holds).
 *
 * recvmmsg/sendmmsg over preallocated slots, one GSO super-frame each,
 * with PACKET_VNET_HDR so super-frames pass whole. A TPACKET_V3 ring was
 * the alternative; its blocks hold copies too, and frames of 64 KiB make
 * poor use of ring blocks, while recvmmsg with 64 slots already moves a
 * batch per syscall (see bench/netio/README.md for numbers). Outgoing
 * frames are ignored (PACKET_IGNORE_OUTGOING, or sll_pkttype on older
 * kernels) so the proxy never reads back what it sent.
 */
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gso.h"
#include "port_internal.h"

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

#define SLOT	 COLO_PORT_FRAME_MAX
#define SOCK_BUF (64 << 20)
/* How long flush waits for a full socket before dropping frames. */
#define TX_WAIT_MS 20

struct packet_port {
	struct colo_port base;
	int ifindex;
	bool filter_outgoing;	  /* no PACKET_IGNORE_OUTGOING */
	uint8_t *rx_buf, *tx_buf; /* COLO_PORT_BATCH slots each */
	struct mmsghdr rx_msg[COLO_PORT_BATCH];
	struct iovec rx_iov[COLO_PORT_BATCH];
	struct sockaddr_ll rx_addr[COLO_PORT_BATCH];
	struct mmsghdr tx_msg[COLO_PORT_BATCH];
	struct iovec tx_iov[COLO_PORT_BATCH];
	unsigned int tx_n;
	uint8_t scratch[COLO_GSO_SCRATCH];
};

static int set_int(int fd, int level, int opt, int v)
{
	return setsockopt(fd, level, opt, &v, sizeof(v));
}

static int packet_setup(struct colo_port *base, const char *ifname, char *err,
			size_t errlen)
{
	struct packet_port *p = (struct packet_port *)base;
	struct sockaddr_ll sll;
	struct packet_mreq mr;
	unsigned int i;

	p->ifindex = (int)if_nametoindex(ifname);
	if (!p->ifindex) {
		colo_port_err(err, errlen, "packet:%s: no such interface",
			      ifname);
		return -1;
	}
	/* Protocol 0 until bound: no frame of another interface sneaks in. */
	p->base.fd =
		socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->base.fd < 0)
		goto fail;
	if (set_int(p->base.fd, SOL_PACKET, PACKET_VNET_HDR, 1))
		goto fail;
	if (set_int(p->base.fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, 1))
		p->filter_outgoing = true;
	/* Straight to the driver: the proxy is the only sender that matters
	 * on this interface, and a veth has no queue anyway. */
	set_int(p->base.fd, SOL_PACKET, PACKET_QDISC_BYPASS, 1);
	if (set_int(p->base.fd, SOL_SOCKET, SO_RCVBUFFORCE, SOCK_BUF))
		set_int(p->base.fd, SOL_SOCKET, SO_RCVBUF, SOCK_BUF);
	if (set_int(p->base.fd, SOL_SOCKET, SO_SNDBUFFORCE, SOCK_BUF))
		set_int(p->base.fd, SOL_SOCKET, SO_SNDBUF, SOCK_BUF);
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = p->ifindex;
	if (bind(p->base.fd, (struct sockaddr *)&sll, sizeof(sll)))
		goto fail;
	memset(&mr, 0, sizeof(mr));
	mr.mr_ifindex = p->ifindex;
	mr.mr_type = PACKET_MR_PROMISC;
	if (setsockopt(p->base.fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr,
		       sizeof(mr)))
		goto fail;
	if (colo_port_if_mac(ifname, p->base.mac))
		memset(p->base.mac, 0, sizeof(p->base.mac));

	p->rx_buf = colo_port_map(base, 2 * (size_t)COLO_PORT_BATCH * SLOT);
	if (!p->rx_buf)
		goto fail;
	p->tx_buf = p->rx_buf + (size_t)COLO_PORT_BATCH * SLOT;
	for (i = 0; i < COLO_PORT_BATCH; i++) {
		p->rx_iov[i].iov_base = p->rx_buf + (size_t)i * SLOT;
		p->rx_iov[i].iov_len = SLOT;
		p->rx_msg[i].msg_hdr.msg_iov = &p->rx_iov[i];
		p->rx_msg[i].msg_hdr.msg_iovlen = 1;
		p->tx_iov[i].iov_base = p->tx_buf + (size_t)i * SLOT;
		p->tx_msg[i].msg_hdr.msg_iov = &p->tx_iov[i];
		p->tx_msg[i].msg_hdr.msg_iovlen = 1;
	}
	return 0;
fail:
	colo_port_err(err, errlen, "packet:%s: %s", ifname, strerror(errno));
	return -1;
}

static int packet_recv(struct colo_port *base, struct colo_rx_batch *b)
{
	struct packet_port *p = (struct packet_port *)base;
	int i, r;
	uint32_t n = 0;

	for (i = 0; i < COLO_PORT_BATCH; i++) {
		struct msghdr *m = &p->rx_msg[i].msg_hdr;

		if (p->filter_outgoing) {
			m->msg_name = &p->rx_addr[i];
			m->msg_namelen = sizeof(p->rx_addr[i]);
		}
		m->msg_flags = 0;
	}
	do {
		r = recvmmsg(p->base.fd, p->rx_msg, COLO_PORT_BATCH,
			     MSG_DONTWAIT, NULL);
	} while (r < 0 && errno == EINTR);
	if (r < 0) {
		if (errno == EAGAIN || errno == ENETDOWN)
			return 0;
		return -1;
	}
	for (i = 0; i < r; i++) {
		uint32_t len = p->rx_msg[i].msg_len;

		if ((p->rx_msg[i].msg_hdr.msg_flags & MSG_TRUNC) ||
		    len <= COLO_VNET_HDR_LEN) {
			base->stats.rx_dropped++;
			continue;
		}
		if (p->filter_outgoing &&
		    p->rx_addr[i].sll_pkttype == PACKET_OUTGOING)
			continue;
		b->f[n].data = p->rx_iov[i].iov_base;
		b->f[n].len = len;
		n++;
	}
	return (int)n;
}

static int put_tx(void *arg, const uint8_t *vnet, const uint8_t *f, size_t len)
{
	struct packet_port *p = arg;
	uint8_t *slot;

	if (p->tx_n == COLO_PORT_BATCH && colo_port_flush(&p->base) < 0)
		return -1;
	if (len + COLO_VNET_HDR_LEN > SLOT) {
		p->base.stats.tx_dropped++;
		return 0;
	}
	slot = p->tx_iov[p->tx_n].iov_base;
	memcpy(slot, vnet, COLO_VNET_HDR_LEN);
	memcpy(slot + COLO_VNET_HDR_LEN, f, len);
	p->tx_iov[p->tx_n].iov_len = len + COLO_VNET_HDR_LEN;
	p->tx_n++;
	return 0;
}

static int packet_send(struct colo_port *base, const uint8_t *frame, size_t len,
		       size_t vnet_len)
{
	struct packet_port *p = (struct packet_port *)base;

	return colo_port_convert(base, frame, len, vnet_len, COLO_VNET_HDR_LEN,
				 put_tx, p, p->scratch);
}

static int packet_flush(struct colo_port *base)
{
	struct packet_port *p = (struct packet_port *)base;
	unsigned int i = 0;
	int r, waited = 0;

	while (i < p->tx_n) {
		r = sendmmsg(p->base.fd, p->tx_msg + i, p->tx_n - i,
			     MSG_DONTWAIT);
		if (r > 0) {
			i += (unsigned int)r;
			base->stats.tx_calls++;
			continue;
		}
		if (errno == EINTR)
			continue;
		if ((errno == EAGAIN || errno == ENOBUFS) &&
		    waited < TX_WAIT_MS) {
			struct pollfd pfd = { .fd = p->base.fd,
					      .events = POLLOUT };

			poll(&pfd, 1, 1);
			waited++;
			continue;
		}
		if (errno == ENXIO || errno == ENODEV) {
			base->stats.tx_dropped += p->tx_n - i;
			p->tx_n = 0;
			return -1;
		}
		/* This frame is refused (bad header, link down): drop it. */
		base->stats.tx_dropped++;
		i++;
	}
	p->tx_n = 0;
	return 0;
}

/* The kernel's receive time of the last frame read (CLOCK_REALTIME ns),
 * 0 when unknown: the socket keeps it once asked for (the first call
 * turns receive timestamps on), one ioctl with no per-frame cost. */
static uint64_t packet_rx_stamp(const struct colo_port *base)
{
	struct timespec ts;

	if (ioctl(base->fd, SIOCGSTAMPNS, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

const struct colo_port_ops colo_port_packet_ops = {
	.name = "packet",
	.size = sizeof(struct packet_port),
	.setup = packet_setup,
	.has_mac = true,
	.vnet_hdr_len = COLO_VNET_HDR_LEN,
	.recv = packet_recv,
	.send = packet_send,
	.flush = packet_flush,
	.rx_stamp = packet_rx_stamp,
};
