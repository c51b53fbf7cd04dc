/*
 * shell_words.c - splitting a config value into words like sh(1) does,
 * without running anything: quotes and backslashes only group and escape.
 * Inside "...", a backslash escapes only '"', '\\', '$' and '`' (as in
 * sh); inside '...', nothing. The result is built in a copy and
 * committed only when the whole line is valid.
 */
#include "shell_words.h"

#include <stdbool.h>
#include <string.h>

/* One byte into the copy; false when it is full. */
static bool put(struct colo_words *w, char c)
{
	if (w->len >= sizeof(w->buf))
		return false;
	w->buf[w->len++] = c;
	return true;
}

int colo_words_append(struct colo_words *w, const char *line, const char **why)
{
	struct colo_words t = *w;
	const char *s = line;
	size_t start;

	for (;;) {
		bool word = false;

		while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
			s++;
		if (!*s)
			break;
		start = t.len;
		while (*s && *s != ' ' && *s != '\t' && *s != '\n' &&
		       *s != '\r') {
			char q = *s;

			word = true;
			if (q == '\'' || q == '"') {
				for (s++; *s && *s != q; s++) {
					if (q == '"' && *s == '\\' && s[1] &&
					    strchr("\"\\$`", s[1]))
						s++;
					if (!put(&t, *s))
						goto too_long;
				}
				if (!*s) {
					*why = "unterminated quote";
					return -1;
				}
				s++;
				continue;
			}
			if (q == '\\') {
				if (!s[1]) {
					*why = "backslash at the end of the "
					       "line";
					return -1;
				}
				s++;
			}
			if (!put(&t, *s++))
				goto too_long;
		}
		if (!word)
			continue;
		if (t.len - start > COLO_WORD_LEN_MAX) {
			*why = "a word longer than 255 bytes";
			return -1;
		}
		if (t.n >= COLO_WORDS_MAX) {
			*why = "more than 60 words";
			return -1;
		}
		if (!put(&t, '\0'))
			goto too_long;
		t.n++;
	}
	*w = t;
	return 0;
too_long:
	*why = "more than 4096 bytes in all";
	return -1;
}

const char *colo_words_at(const struct colo_words *w, unsigned int i)
{
	const char *p = w->buf;

	for (; i; i--)
		p += strlen(p) + 1;
	return p;
}
