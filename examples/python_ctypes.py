#!/usr/bin/env python3
"""python_ctypes.py -- numamalloc's API from Python with ctypes (no numpy).

A 16 MiB buffer bound to each node with memory (nm_malloc_onnode), seen
from Python as a ctypes array over the block, filled and read back; the
kernel is asked where its pages are (nm_where).  Then a heap with a policy
parsed from text (nm_policy_parse, nm_heap_new), and the statistics as
JSON (nm_stats_json).  Exits 1 when a page is not where it should be.

    python3 examples/python_ctypes.py          # after make
    NUMAMALLOC_LIBRARY=/usr/local/lib/libnumamalloc.so python3 python_ctypes.py

The library is found through NUMAMALLOC_LIBRARY, then in build/ next to
this script's directory, then by ctypes.util.find_library("numamalloc").
Loaded with ctypes, numamalloc serves the nm_ calls; Python's own objects
keep their allocator (for those too, start Python under
LD_PRELOAD=libnumamalloc.so).
"""
import ctypes
import ctypes.util
import json
import os
import sys

NM_NODE_ID_LIMIT = 1024
NM_NODESET_WORDS = NM_NODE_ID_LIMIT // 64
PAGE = 4096


class NodeSet(ctypes.Structure):
    _fields_ = [("bits", ctypes.c_uint64 * NM_NODESET_WORDS)]


class Policy(ctypes.Structure):   # nm_policy
    _fields_ = [("mode", ctypes.c_int), ("nodes", NodeSet)]


def load():
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [os.environ.get("NUMAMALLOC_LIBRARY"),
                  os.path.join(here, "..", "build", "libnumamalloc.so"),
                  ctypes.util.find_library("numamalloc")]
    for path in candidates:
        if path and (os.path.exists(path) or not os.path.dirname(path)):
            lib = ctypes.CDLL(path, use_errno=True)   # ctypes.get_errno() after a call
            break
    else:
        sys.exit("libnumamalloc.so not found: set NUMAMALLOC_LIBRARY or run make")
    c_size, c_void, c_int = ctypes.c_size_t, ctypes.c_void_p, ctypes.c_int
    signatures = {
        "nm_node_count": (c_int, []),
        "nm_node_ids": (c_int, [ctypes.POINTER(c_int), c_int]),
        "nm_node_memory": (c_int, [c_int, ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_uint64)]),
        "nm_malloc_onnode": (c_void, [c_size, c_int]),
        "nm_usable_size": (c_size, [c_void]),
        "nm_free": (None, [c_void]),
        "nm_where": (ctypes.c_long, [c_void, c_size, ctypes.POINTER(ctypes.c_uint64), c_int]),
        "nm_policy_parse": (c_int, [ctypes.c_char_p, ctypes.POINTER(Policy), ctypes.c_char_p, c_size]),
        "nm_policy_format": (c_int, [ctypes.POINTER(Policy), ctypes.c_char_p, c_size]),
        "nm_heap_new": (c_void, [ctypes.POINTER(Policy)]),
        "nm_heap_malloc": (c_void, [c_void, c_size]),
        "nm_heap_destroy": (None, [c_void]),
        "nm_stats_json": (c_size, [ctypes.c_char_p, c_size]),
    }
    for name, (restype, argtypes) in signatures.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


def where(lib, address, size):
    """(resident pages, {node: pages}) of [address, address + size)."""
    counts = (ctypes.c_uint64 * NM_NODE_ID_LIMIT)()
    resident = lib.nm_where(address, size, counts, NM_NODE_ID_LIMIT)
    if resident < 0:
        raise OSError(ctypes.get_errno(), "nm_where failed")
    return resident, {n: c for n, c in enumerate(counts) if c}


def fill_and_check(lib, label, address, size, node):
    """Fill the block through a ctypes array, read it back, locate its pages."""
    buf = (ctypes.c_ubyte * size).from_address(address)   # no copy: the block itself
    pattern = bytes(range(256)) * (size // 256)
    buf[:] = pattern                                     # first touch: pages placed now
    data_ok = bytes(buf[size - 256:]) == pattern[:256] and ctypes.string_at(address, size) == pattern
    resident, per_node = where(lib, address, size)
    pages = size // PAGE
    ok = resident == pages and per_node.get(node, 0) == pages and data_ok
    print(f"{label}: {size >> 20} MiB at {address:#x}, {per_node.get(node, 0)}/{resident} pages on node {node}, "
          f"usable {lib.nm_usable_size(address)}: {'ok' if ok else 'WRONG'}")
    return ok


def main():
    lib = load()
    ids = (ctypes.c_int * NM_NODE_ID_LIMIT)()
    count = min(lib.nm_node_ids(ids, NM_NODE_ID_LIMIT), NM_NODE_ID_LIMIT)
    print(f"numamalloc: {lib.nm_node_count()} node(s): {' '.join(str(ids[i]) for i in range(count))}")
    size = 16 << 20
    good = True
    with_memory = []
    for node in ids[:count]:
        total, free = ctypes.c_uint64(), ctypes.c_uint64()
        if lib.nm_node_memory(node, ctypes.byref(total), ctypes.byref(free)) != 0 or total.value == 0:
            continue   # no memory on this node
        with_memory.append(node)
        address = lib.nm_malloc_onnode(size, node)
        if not address:
            sys.exit(f"nm_malloc_onnode({size}, {node}) failed")
        good &= fill_and_check(lib, f"node {node}", address, size, node)
        lib.nm_free(address)

    # A heap whose blocks follow a policy given as text: bound to the first
    # node with memory (a node without, such as a CPU-only one, cannot be bound to).
    if not with_memory:
        sys.exit("no node with memory")
    node = with_memory[0]
    policy, err = Policy(), ctypes.create_string_buffer(256)
    if lib.nm_policy_parse(f"bind:{node}".encode(), ctypes.byref(policy), err, len(err)) != 0:
        sys.exit(f"nm_policy_parse: {err.value.decode()}")
    text = ctypes.create_string_buffer(64)
    lib.nm_policy_format(ctypes.byref(policy), text, len(text))
    heap = lib.nm_heap_new(ctypes.byref(policy))
    if not heap:
        sys.exit("nm_heap_new failed")
    address = lib.nm_heap_malloc(heap, size)
    if not address:
        sys.exit(f"nm_heap_malloc failed: {os.strerror(ctypes.get_errno())}")
    good &= fill_and_check(lib, f"heap {text.value.decode()}", address, size, node)
    lib.nm_heap_destroy(heap)    # the block goes with it

    # A policy that cannot be: the library says why.
    if lib.nm_policy_parse(b"bind:999", ctypes.byref(policy), err, len(err)) == 0:
        sys.exit("bind:999 accepted")
    print(f"bind:999 refused: {err.value.decode()}")

    # Statistics as JSON.
    need = lib.nm_stats_json(None, 0)
    buf = ctypes.create_string_buffer(need + 4096)
    lib.nm_stats_json(buf, len(buf))
    stats = json.loads(buf.value)
    nodes = ", ".join(f"node {n['node']} mapped {n['mapped'] >> 20} MiB" for n in stats["nodes"])
    print(f"stats: numamalloc {stats['numamalloc']}, {nodes}, {stats['events']['large_allocs']} large allocs")

    print("python_ctypes: every buffer on its node" if good else "python_ctypes: some pages are elsewhere")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
