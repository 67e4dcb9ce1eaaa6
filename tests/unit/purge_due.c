/* purge_due.c — the one retention rule's clock arithmetic (arena.h), case
 * by case, as the purge meets it:
 *   - memory free for the delay is due, a millisecond less is not;
 *   - a time after the pass's clock (memory freed, a heap parked or a page
 *     retired by another thread after the pass read the clock) has not
 *     waited at all: it is not due (it used to wrap around to a very long
 *     wait and go back at once), unless forced;
 *   - the 32-bit times (a page's retired_ms, a foreign list's seen time)
 *     count the same, across the 32-bit wrap;
 *   - what is marked due now (nm_purge_due_now: pages and segments other
 *     threads emptied for a heap that is not allocating) is due at once,
 *     also when the clock is younger than the delay;
 *   - a heap is idle once its thread has been out of its allocation slow
 *     path for a fiftieth of the delay (at least 10 ms), never when its
 *     thread was there after the pass read the clock. */
#include <stdint.h>

#include "../testutil.h"
#include "segment.h"   /* arena.h: the rule */

static void check_clock(uint64_t now)
{
    const uint64_t delay = 1000;
    CHECK(nm_purge_due(now - delay, now, delay, false), "now %llu: free for the delay, not due",
          (unsigned long long)now);
    CHECK(!nm_purge_due(now - delay + 1, now, delay, false), "now %llu: 1 ms short, due",
          (unsigned long long)now);
    CHECK(!nm_purge_due(now + 5, now, delay, false),
          "now %llu: freed 5 ms after the pass read the clock, due at once", (unsigned long long)now);
    CHECK(!nm_purge_due(now + 59000, now, delay, false), "now %llu: 59 s ahead, due",
          (unsigned long long)now);
    CHECK(nm_purge_due(now + 5, now, delay, true), "now %llu: forced, not due",
          (unsigned long long)now);

    uint32_t retired = (uint32_t)(now - 20);
    CHECK(nm_ms_since32(retired, now) == 20, "now %llu: 32-bit time 20 ms ago reads %llu",
          (unsigned long long)now, (unsigned long long)nm_ms_since32(retired, now));
    CHECK(nm_ms_since32((uint32_t)(now + 3), now) == 0,
          "now %llu: 32-bit time 3 ms ahead reads %llu", (unsigned long long)now,
          (unsigned long long)nm_ms_since32((uint32_t)(now + 3), now));

    nm_opt.purge_delay_ms = delay;
    CHECK(nm_purge_due(nm_purge_due_now(now), now, delay, false),
          "now %llu: marked due now, not due", (unsigned long long)now);
    CHECK(nm_purge_due32((uint32_t)nm_purge_due_now(now), now, delay, false),
          "now %llu: marked due now in 32 bits, not due", (unsigned long long)now);
    CHECK(!nm_purge_due32((uint32_t)(now + 3), now, delay, false),
          "now %llu: 32-bit time 3 ms ahead, due", (unsigned long long)now);
    CHECK(!nm_purge_due32((uint32_t)(now - delay + 1), now, delay, false),
          "now %llu: 32-bit time 1 ms short, due", (unsigned long long)now);

    /* Idle after a fiftieth of the delay: 20 ms. */
    CHECK(nm_purge_idle_ms() == 20, "idle after %llu ms", (unsigned long long)nm_purge_idle_ms());
    if (now >= 20) {
        CHECK(nm_purge_owner_idle(now - 20, now), "now %llu: out for 20 ms, not idle",
              (unsigned long long)now);
        CHECK(!nm_purge_owner_idle(now - 19, now), "now %llu: out for 19 ms, idle",
              (unsigned long long)now);
    }
    CHECK(!nm_purge_owner_idle(now + 3, now),
          "now %llu: in its slow path after the pass read the clock, idle", (unsigned long long)now);
}

int main(void)
{
    const uint64_t clocks[] = { 300, 5000, UINT64_C(1) << 32, (UINT64_C(1) << 32) + 7,
                                UINT64_C(1) << 40 };
    for (size_t i = 0; i < sizeof clocks / sizeof clocks[0]; i++) check_clock(clocks[i]);

    /* Short delays: at least 10 ms of idleness. */
    nm_opt.purge_delay_ms = 100;
    CHECK(nm_purge_idle_ms() == 10, "delay 100 ms: idle after %llu ms",
          (unsigned long long)nm_purge_idle_ms());
    printf("purge rule: due after the delay, not before; times ahead of the clock not due;\n"
           "  32-bit times across the wrap; marked due now is due; idle after delay/50\n");
    return nm_test_done();
}
