/*
 * port.h - one place a proxy exchanges Ethernet frames with: AF_PACKET on
 * an interface (the host end of a veth, or the tap a QEMU VM holds), a TAP
 * device the proxy owns, or QEMU's socket netdev (be32 length framing).
 *
 * Frames carry a 10-byte virtio-net header in front when the port runs
 * with vnet headers (the default for AF_PACKET and TAP), so GSO
 * super-frames up to 64 KiB pass end to end without being segmented.
 * A port that cannot take vnet headers (QEMU's socket netdev) segments
 * GSO frames in software on send and completes partial checksums.
 *
 * Receiving and sending are batched; nothing allocates per frame.
 */
#ifndef COLO_PORT_H
#define COLO_PORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COLO_VNET_HDR_LEN 10
#define COLO_PORT_BATCH	  64
/* A GSO super-frame plus its virtio-net header. */
#define COLO_PORT_FRAME_MAX (65536 + 14 + 8 + COLO_VNET_HDR_LEN)

struct colo_port;

struct colo_rx_batch {
	uint32_t n;
	struct {
		uint8_t *data; /* points into the port's buffers, valid until
				  the next recv on this port */
		uint32_t len;  /* includes the vnet header when vnet_hdr_len */
	} f[COLO_PORT_BATCH];
};

/* port.c APIs: */
/* spec: "packet:IFNAME" | "tap:IFNAME" | "qemu:SOCK" (SOCK as in
 * colo compare: tcp-listen:/tcp:/unix-listen:/unix:). On error returns
 * NULL with a message in err. */
struct colo_port *colo_port_open(const char *spec, char *err, size_t errlen);
void colo_port_close(struct colo_port *p);
/* fd to poll for input (EPOLLIN); -1 while a qemu: port waits for its
 * peer (then poll colo_port_listen_fd). */
int colo_port_fd(const struct colo_port *p);
/* 0 or COLO_VNET_HDR_LEN: what recv returns in front of each frame and
 * what send expects. */
size_t colo_port_vnet_hdr_len(const struct colo_port *p);
/* Non-blocking: fills b with up to COLO_PORT_BATCH frames; returns the
 * number, 0 when none, -1 on a fatal error of the port. When it returns
 * COLO_PORT_BATCH, call it again before polling: a qemu: port may hold
 * more frames already read from its socket. */
int colo_port_recv(struct colo_port *p, struct colo_rx_batch *b);
/* Queues a frame given with a vnet header of vnet_len bytes (0 or 10),
 * converting as the port needs; sent at the latest by colo_port_flush. */
int colo_port_send(struct colo_port *p, const uint8_t *frame, size_t len,
		   size_t vnet_len);
int colo_port_flush(struct colo_port *p);
/* The MAC address of a packet:/tap: interface (for gratuitous ARP). */
int colo_port_mac(const struct colo_port *p, uint8_t mac[6]);

/* Added after the first version (backward compatible): */

/* A qemu:*-listen: port without a peer: the listening socket to poll for
 * EPOLLIN; then call colo_port_recv, which accepts the peer, and ask
 * colo_port_fd again (it changes on accept and when the peer goes away).
 * -1 for every other port. */
int colo_port_listen_fd(const struct colo_port *p);
/* Bytes sent to the port that its peer has not read yet (a qemu: port:
 * its own queue plus its socket's, SIOCOUTQ); 0 for other kinds. A
 * checkpoint's cut waits for 0 so that the VM has what was sent. */
size_t colo_port_unsent(const struct colo_port *p);
/* The port's peer is being retired and the next one in its listen queue
 * takes over (colo vm's secondary at a checkpoint): frames queued for the
 * current peer are dropped, what it still sends is discarded, and frames
 * sent from here on wait for the next peer. 0, or -1 for ports that
 * cannot (every kind but a listening qemu: port). */
int colo_port_hand_over(struct colo_port *p);

struct colo_port_stats {
	uint64_t rx_frames, rx_bytes; /* bytes without vnet headers */
	uint64_t rx_calls;	      /* recv calls that returned frames */
	uint64_t rx_gso;	      /* frames longer than 1514 + VLANs */
	uint64_t rx_dropped;	      /* truncated or malformed input */
	uint64_t tx_frames, tx_bytes; /* as given to send */
	uint64_t tx_gso;	      /* GSO frames given to send */
	uint64_t tx_segments;	      /* frames made by software GSO */
	uint64_t tx_calls;	      /* syscalls that sent frames */
	uint64_t tx_dropped;	      /* malformed, refused or no peer */
};
const struct colo_port_stats *colo_port_stats(const struct colo_port *p);
/* When the kernel received the last frame colo_port_recv returned
 * (CLOCK_REALTIME ns), for latency stamps; 0 when the kind cannot say
 * (only packet: can). One syscall: call it only when measuring. */
uint64_t colo_port_rx_stamp(const struct colo_port *p);

#endif
