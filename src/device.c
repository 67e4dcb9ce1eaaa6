/*
 * device.c — the NUMA node of a device (nm_node_of_device) and the node
 * whose memory serves it (nm_device_home_node), read from sysfs under nm_opt.sysfs_root ("/sys", or a recorded tree in tests).
 *
 * A device is named by
 *   a PCI address       "0000:3b:00.0" (or "3b:00.0": domain 0000)
 *                       -> <root>/bus/pci/devices/ADDRESS
 *   a device name       "eth0", "ib0", "nvme0n1", "nvme0n1p2", "mlx5_0",
 *                       "nvme0", "card0" -> <root>/class/CLASS/NAME for the
 *                       classes of device_classes[] below, in that order
 *   a device file       "/dev/..." -> stat: a character or block device's
 *                       major:minor -> <root>/dev/{char,block}/MAJ:MIN
 * The directory found is opened (the kernel follows the class links to the
 * device's own directory under <root>/devices), then its parents are walked
 * up with openat(".."), so that a partition finds its disk, a disk its
 * controller and a controller its PCI function, until a `numa_node` file
 * says a node (>= 0).  The walk stops at <root>/devices: a device under
 * devices/virtual, or whose PCI functions say -1 all the way up, has no
 * node affinity.
 *
 * Layer: beside topology.  May call topology (nm_topology_ensure), options
 * and os, and libc calls that neither allocate nor print (open, openat,
 * read, fstat, stat, close): policy text naming a device is parsed inside
 * the first malloc (NUMAMALLOC_POLICY).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "device.h"
#include "numamalloc.h"
#include "options.h"
#include "os.h"
#include "topology.h"

enum {
    NAME_LIMIT = 255,       /* a sysfs file name */
    WALK_LIMIT = 64,        /* directories walked up at most (PCI trees are shallow) */
};

/* Where a device name is looked up, in this order. */
static const char *const device_classes[] = {
    "/class/net/",          /* eth0, ib0: the interface's device */
    "/class/block/",        /* nvme0n1, sda, partitions */
    "/class/infiniband/",   /* mlx5_0 */
    "/class/nvme/",         /* nvme0: the controller */
    "/class/drm/",          /* card0, renderD128 */
};

static int open_path(const char *path)
{
    return open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
}

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* The node the `numa_node` file of directory `dir` names, -1 when it has
 * none, says -1 or holds no number (the walk goes on to the parent), or
 * NODE_UNKNOWN for a number that is no node id this library knows (the
 * device's own answer: the walk stops). */
#define NODE_UNKNOWN (-2)

static int numa_node_in(int dir)
{
    int fd = openat(dir, "numa_node", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char buf[32];
    ssize_t n;
    do n = read(fd, buf, sizeof buf - 1);
    while (n < 0 && errno == EINTR);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = '\0';
    int node = 0;
    const char *s = buf;
    if (*s < '0' || *s > '9') return -1;   /* "-1", or garbage */
    for (; *s >= '0' && *s <= '9'; s++) {
        node = node * 10 + (*s - '0');
        if (node >= NM_NODE_ID_LIMIT) return NODE_UNKNOWN;
    }
    while (*s == '\n' || *s == ' ') s++;
    return *s == '\0' ? node : -1;
}

/* The node of the device whose directory `dir` is (closed here): its own
 * numa_node or its nearest parent's, or -1 when the walk reaches `top`
 * (<root>/devices) or the file system's root first. */
static int node_walking_up(int dir, const struct stat *top)
{
    for (int depth = 0; depth < WALK_LIMIT; depth++) {
        int node = numa_node_in(dir);
        if (node >= 0 || node == NODE_UNKNOWN) {
            close(dir);
            return node >= 0 ? node : -1;
        }
        struct stat here, up;
        if (fstat(dir, &here) != 0 || (top && same_file(&here, top))) break;
        int parent = openat(dir, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
        close(dir);
        if (parent < 0) return -1;
        dir = parent;
        if (fstat(dir, &up) != 0 || same_file(&up, &here)) break;   /* "/" */
    }
    close(dir);
    return -1;
}

/* "3b:00.0" or "0000:3b:00.0" (hex digits in either case; a domain of 4
 * to 8 digits, as Intel VMD's "10000:01:00.0") as sysfs spells it,
 * "0000:3b:00.0", in `out`; false when `name` is not a PCI address. */
#define PCI_ADDRESS_MAX 17   /* "xxxxxxxx:xx:xx.o" and the NUL */

static bool pci_address(const char *name, char out[PCI_ADDRESS_MAX])
{
    static const char tail[] = "xx:xx.o";   /* bus:device.function */
    size_t len = strlen(name), tail_len = sizeof tail - 1;
    if (len < tail_len || len > PCI_ADDRESS_MAX - 1) return false;
    size_t domain = len - tail_len;          /* its digits and ':' */
    if (domain != 0 && (domain < 5 || name[domain - 1] != ':')) return false;
    size_t at = 0;
    if (domain == 0) {
        memcpy(out, "0000:", 5);
        at = 5;
    }
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (c >= 'A' && c <= 'F') c = (char)(c - 'A' + 'a');
        char want = i + 1 < domain ? 'x' : i + 1 == domain ? ':' : tail[i - domain];
        bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        bool ok = want == 'x' ? hex : want == 'o' ? c >= '0' && c <= '7' : c == want;
        if (!ok) return false;
        out[at++] = c;
    }
    out[at] = '\0';
    return true;
}

/* A directory `<root><dir><name>` opened with O_PATH, or -1. */
static int open_under_root(const char *root, const char *dir, const char *name)
{
    struct nm_path p = { .len = 0 };
    p.text[0] = '\0';
    nm_path_add(&p, root);
    nm_path_add(&p, dir);
    nm_path_add(&p, name);
    return p.too_long ? -1 : open_path(p.text);
}

/* The device directory a /dev path names (its major:minor under
 * <root>/dev/char or <root>/dev/block), or -1. */
static int open_device_file(const char *root, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    const char *dir = S_ISCHR(st.st_mode) ? "/dev/char/" : S_ISBLK(st.st_mode) ? "/dev/block/" : NULL;
    if (!dir) return -1;
    struct nm_path p = { .len = 0 };
    p.text[0] = '\0';
    nm_path_add(&p, root);
    nm_path_add(&p, dir);
    nm_path_add_uint(&p, major(st.st_rdev));
    nm_path_add(&p, ":");
    nm_path_add_uint(&p, minor(st.st_rdev));
    return p.too_long ? -1 : open_path(p.text);
}

/* The directory of the device `dev` names, or -1. */
static int open_device(const char *root, const char *dev)
{
    if (dev[0] == '/') return open_device_file(root, dev);
    if (strchr(dev, '/') || strcmp(dev, ".") == 0 || strcmp(dev, "..") == 0 ||
        strlen(dev) > NAME_LIMIT)
        return -1;
    char address[PCI_ADDRESS_MAX];
    if (pci_address(dev, address)) {
        int dir = open_under_root(root, "/bus/pci/devices/", address);
        if (dir >= 0) return dir;
    }
    for (size_t i = 0; i < sizeof device_classes / sizeof device_classes[0]; i++) {
        int dir = open_under_root(root, device_classes[i], dev);
        if (dir >= 0) return dir;
    }
    return -1;
}

nm_export int nm_node_of_device(const char *dev)
{
    if (!dev || !*dev) { errno = EINVAL; return -1; }
    nm_topology_ensure();
    int saved_errno = errno;
    const char *root = nm_opt.sysfs_root ? nm_opt.sysfs_root : "/sys";
    int dir = open_device(root, dev);
    if (dir < 0) { errno = ENODEV; return -1; }
    struct stat top;
    int devices = open_under_root(root, "/devices", "");
    bool have_top = devices >= 0 && fstat(devices, &top) == 0;
    if (devices >= 0) close(devices);
    int node = node_walking_up(dir, have_top ? &top : NULL);
    errno = node >= 0 ? saved_errno : ENXIO;
    return node;
}

int nm_device_home_node(const char *dev, int *node)
{
    *node = nm_node_of_device(dev);
    if (*node < 0) return -1;
    int index = nm_topology_index(&nm_topo, *node);
    if (index < 0) { errno = ENXIO; return -1; }
    return nm_topo.node_id[nm_topo.home[index]];
}
