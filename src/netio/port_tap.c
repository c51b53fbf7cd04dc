/*
 * port_tap.c - "tap:IFNAME[,mac=MAC]": a TAP device the proxy owns, opened
 * with IFF_VNET_HDR and TSO offloads so the kernel hands it GSO
 * super-frames.
 *
 * The tap's interface is the guest's NIC (a namespace or container guest:
 * the interface is moved there), not a host port. So the proxy never
 * brings it up: an interface up in the host namespace sends the host's own
 * IPv6 chatter (DAD, router solicitations, MLD reports at random moments)
 * with its own MAC, which the proxy would read as guest output, learn as
 * the guest's MAC and compare against the other host's. The guest brings
 * it up. "mac=" gives the interface the guest's MAC before anyone sees it.
 *
 * A tap has no batched read or write: recv reads until the device is dry
 * or the batch is full, send writes each frame at once (writev of header
 * and frame, so nothing is copied on our side).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "gso.h"
#include "port_internal.h"

#define SLOT COLO_PORT_FRAME_MAX

struct tap_port {
	struct colo_port base;
	char ifname[IFNAMSIZ];
	uint8_t *rx_buf;
	uint8_t scratch[COLO_GSO_SCRATCH];
};

/* Splits "IFNAME[,mac=MAC]"; *has_mac says whether a MAC was given. */
static int tap_parse(const char *spec, char ifname[IFNAMSIZ], uint8_t mac[6],
		     int *has_mac, char *err, size_t errlen)
{
	const char *comma = strchr(spec, ',');
	size_t n = comma ? (size_t)(comma - spec) : strlen(spec);
	unsigned int b[6];
	char tail;
	int i;

	*has_mac = 0;
	if (!n || n >= IFNAMSIZ) {
		colo_port_err(err, errlen, "tap:%s: bad interface name", spec);
		return -1;
	}
	memcpy(ifname, spec, n);
	ifname[n] = 0;
	if (!comma)
		return 0;
	if (strncmp(comma + 1, "mac=", 4) ||
	    sscanf(comma + 5, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2],
		   &b[3], &b[4], &b[5], &tail) != 6 ||
	    strlen(comma + 5) != 17 || (b[0] & 1)) {
		colo_port_err(
			err, errlen,
			"tap:%s: expected tap:IFNAME[,mac=XX:XX:XX:XX:XX:XX]"
			" (a unicast MAC)",
			spec);
		return -1;
	}
	for (i = 0; i < 6; i++)
		mac[i] = (uint8_t)b[i];
	*has_mac = 1;
	return 0;
}

/* Sets the interface's MAC; tun allows it while the interface is up. */
static int tap_set_mac(const char *ifname, const uint8_t mac[6])
{
	struct ifreq ifr;
	int fd, rc;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
	memcpy(ifr.ifr_hwaddr.sa_data, mac, 6);
	rc = ioctl(fd, SIOCSIFHWADDR, &ifr);
	close(fd);
	return rc;
}

static int tap_setup(struct colo_port *base, const char *spec, char *err,
		     size_t errlen)
{
	struct tap_port *p = (struct tap_port *)base;
	char ifname[IFNAMSIZ];
	uint8_t mac[6];
	int has_mac;
	unsigned int offload = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
	int hdr_sz = COLO_VNET_HDR_LEN;
	struct ifreq ifr;

	if (tap_parse(spec, ifname, mac, &has_mac, err, errlen))
		return -1;
	p->base.fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (p->base.fd < 0)
		goto fail;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(p->base.fd, TUNSETIFF, &ifr))
		goto fail;
	snprintf(p->ifname, sizeof(p->ifname), "%s", ifr.ifr_name);
	if (ioctl(p->base.fd, TUNSETVNETHDRSZ, &hdr_sz) ||
	    ioctl(p->base.fd, TUNSETOFFLOAD, offload))
		goto fail;
	if (has_mac && tap_set_mac(p->ifname, mac))
		goto fail;
	if (colo_port_if_mac(p->ifname, p->base.mac))
		goto fail;
	p->rx_buf = colo_port_map(base, (size_t)COLO_PORT_BATCH * SLOT);
	if (!p->rx_buf)
		goto fail;
	return 0;
fail:
	colo_port_err(err, errlen, "tap:%s: %s", ifname, strerror(errno));
	return -1;
}

static int tap_recv(struct colo_port *base, struct colo_rx_batch *b)
{
	struct tap_port *p = (struct tap_port *)base;
	uint32_t n = 0;
	ssize_t r;

	while (n < COLO_PORT_BATCH) {
		uint8_t *slot = p->rx_buf + (size_t)n * SLOT;

		r = read(p->base.fd, slot, SLOT);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || n)
				break;
			return -1;
		}
		if (r <= COLO_VNET_HDR_LEN) {
			base->stats.rx_dropped++;
			continue;
		}
		b->f[n].data = slot;
		b->f[n].len = (uint32_t)r;
		n++;
	}
	return (int)n;
}

static int put_tap(void *arg, const uint8_t *vnet, const uint8_t *f, size_t len)
{
	struct tap_port *p = arg;
	struct iovec iov[2] = {
		{ .iov_base = (void *)vnet, .iov_len = COLO_VNET_HDR_LEN },
		{ .iov_base = (void *)f, .iov_len = len },
	};
	ssize_t r;

	do {
		r = writev(p->base.fd, iov, 2);
	} while (r < 0 && errno == EINTR);
	if (r < 0) {
		/* EBADFD/EIO: the device went away under us. */
		if (errno == EBADFD || errno == ENODEV)
			return -1;
		p->base.stats.tx_dropped++;
		return 0;
	}
	p->base.stats.tx_calls++;
	return 0;
}

static int tap_send(struct colo_port *base, const uint8_t *frame, size_t len,
		    size_t vnet_len)
{
	struct tap_port *p = (struct tap_port *)base;

	return colo_port_convert(base, frame, len, vnet_len, COLO_VNET_HDR_LEN,
				 put_tap, p, p->scratch);
}

const struct colo_port_ops colo_port_tap_ops = {
	.name = "tap",
	.size = sizeof(struct tap_port),
	.setup = tap_setup,
	.has_mac = true,
	.vnet_hdr_len = COLO_VNET_HDR_LEN,
	.recv = tap_recv,
	.send = tap_send,
};
