/*
 * port_qemu.c - "qemu:SOCK": QEMU's -netdev socket stream, frames framed
 * as be32 length + frame, no virtio-net header.
 *
 * The framing reader and writer are the daemon's (frame_reader, outbuf).
 * Having no vnet header, the port segments GSO frames and completes
 * partial checksums on send, as a NIC without offloads would need. A
 * listening port serves one peer at a time and goes back to listening
 * when it leaves, as QEMU's own socket netdev does; a connecting port
 * reports the loss of its peer as a fatal error. `colo vm` relies on the
 * listen queue: a standby QEMU connects while the VM it will replace is
 * attached, waits there, and is accepted once that VM is retired. At a
 * checkpoint's commit the port is handed over (colo_port_hand_over): what
 * the retiring VM still sends is discarded, and frames sent from then on
 * wait for the next peer instead of reaching the retiring one.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame_reader.h"
#include "gso.h"
#include "outbuf.h"
#include "port_internal.h"
#include "sock_spec.h"

/* Above this many unsent bytes frames are dropped, not queued. */
#define TX_HIGH_WATER (32u << 20)
#define TX_WAIT_MS    50

struct qemu_port {
	struct colo_port base;
	struct colo_sock_spec spec;
	int listen_fd;
	bool connecting;
	bool dead;     /* a connecting port lost its peer */
	bool handover; /* frames wait for the next peer, the current one's
			* input is discarded */
	struct colo_frame_reader rd;
	struct colo_outbuf out;
	uint8_t scratch[COLO_GSO_SCRATCH];
};

static void qemu_release(struct colo_port *base)
{
	struct qemu_port *p = (struct qemu_port *)base;

	if (p->listen_fd >= 0)
		close(p->listen_fd);
	colo_frame_reader_free(&p->rd);
	colo_outbuf_free(&p->out);
}

/* TCP_NODELAY, no corking, on a TCP socket to QEMU: a flush writes what
 * one wake-up produced in one go (already a batch), and with Nagle a
 * guest's frame could wait for QEMU's delayed ACK (tens of ms of release
 * latency, as measured on the compare streams). UNIX sockets: nothing. */
static void no_delay(struct qemu_port *p)
{
	char name[300];

	if (colo_sock_no_delay(p->base.fd)) {
		colo_sock_spec_format(&p->spec, name, sizeof(name));
		colo_log_warn("qemu:%s: TCP_NODELAY: %s", name,
			      strerror(errno));
	}
}

static int qemu_setup(struct colo_port *base, const char *arg, char *err,
		      size_t errlen)
{
	struct qemu_port *p = (struct qemu_port *)base;
	struct colo_sock_addr a;
	char why[256];

	p->listen_fd = -1;
	if (colo_sock_spec_parse(arg, &p->spec, why, sizeof(why)) ||
	    colo_sock_resolve(&p->spec, &a, why, sizeof(why))) {
		colo_port_err(err, errlen, "qemu:%s: %s", arg, why);
		return -1;
	}
	if (colo_frame_reader_init(&p->rd, COLO_FRAMING_PLAIN,
				   COLO_FRAME_READER_DEFAULT_CAP) ||
	    colo_outbuf_init(&p->out, 1 << 20, false)) {
		colo_port_err(err, errlen, "qemu:%s: out of memory", arg);
		return -1;
	}
	if (colo_sock_spec_is_listen(&p->spec)) {
		p->listen_fd = colo_sock_listen(&a);
		if (p->listen_fd < 0)
			goto fail;
	} else {
		p->base.fd = colo_sock_connect(&a, &p->connecting);
		if (p->base.fd < 0)
			goto fail;
		no_delay(p);
	}
	return 0;
fail:
	colo_port_err(err, errlen, "qemu:%s: %s", arg, strerror(errno));
	return -1;
}

static int qemu_listen_fd(const struct colo_port *base)
{
	const struct qemu_port *p = (const struct qemu_port *)base;

	return p->base.fd < 0 ? p->listen_fd : -1;
}

/* The peer is gone (EOF, error or a desynchronised stream). */
static void peer_lost(struct qemu_port *p)
{
	close(p->base.fd);
	p->base.fd = -1;
	p->connecting = false;
	colo_frame_reader_reset(&p->rd);
	colo_outbuf_drop_partial(&p->out);
	if (p->listen_fd < 0)
		p->dead = true;
}

/* Finishes a non-blocking connect; false while it is still going on. */
static bool connected(struct qemu_port *p)
{
	struct pollfd pfd = { .fd = p->base.fd, .events = POLLOUT };
	int e = 0;
	socklen_t l = sizeof(e);

	if (!p->connecting)
		return true;
	if (poll(&pfd, 1, 0) <= 0)
		return false;
	if (getsockopt(p->base.fd, SOL_SOCKET, SO_ERROR, &e, &l) || e) {
		peer_lost(p);
		return false;
	}
	p->connecting = false;
	return true;
}

static int qemu_recv(struct colo_port *base, struct colo_rx_batch *b)
{
	struct qemu_port *p = (struct qemu_port *)base;
	struct colo_frame f;
	uint32_t n = 0;
	uint8_t *space;
	size_t avail;
	ssize_t r;

	if (p->base.fd < 0 && p->listen_fd >= 0) {
		p->base.fd = colo_sock_accept(p->listen_fd);
		if (p->base.fd < 0)
			return 0;
		no_delay(p);
		colo_frame_reader_reset(&p->rd);
		p->handover = false;
	}
	if (p->dead)
		return -1;
	if (!connected(p))
		return p->dead ? -1 : 0;
	space = colo_frame_reader_space(&p->rd, &avail);
	if (avail) {
		do {
			r = read(p->base.fd, space, avail);
		} while (r < 0 && errno == EINTR);
		if (r > 0 && p->handover)
			base->stats.rx_dropped++; /* the retiring VM's */
		else if (r > 0)
			colo_frame_reader_commit(&p->rd, (size_t)r);
		else if (r == 0 || errno != EAGAIN)
			peer_lost(p);
	}
	while (p->base.fd >= 0 && n < COLO_PORT_BATCH) {
		switch (colo_frame_reader_next(&p->rd, &f)) {
		case COLO_FRAME_OK:
			b->f[n].data = (uint8_t *)f.data;
			b->f[n].len = (uint32_t)f.len;
			n++;
			continue;
		case COLO_FRAME_SKIPPED:
			base->stats.rx_dropped++;
			continue;
		case COLO_FRAME_DESYNC:
			base->stats.rx_dropped++;
			peer_lost(p);
			break;
		case COLO_FRAME_NEED_MORE:
			break;
		}
		break;
	}
	if (!n && p->dead)
		return -1;
	return (int)n;
}

static int put_out(void *arg, const uint8_t *vnet, const uint8_t *f, size_t len)
{
	struct qemu_port *p = arg;

	(void)vnet;
	/* After a hand-over frames wait for the next peer. */
	if ((p->base.fd < 0 && !p->handover) ||
	    colo_outbuf_pending(&p->out) > TX_HIGH_WATER ||
	    colo_outbuf_append(&p->out, f, len, 0)) {
		p->base.stats.tx_dropped++;
		return 0;
	}
	return 0;
}

static int qemu_send(struct colo_port *base, const uint8_t *frame, size_t len,
		     size_t vnet_len)
{
	struct qemu_port *p = (struct qemu_port *)base;

	if (p->dead)
		return -1;
	return colo_port_convert(base, frame, len, vnet_len, 0, put_out, p,
				 p->scratch);
}

static int qemu_flush(struct colo_port *base)
{
	struct qemu_port *p = (struct qemu_port *)base;
	int waited = 0;

	while (p->base.fd >= 0 && !p->handover &&
	       colo_outbuf_pending(&p->out)) {
		struct pollfd pfd = { .fd = p->base.fd, .events = POLLOUT };

		if (!connected(p))
			break;
		if (colo_outbuf_flush(&p->out, p->base.fd)) {
			peer_lost(p);
			break;
		}
		base->stats.tx_calls++;
		/* A slow peer gets a moment, then the rest waits for the
		 * next flush: the proxy's loop must not stall behind it. */
		if (!colo_outbuf_pending(&p->out) || waited >= TX_WAIT_MS)
			break;
		poll(&pfd, 1, 1);
		waited++;
	}
	return p->dead ? -1 : 0;
}

/* For unix sockets SIOCOUTQ counts what the peer has not consumed yet,
 * for TCP what it has not acknowledged. */
static size_t qemu_unsent(const struct colo_port *base)
{
	const struct qemu_port *p = (const struct qemu_port *)base;
	int q = 0;

	if (p->base.fd < 0)
		return 0;
	if (ioctl(p->base.fd, SIOCOUTQ, &q) < 0 || q < 0)
		q = 0;
	return colo_outbuf_pending(&p->out) + (size_t)q;
}

/* colo vm retires the VM on a listening port: frames queued for it are
 * dropped (they were the retired VM's), later ones go to the next peer. */
static int qemu_hand_over(struct colo_port *base)
{
	struct qemu_port *p = (struct qemu_port *)base;

	if (p->listen_fd < 0)
		return -1;
	colo_outbuf_free(&p->out);
	if (colo_outbuf_init(&p->out, 1 << 20, false))
		return -1;
	/* Whole frames the retiring VM sent that were read but not yet
	 * handed up are its output too: dropped with the rest. */
	colo_frame_reader_reset(&p->rd);
	p->handover = true;
	return 0;
}

const struct colo_port_ops colo_port_qemu_ops = {
	.name = "qemu",
	.size = sizeof(struct qemu_port),
	.setup = qemu_setup,
	.vnet_hdr_len = 0,
	.release = qemu_release,
	.listen_fd = qemu_listen_fd,
	.recv = qemu_recv,
	.send = qemu_send,
	.flush = qemu_flush,
	.unsent = qemu_unsent,
	.hand_over = qemu_hand_over,
};
