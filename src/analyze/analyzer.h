/*
 * analyzer.h - replay a primary and a secondary capture through the
 * comparer, offline, and keep what it found.
 *
 * The two captures are merged by capture time and fed to the engine as if
 * live: the capture time is the clock, tick() runs every 100 ms of it, and
 * a checkpoint is "done" a configurable delay after it was requested. Since
 * every frame stays in memory, each divergence is tied back to the frames
 * of both sides that carry the differing byte.
 */
#ifndef COLO_ANALYZER_H
#define COLO_ANALYZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "align.h"
#include "capture.h"
#include "comparer.h"

#define COLO_NO_FRAME SIZE_MAX

struct colo_analyze_config {
	struct colo_comparer_config cmp;
	uint64_t checkpoint_delay_ns; /* 0: right after the current frame */
	uint64_t tick_ns;	      /* 100 ms */
};

/* One divergence the comparer reported, and where it is in the captures. */
struct colo_finding {
	struct colo_divergence d;
	unsigned checkpoint; /* number (1-based) of the checkpoint it is part of
			      */
	size_t frame[2];     /* index per side, or COLO_NO_FRAME */
	size_t byte[2];	     /* offset of the differing byte in that frame's
				compared payload; meaningful when frame set */
	uint64_t done_ns;    /* requested ones: when the checkpoint completed */
};

struct colo_analysis {
	struct colo_finding *findings;
	size_t n, cap;
	unsigned checkpoints;
	struct colo_stats stats;
	uint64_t start_ns,
		end_ns; /* first frame; the clock when replay ended */
};

struct colo_side_frame {
	uint64_t ts_ns;
	int side;
	size_t index;
};

/* analyzer.c APIs: */
void colo_analyze_config_default(struct colo_analyze_config *cfg);
/* Returns 0, or -1 when memory is exhausted. out must be freed in both
 * cases. side[COLO_PRIMARY], side[COLO_SECONDARY] are the captures. */
int colo_analyze_run(const struct colo_capture *const side[2],
		     const struct colo_analyze_config *cfg,
		     struct colo_analysis *out);
void colo_analysis_free(struct colo_analysis *a);
/* Every frame named by a finding, once each, in capture time order
 * (primary first on equal times). Returns the count; *list is malloc'd,
 * NULL on failure with -1 returned. */
ssize_t colo_analysis_frames(const struct colo_analysis *a,
			     const struct colo_capture *const side[2],
			     struct colo_side_frame **list);

/* locate.c APIs: */
/* Fills f->frame and f->byte for the divergence f->d, searching the frames
 * of each side fed so far (pos[s] of them; since[s]: fed before the last
 * checkpoint completed). arriving: the side whose frame was being fed
 * when the comparer reported it, or -1. */
void colo_locate(struct colo_finding *f,
		 const struct colo_capture *const side[2], const size_t pos[2],
		 const size_t since[2], int arriving);

/* report.c APIs: */
void colo_report_finding(FILE *out, const struct colo_analysis *a,
			 const struct colo_finding *f,
			 const struct colo_capture *const side[2]);
void colo_report_summary(FILE *out, const struct colo_analysis *a,
			 const struct colo_capture *const side[2]);

/* report_align.c APIs: */
/* How the captures were aligned; per_flow: a line for every TCP flow. */
void colo_report_alignment(FILE *out, const struct colo_align_config *cfg,
			   const struct colo_alignment *al, bool per_flow);

#endif
