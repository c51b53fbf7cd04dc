/*
 * mirror.c - the primary's mirror: client ingress for the guest is copied
 * to the secondary over the link, then delivered to the primary guest.
 *
 * The copy is queued before the delivery, so the secondary guest never
 * sees less than the primary guest did; both leave when the wake-up's
 * frames are flushed. Frames not for the guest (another host's unicast
 * on a shared segment) go to neither. Between a checkpoint's cut and
 * checkpoint-done the primary guest's copy is held (ingress_hold.c).
 */
#include "proxy.h"

void colo_mirror_client_frame(void *primary, uint8_t *f, size_t len)
{
	struct colo_primary *p = primary;
	size_t v = p->px.client.vnet;

	p->client_frames++;
	if (len <= v || !colo_proxy_for_guest(f + v, len - v, p->guest_mac,
					      p->guest_mac_known)) {
		p->client_ignored++;
		return;
	}
	if (colo_primary_protected(p)) {
		if (colo_proxy_queue(&p->px, COLO_PLINK_INGRESS,
				     v ? COLO_PLINK_F_VNET : 0, f, len, NULL,
				     0) < 0)
			p->mirror_failed++;
		else
			p->mirrored++;
	}
	if (!colo_hold_take(&p->hold, f, len, v)) /* after a cut: held */
		colo_port_send(p->px.guest.port, f, len, v);
}
