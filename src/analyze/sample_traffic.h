/*
 * sample_traffic.h - the built-in sample: what a primary and a secondary
 * guest running the same service send, frame by frame.
 *
 * Deterministic (fixed timestamps, a fixed-seed PRNG), so `colo sample`
 * reproduces samples/primary.pcap and samples/secondary.pcap byte for
 * byte and `colo analyze` without arguments always tells the same story:
 * everything matches except one HTTP response whose Date header differs.
 * samples/README.md describes the scenario.
 */
#ifndef COLO_SAMPLE_TRAFFIC_H
#define COLO_SAMPLE_TRAFFIC_H

#include "capture.h"

/* sample_traffic.c APIs: */
/* Appends the primary's and the secondary's output to the two captures.
 * Returns 0, or -1 when memory is exhausted. */
int colo_sample_generate(struct colo_capture *primary,
			 struct colo_capture *secondary);

#endif
