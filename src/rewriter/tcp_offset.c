/*
 * tcp_offset.c - the sequence and timestamp offset between two guests'
 * views of one connection, and its application to a segment; see
 * tcp_offset.h.
 */
#include "tcp_offset.h"
#include "byteorder.h"
#include "checksum.h"

void colo_tcp_offset_from_syns(const struct colo_tcp_syn *pri,
			       const struct colo_tcp_syn *sec,
			       struct colo_tcp_offset *off)
{
	off->seq = sec->isn - pri->isn;
	off->ts_ok = sec->has_ts && pri->has_ts;
	off->ts = off->ts_ok ? sec->tsval - pri->tsval : 0;
}

/* A malformed option list ends the walk: what was found before it is
 * still used, which is what the receiving stack does too. */
void colo_tcp_find_options(const uint8_t *tcp, size_t doff,
			   struct colo_tcp_opts *o)
{
	size_t i = 20;

	o->ts_at = 0;
	o->sack_at = 0;
	o->nsack = 0;
	while (i < doff) {
		uint8_t kind = tcp[i];

		if (kind == 0)
			break;
		if (kind == 1) {
			i++;
			continue;
		}
		if (doff - i < 2)
			break;
		size_t olen = tcp[i + 1];
		if (olen < 2 || olen > doff - i)
			break;
		if (kind == 8 && olen == 10 && !o->ts_at)
			o->ts_at = i + 2;
		else if (kind == 5 && olen >= 10 && (olen - 2) % 8 == 0 &&
			 !o->sack_at) {
			o->sack_at = i + 2;
			o->nsack = (unsigned)(olen - 2) / 8;
		}
		i += olen;
	}
}

void colo_tcp_offset_shift_egress(uint8_t *tcp, size_t ts_at, bool csum,
				  const struct colo_tcp_offset *off)
{
	uint16_t sum = colo_get_be16(tcp + 16);

	colo_csum_set32(tcp, 4, colo_get_be32(tcp + 4) - off->seq,
			csum ? &sum : NULL);
	if (off->ts_ok && ts_at)
		colo_csum_set32(tcp, ts_at,
				colo_get_be32(tcp + ts_at) - off->ts,
				csum ? &sum : NULL);
	if (csum) {
		tcp[16] = (uint8_t)(sum >> 8);
		tcp[17] = (uint8_t)sum;
	}
}
