/*
 * fuzz_proxy_events.c - the proxy event lines colo vm reads (its
 * --proxy-control subscription): any bytes, split at newlines as the
 * reader does, must be classified without a crash or a leak, and only a
 * JSON object whose "event" is "checkpoint-request" counts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char line[4096];
	size_t start = 0;

	for (size_t i = 0; i <= size; i++) {
		size_t n;

		if (i < size && data[i] != '\n')
			continue;
		n = i - start;
		if (n >= sizeof(line))
			n = sizeof(line) - 1;
		memcpy(line, data + start, n);
		line[n] = '\0';
		if (colo_vm_proxy_is_request(line) &&
		    !strstr(line, "checkpoint-request"))
			abort(); /* a request must name itself */
		start = i + 1;
	}
	return 0;
}
