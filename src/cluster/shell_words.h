/*
 * shell_words.h - a PAIR.conf value split into words the way a POSIX
 * shell splits a command line (blanks, '...', "...", backslash), with no
 * expansion of any kind: `[guest] qemu_args` holds the guest's QEMU
 * arguments as an operator would type them.
 */
#ifndef COLO_CLUSTER_SHELL_WORDS_H
#define COLO_CLUSTER_SHELL_WORDS_H

#include <stddef.h>

#define COLO_WORDS_MAX	  60   /* words in all (they join colo vm's) */
#define COLO_WORDS_LEN	  4096 /* bytes of all words, NULs included */
#define COLO_WORD_LEN_MAX 255  /* one word (a daemon argument) */

/* The words so far, each NUL-terminated, one after the other. */
struct colo_words {
	char buf[COLO_WORDS_LEN];
	size_t len;
	unsigned int n;
};

/* shell_words.c APIs: */
/* Appends the words of line (a C string) to w. Returns 0, or -1 with a
 * reason in *why (an unterminated quote, a trailing backslash, too many
 * or too long words); w is then unchanged. */
int colo_words_append(struct colo_words *w, const char *line, const char **why);
/* The i-th word (i < w->n). */
const char *colo_words_at(const struct colo_words *w, unsigned int i);

#endif
