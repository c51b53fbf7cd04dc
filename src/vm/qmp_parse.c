/*
 * qmp_parse.c - classifies one line QEMU sent on its monitor: greeting,
 * return, error or event. QEMU is a separate process that may be of any
 * version (or not QEMU at all), so nothing here trusts a field's presence
 * or type.
 */
#include <json-c/json.h>
#include <string.h>

#include "qmp.h"

static const char *str_field(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

enum colo_qmp_kind colo_qmp_parse(const char *line, size_t len,
				  struct colo_qmp_msg *msg)
{
	struct json_tokener *tok;
	struct json_object *o, *v;

	memset(msg, 0, sizeof(*msg));
	msg->kind = COLO_QMP_INVALID;
	msg->id = -1;
	if (len > COLO_QMP_LINE_MAX || len > (size_t)INT32_MAX)
		return msg->kind;
	tok = json_tokener_new();
	if (!tok)
		return msg->kind;
	o = json_tokener_parse_ex(tok, line, (int)len);
	json_tokener_free(tok);
	if (!o)
		return msg->kind;
	msg->obj = o;
	if (!json_object_is_type(o, json_type_object))
		return msg->kind;
	if (json_object_object_get_ex(o, "id", &v) &&
	    json_object_is_type(v, json_type_int))
		msg->id = (long long)json_object_get_int64(v);
	if (json_object_object_get_ex(o, "QMP", &v) &&
	    json_object_is_type(v, json_type_object)) {
		msg->kind = COLO_QMP_GREETING;
	} else if (json_object_object_get_ex(o, "return", &v)) {
		msg->kind = COLO_QMP_RETURN;
		msg->value = v;
	} else if (json_object_object_get_ex(o, "error", &v) &&
		   json_object_is_type(v, json_type_object)) {
		msg->kind = COLO_QMP_ERROR;
		msg->name = str_field(v, "class");
		msg->desc = str_field(v, "desc");
		if (!msg->desc)
			msg->desc = "QEMU error without description";
	} else if ((msg->name = str_field(o, "event"))) {
		msg->kind = COLO_QMP_EVENT;
		if (json_object_object_get_ex(o, "data", &v))
			msg->value = v;
	}
	return msg->kind;
}

void colo_qmp_msg_free(struct colo_qmp_msg *msg)
{
	json_object_put(msg->obj);
	memset(msg, 0, sizeof(*msg));
}
