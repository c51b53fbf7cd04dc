/*
 * dlist.h - doubly linked lists threaded through the elements themselves
 * (no allocation, O(1) append and unlink), for lists kept as a head and a
 * tail pointer. The element's link fields are named by the caller, since
 * one element often sits on two lists at once (a frame on its flow's
 * queue and on the global arrival order).
 */
#ifndef COLO_DLIST_H
#define COLO_DLIST_H

#include <stddef.h>

/* Appends node at the tail. */
#define COLO_DL_APPEND(head, tail, node, prev, next)                       \
	do {                                                               \
		(node)->prev = (tail);                                     \
		(node)->next = NULL;                                       \
		if (tail)                                                  \
			(tail)->next = (node);                             \
		else                                                       \
			(head) = (node);                                   \
		(tail) = (node);                                           \
	} while (0)

/* Takes node out of the list; its own links are left as they were. */
#define COLO_DL_UNLINK(head, tail, node, prev, next)                       \
	do {                                                               \
		if ((node)->prev)                                          \
			(node)->prev->next = (node)->next;                 \
		else                                                       \
			(head) = (node)->next;                             \
		if ((node)->next)                                          \
			(node)->next->prev = (node)->prev;                 \
		else                                                       \
			(tail) = (node)->prev;                             \
	} while (0)

#endif
