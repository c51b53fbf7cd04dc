/*
 * demo.h - the two variants of `colo demo`, chosen by cmd_demo.c.
 */
#ifndef COLO_DEMO_H
#define COLO_DEMO_H

/* demo_vm.c APIs: QEMU guests checkpointed by colo vm (the default). */
int colo_demo_vm(int argc, char **argv);
/* demo_netns.c APIs: namespace guests, colo proxy only. */
int colo_demo_netns(int argc, char **argv);

#endif
