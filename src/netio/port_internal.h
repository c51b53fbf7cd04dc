/*
 * port_internal.h - what port.c dispatches to: one table of operations
 * per kind of port (port_packet.c, port_tap.c, port_qemu.c).
 */
#ifndef COLO_PORT_INTERNAL_H
#define COLO_PORT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "port.h"

struct colo_port_ops {
	const char *name;
	size_t size;	     /* of the kind's struct, which starts with a
				struct colo_port */
	bool has_mac;	     /* setup fills the port's mac */
	size_t vnet_hdr_len; /* what recv returns in front of a frame */
	/* On a zeroed port of size bytes with fd -1; arg: what follows
	 * "kind:" in the spec. On failure the port is closed. */
	int (*setup)(struct colo_port *p, const char *arg, char *err,
		     size_t errlen);
	/* Frees what the kind holds besides fd and map; may be NULL. */
	void (*release)(struct colo_port *p);
	int (*listen_fd)(const struct colo_port *p);
	int (*recv)(struct colo_port *p, struct colo_rx_batch *b);
	int (*send)(struct colo_port *p, const uint8_t *frame, size_t len,
		    size_t vnet_len);
	int (*flush)(struct colo_port *p); /* NULL: nothing is queued */
	size_t (*unsent)(const struct colo_port *p); /* may be NULL */
	int (*hand_over)(struct colo_port *p);	     /* may be NULL */
	/* Kernel receive time of the last frame read; NULL: unknown. */
	uint64_t (*rx_stamp)(const struct colo_port *p);
};

/* Every port struct starts with this. */
struct colo_port {
	const struct colo_port_ops *ops;
	size_t vnet_hdr_len;
	int fd; /* what the event loop waits on */
	uint8_t mac[6];
	uint8_t *map; /* colo_port_map's buffers */
	size_t map_len;
	struct colo_port_stats stats;
};

extern const struct colo_port_ops colo_port_packet_ops;
extern const struct colo_port_ops colo_port_tap_ops;
extern const struct colo_port_ops colo_port_qemu_ops;

/* port.c helpers shared by the kinds: */
#define colo_port_err colo_set_err
/* Anonymous memory for a kind's frame slots, freed with the port;
 * NULL with errno set on failure. */
uint8_t *colo_port_map(struct colo_port *p, size_t len);
/* ioctl on an interface of the current network namespace. */
int colo_port_if_mac(const char *ifname, uint8_t mac[6]);
/* Hands a frame given with vnet_len bytes of header to a port that wants
 * want bytes: calls put(ctx, vnet, f, len) once per resulting frame
 * (more than once when a GSO frame has to be segmented), vnet being the
 * header to write in front (NULL when want is 0). scratch holds
 * COLO_GSO_SCRATCH bytes. */
int colo_port_convert(struct colo_port *p, const uint8_t *frame, size_t len,
		      size_t vnet_len, size_t want,
		      int (*put)(void *ctx, const uint8_t *vnet,
				 const uint8_t *f, size_t len),
		      void *ctx, uint8_t *scratch);

#endif
