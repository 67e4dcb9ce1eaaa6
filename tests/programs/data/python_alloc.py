"""python_alloc.py — allocation-heavy work for tests/programs/python_alloc.sh.

Dicts, lists, sets, strings, many small objects, reference cycles, a big
bytearray grown and shrunk, json and pickle round trips, zlib, and threads
that hand objects to each other through queues (so objects die on a thread
other than their maker's).  Every section prints a digest of its result;
checks inside raise on a wrong result.  The output is the same on every run
and under every malloc.  Works on Python 3.6 and later.
"""
import gc
import hashlib
import json
import pickle
import queue
import random
import re
import sys
import threading
import zlib
from collections import Counter, OrderedDict, defaultdict, deque


def digest(obj):
    """A stable digest of a JSON-able or repr-able object."""
    try:
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    except TypeError:
        text = repr(obj)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def report(name, value):
    print("%-14s %s" % (name, value))
    sys.stdout.flush()


def dicts_and_lists(rng):
    d = {}
    for i in range(100000):
        key = "k%06d-%s" % (i, "x" * (i % 23))
        d[key] = (i, [i] * (i % 5), {"n": i % 97})
    # Delete a third, re-insert differently sized values, iterate in order.
    for i in range(0, 100000, 3):
        del d["k%06d-%s" % (i, "x" * (i % 23))]
    for i in range(0, 100000, 6):
        d["new%d" % i] = "v" * (i % 301)
    total = 0
    for k, v in d.items():
        total += len(k) + (v[0] if isinstance(v, tuple) else len(v))
    lists = [[rng.randrange(1000) for _ in range(rng.randrange(1, 60))] for _ in range(10000)]
    lists.sort(key=lambda l: (sum(l), len(l)))
    flat = [x for l in lists for x in l]
    sets = [set(l) for l in lists[:5000]]
    union = set().union(*sets)
    inter = sum(len(a & b) for a, b in zip(sets, sets[1:]))
    return [len(d), total, len(flat), sum(flat), len(union), inter, lists[0], lists[-1][:5]]


def strings(rng):
    words = ["".join(rng.choice("abcdefghij") for _ in range(rng.randrange(1, 15))) for _ in range(50000)]
    text = " ".join(words)
    parts = text.split(" ")
    assert parts == words
    counts = Counter(words)
    s = ""
    for i in range(20000):          # quadratic-looking concatenation: realloc in place
        s += words[i % len(words)][:3]
    found = re.findall(r"\b(a\w*j)\b", text)
    upper = text.upper().replace("A", "aa")
    joined = "\n".join("%d:%s" % (i, w) for i, w in enumerate(words[:10000]))
    unicode = "".join(chr(0x3b1 + (i % 25)) + chr(0x1f600 + (i % 50)) for i in range(5000))
    return [len(text), len(counts), counts.most_common(3), len(s), len(found),
            hashlib.sha256(upper.encode()).hexdigest()[:16], len(joined),
            hashlib.sha256(unicode.encode("utf-8")).hexdigest()[:16]]


class Node(object):
    def __init__(self, value, parent=None):
        self.value = value
        self.parent = parent
        self.children = []


class Slotted(object):
    __slots__ = ("a", "b", "c")

    def __init__(self, a, b, c):
        self.a, self.b, self.c = a, b, c


def objects():
    roots = []
    for r in range(200):
        root = Node(r)
        for i in range(300):
            child = Node(i, root)          # a cycle through parent and children
            root.children.append(child)
        roots.append(root)
    total = sum(c.value for r in roots for c in r.children)
    del roots, root, child
    collected = gc.collect()
    slotted = [Slotted(i, str(i), (i,)) for i in range(300000)]
    s = sum(o.a + len(o.b) + len(o.c) for o in slotted)
    del slotted
    od = OrderedDict((i, str(i)) for i in range(50000))
    od.move_to_end(0)
    dd = defaultdict(list)
    for i in range(100000):
        dd[i % 1000].append(i)
    dq = deque(maxlen=1000)
    for i in range(100000):
        dq.append([i])
    return [total, collected >= 200 * 301, s, next(iter(od)), len(dd), sum(map(len, dd.values())),
            dq[0][0], dq[-1][0]]


def big_buffers():
    size = 64 << 20
    buf = bytearray(size)
    for i in range(0, size, 4096):
        buf[i] = i // 4096 % 251
    h = hashlib.sha256(buf).hexdigest()[:16]
    buf.extend(b"\x01" * (32 << 20))     # grow a huge block
    buf[size + 12345] = 7
    h2 = hashlib.sha256(buf).hexdigest()[:16]
    del buf[1 << 20:]                    # shrink it
    h3 = hashlib.sha256(buf).hexdigest()[:16]
    mv = memoryview(buf)
    part = bytes(mv[4096:8192 + 1])
    del mv
    blobs = [bytes([i % 256]) * (i * 37 % 300000) for i in range(400)]
    packed = zlib.compress(b"".join(blobs), 6)
    assert zlib.decompress(packed) == b"".join(blobs)
    return [h, h2, h3, len(buf), part[0], part[-1], len(packed)]


def round_trips(rng):
    doc = {"items": [{"id": i, "name": "item %d" % i, "tags": ["t%d" % (i % 7), "u%d" % (i % 11)],
                      "price": i * 0.25, "nested": {"a": [i, i + 1, {"b": str(i)}]}}
                     for i in range(5000)],
           "meta": {"count": 5000, "text": "é中\u20ac" * 1000}}
    text = json.dumps(doc, sort_keys=True)
    for _ in range(3):
        back = json.loads(text)
        assert back == doc
        text = json.dumps(back, sort_keys=True)
    blob = pickle.dumps(doc, protocol=2)
    assert pickle.loads(blob) == doc
    rng.shuffle(doc["items"])
    return [len(text), hashlib.sha256(text.encode()).hexdigest()[:16], len(blob), doc["items"][0]["id"]]


def threads():
    """Producers make objects, consumers check and drop them; every thread also
    does private work.  Results are combined in a fixed order."""
    nprod, ncons, per = 4, 3, 6000
    work = queue.Queue(maxsize=2000)
    results = queue.Queue()
    private = [None] * nprod

    def produce(p):
        rng = random.Random(1000 + p)
        local = []
        for i in range(per):
            obj = {"p": p, "i": i, "data": [rng.randrange(1 << 30) for _ in range(i % 40)],
                   "s": ("%d-%d" % (p, i)) * (i % 9)}
            if i % 10 == 0:
                local.append(obj)        # kept: this object dies later, on another thread
            work.put(obj)
        private[p] = local

    def consume():
        total, count = 0, 0
        while True:
            obj = work.get()
            if obj is None:
                break
            assert obj["s"] == ("%d-%d" % (obj["p"], obj["i"])) * (obj["i"] % 9)
            total += sum(obj["data"]) + len(obj["s"])
            count += 1
        results.put((total, count))

    consumers = [threading.Thread(target=consume) for _ in range(ncons)]
    producers = [threading.Thread(target=produce, args=(p,)) for p in range(nprod)]
    for t in consumers + producers:
        t.start()
    for t in producers:
        t.join()
    for _ in consumers:
        work.put(None)
    for t in consumers:
        t.join()
    total = count = 0
    while not results.empty():
        t, c = results.get()
        total += t
        count += c
    assert count == nprod * per
    kept = sum(len(l) for l in private)
    checksum = sum(sum(o["data"]) for l in private for o in l)

    # Threads each build and return a structure that the main thread frees.
    built = [None] * 4

    def build(k):
        built[k] = {i: [str(i * k)] * (i % 13) for i in range(40000)}

    workers = [threading.Thread(target=build, args=(k,)) for k in range(4)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    sizes = [sum(len(v) for v in b.values()) for b in built]
    del built, private
    return [total, count, kept, checksum, sizes]


def main():
    rng = random.Random(12345)
    report("python", "%d.%d" % sys.version_info[:2])
    sections = [("dicts_lists", lambda: dicts_and_lists(rng)), ("strings", lambda: strings(rng)),
                ("objects", objects), ("big_buffers", big_buffers),
                ("round_trips", lambda: round_trips(rng)), ("threads", threads)]
    everything = []
    for name, run in sections:
        result = run()
        everything.append(result)
        report(name, digest(result))
    report("all", digest(everything))


if __name__ == "__main__":
    main()
