/*
 * device.h — the node whose memory serves a device (device.c; the public
 * nm_node_of_device is in numamalloc.h).
 */
#ifndef NM_DEVICE_H
#define NM_DEVICE_H

/* The kernel node id whose memory blocks placed near device `dev` go to
 * (nm_malloc_near, policy near:DEVICE): the device's node
 * (nm_node_of_device) or, when that node's memory may not be used, its
 * home (the nearest usable node: topology.h).  *node is the device's own
 * node, or -1 when it has none.  Returns -1 with errno EINVAL (NULL or
 * ""), ENODEV (no such device) or ENXIO (no node, or *node is not a node
 * of this machine). */
int nm_device_home_node(const char *dev, int *node);

#endif
