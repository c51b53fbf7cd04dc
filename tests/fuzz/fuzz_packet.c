/*
 * fuzz_packet.c - libFuzzer target: any bytes through the frame parser,
 * the flow key and its printable form.
 */
#include <stddef.h>
#include <stdint.h>

#include "flow.h"
#include "packet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct colo_packet p;
	struct colo_flow_key k;
	char buf[200];
	volatile uint8_t sink = 0;

	colo_packet_parse(data, size, &p);
	if (p.payload) {
		/* touch every payload byte: out-of-bounds shows under ASan */
		for (size_t i = 0; i < p.payload_len; i++)
			sink ^= p.payload[i];
	}
	if (p.kind != COLO_PKT_NON_IP) {
		colo_flow_key_from_packet(&k, &p);
		colo_flow_format(&k, buf, sizeof(buf));
	}
	(void)sink;
	return 0;
}
