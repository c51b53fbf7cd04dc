/*
 * fuzz_qmp.c - the QMP reply and event parser on arbitrary bytes: every
 * input is classified, nothing aborts, and what a message claims to be is
 * what it holds.
 */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>

#include "qmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct colo_qmp_msg m;
	enum colo_qmp_kind k = colo_qmp_parse((const char *)data, size, &m);

	if (k == COLO_QMP_ERROR && !m.desc)
		abort();
	if (k == COLO_QMP_EVENT && !m.name)
		abort();
	if (k != COLO_QMP_INVALID &&
	    !json_object_is_type(m.obj, json_type_object))
		abort();
	colo_qmp_msg_free(&m);
	return 0;
}
