/*
 * port.c - opens a port from its spec and dispatches to its kind; the
 * conversion between "with vnet header" and "without" lives here so that
 * every kind converts the same way.
 */
#include <errno.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gso.h"
#include "port_internal.h"
#include "vnet.h"

static const struct colo_port_ops *const kinds[] = {
	&colo_port_packet_ops,
	&colo_port_tap_ops,
	&colo_port_qemu_ops,
};

static struct colo_port *open_kind(const struct colo_port_ops *ops,
				   const char *spec, const char *arg, char *err,
				   size_t errlen)
{
	struct colo_port *p = calloc(1, ops->size);

	if (!p) {
		colo_port_err(err, errlen, "%s: out of memory", spec);
		return NULL;
	}
	p->ops = ops;
	p->vnet_hdr_len = ops->vnet_hdr_len;
	p->fd = -1;
	if (ops->setup(p, arg, err, errlen)) {
		colo_port_close(p);
		return NULL;
	}
	return p;
}

struct colo_port *colo_port_open(const char *spec, char *err, size_t errlen)
{
	const char *colon = spec ? strchr(spec, ':') : NULL;
	size_t i, n;

	if (!colon) {
		colo_port_err(err, errlen,
			      "port '%s': expected packet:IFNAME, tap:IFNAME "
			      "or qemu:SOCK",
			      spec ? spec : "");
		return NULL;
	}
	n = (size_t)(colon - spec);
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (strlen(kinds[i]->name) == n &&
		    !strncmp(spec, kinds[i]->name, n))
			return open_kind(kinds[i], spec, colon + 1, err,
					 errlen);
	}
	colo_port_err(err, errlen, "port '%s': unknown kind '%.*s'", spec,
		      (int)n, spec);
	return NULL;
}

void colo_port_close(struct colo_port *p)
{
	if (!p)
		return;
	if (p->ops->release)
		p->ops->release(p);
	if (p->fd >= 0)
		close(p->fd);
	if (p->map)
		munmap(p->map, p->map_len);
	free(p);
}

uint8_t *colo_port_map(struct colo_port *p, size_t len)
{
	void *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED)
		return NULL;
	p->map = m;
	p->map_len = len;
	return m;
}

int colo_port_fd(const struct colo_port *p)
{
	return p->fd;
}

int colo_port_listen_fd(const struct colo_port *p)
{
	return p->ops->listen_fd ? p->ops->listen_fd(p) : -1;
}

size_t colo_port_vnet_hdr_len(const struct colo_port *p)
{
	return p->vnet_hdr_len;
}

int colo_port_recv(struct colo_port *p, struct colo_rx_batch *b)
{
	int n = p->ops->recv(p, b);
	uint32_t i;

	b->n = n > 0 ? (uint32_t)n : 0;
	if (n <= 0)
		return n;
	p->stats.rx_calls++;
	p->stats.rx_frames += (uint32_t)n;
	for (i = 0; i < b->n; i++) {
		size_t len = b->f[i].len - p->vnet_hdr_len;

		p->stats.rx_bytes += len;
		if (len > 1514 + 8)
			p->stats.rx_gso++;
	}
	return n;
}

int colo_port_send(struct colo_port *p, const uint8_t *frame, size_t len,
		   size_t vnet_len)
{
	if ((vnet_len != 0 && vnet_len != COLO_VNET_HDR_LEN) ||
	    len <= vnet_len || len > COLO_PORT_FRAME_MAX) {
		p->stats.tx_dropped++;
		return -1;
	}
	p->stats.tx_frames++;
	p->stats.tx_bytes += len - vnet_len;
	return p->ops->send(p, frame, len, vnet_len);
}

int colo_port_flush(struct colo_port *p)
{
	return p->ops->flush ? p->ops->flush(p) : 0;
}

size_t colo_port_unsent(const struct colo_port *p)
{
	return p->ops->unsent ? p->ops->unsent(p) : 0;
}

int colo_port_hand_over(struct colo_port *p)
{
	return p->ops->hand_over ? p->ops->hand_over(p) : -1;
}

uint64_t colo_port_rx_stamp(const struct colo_port *p)
{
	return p->ops->rx_stamp ? p->ops->rx_stamp(p) : 0;
}

int colo_port_mac(const struct colo_port *p, uint8_t mac[6])
{
	if (!p->ops->has_mac)
		return -1;
	memcpy(mac, p->mac, 6);
	return 0;
}

const struct colo_port_stats *colo_port_stats(const struct colo_port *p)
{
	return &p->stats;
}

static int if_ioctl(const char *ifname, unsigned long req, struct ifreq *ifr)
{
	int fd, rc;

	if (strlen(ifname) >= IFNAMSIZ) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	snprintf(ifr->ifr_name, IFNAMSIZ, "%s", ifname);
	rc = ioctl(fd, req, ifr);
	close(fd);
	return rc;
}

int colo_port_if_mac(const char *ifname, uint8_t mac[6])
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	if (if_ioctl(ifname, SIOCGIFHWADDR, &ifr))
		return -1;
	memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	return 0;
}

struct convert_ctx {
	struct colo_port *p;
	int (*put)(void *ctx, const uint8_t *vnet, const uint8_t *f,
		   size_t len);
	void *ctx;
};

static int put_segment(void *arg, const uint8_t *f, size_t len)
{
	struct convert_ctx *c = arg;

	c->p->stats.tx_segments++;
	return c->put(c->ctx, NULL, f, len);
}

int colo_port_convert(struct colo_port *p, const uint8_t *frame, size_t len,
		      size_t vnet_len, size_t want,
		      int (*put)(void *ctx, const uint8_t *vnet,
				 const uint8_t *f, size_t len),
		      void *ctx, uint8_t *scratch)
{
	static const uint8_t zero_hdr[COLO_VNET_HDR_LEN];
	struct convert_ctx c = { p, put, ctx };
	struct colo_vnet_hdr h;
	int rc;

	if (vnet_len == want)
		return put(ctx, want ? frame : NULL, frame + want, len - want);
	if (want)
		return put(ctx, zero_hdr, frame, len);
	colo_vnet_parse(frame, &h);
	if (colo_vnet_is_gso(&h))
		p->stats.tx_gso++;
	else if (!(h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM))
		return put(ctx, NULL, frame + vnet_len, len - vnet_len);
	rc = colo_gso_segment(frame + vnet_len, len - vnet_len, &h, scratch,
			      COLO_GSO_SCRATCH, put_segment, &c);
	if (rc < 0) {
		p->stats.tx_dropped++;
		return -1;
	}
	return 0;
}
