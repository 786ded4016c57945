/* This Source Code Form is subject to the terms of the Mozilla Public
 * License, v. 2.0. If a copy of the MPL was not distributed with this
 * file, You can obtain one at https://mozilla.org/MPL/2.0/. */

/*
 * testos: time. The TSC is the clock (RDTSC works at CPL3); its rate is
 * measured once at boot against the 8254 PIT's channel 2 (gate and output
 * through port 0x61, as PCs have it): a 20 ms one-shot count, polled. The
 * PIT's channel 0 then ticks at 20 Hz on IRQ 0, which only bounds how long
 * the idle shell sleeps. `date` reads the MC146818 RTC.
 */

#include "testos.h"

#define PIT_HZ 1193182u
#define PIT_CH0 0x40
#define PIT_CH2 0x42
#define PIT_MODE 0x43
#define PORT_B 0x61          /* bit 0: channel 2 gate, bit 1: speaker, bit 5: channel 2 output */
#define CALIBRATE_MS 20u
#define TICK_HZ 20u
#define FALLBACK_HZ 2000000000ull

u64 tsc_hz;
static u64 boot_tsc;

void time_init(void)
{
    boot_tsc = rdtsc();
    u32 count = PIT_HZ * CALIBRATE_MS / 1000;
    outb(PORT_B, (u8)((inb(PORT_B) & ~0x02) | 0x01)); /* gate on, speaker off */
    outb(PIT_MODE, 0xB0);                             /* channel 2, lo/hi byte, mode 0 */
    outb(PIT_CH2, (u8)count);
    outb(PIT_CH2, (u8)(count >> 8));
    u64 t0 = rdtsc();
    u32 polls = 0;
    while (!(inb(PORT_B) & 0x20)) {
        /* Each poll is a port exit of several microseconds: this bounds
         * the wait to well under a second if there is no PIT. */
        if (++polls > 200000) break;
    }
    u64 t1 = rdtsc();
    tsc_hz = polls > 200000 ? FALLBACK_HZ : (t1 - t0) * 1000 / CALIBRATE_MS;
    if (tsc_hz == 0) tsc_hz = FALLBACK_HZ;

    u32 tick = PIT_HZ / TICK_HZ;
    outb(PIT_MODE, 0x34); /* channel 0, lo/hi byte, mode 2 (rate generator) */
    outb(PIT_CH0, (u8)tick);
    outb(PIT_CH0, (u8)(tick >> 8));
}

u64 ms_to_tsc(u64 ms) { return tsc_hz / 1000 * ms; }

void delay_us(u64 us)
{
    u64 end = rdtsc() + tsc_hz / 1000000 * us;
    while (rdtsc() < end) cpu_relax();
}

u64 deadline_ms(u64 ms) { return rdtsc() + ms_to_tsc(ms); }

bool expired(u64 deadline) { return rdtsc() >= deadline; }

/* uptime: seconds since the kernel started, from the TSC. */
int cmd_uptime(int argc, char **argv)
{
    (void)argc, (void)argv;
    u64 ms = (rdtsc() - boot_tsc) / (tsc_hz / 1000);
    kprintf("uptime=%lu.%03lu\n", ms / 1000, ms % 1000);
    return 0;
}

static u8 cmos(u8 reg)
{
    outb(0x70, reg);
    return inb(0x71);
}

static u32 bcd(u8 v, bool binary) { return binary ? v : (u32)(v >> 4) * 10 + (v & 15); }

/* date: the RTC's date and time, read twice until both reads agree (no update in between). */
int cmd_date(int argc, char **argv)
{
    (void)argc, (void)argv;
    u8 a[7], b[7];
    static const u8 regs[7] = {0x00, 0x02, 0x04, 0x07, 0x08, 0x09, 0x32};
    for (int tries = 0;; tries++) {
        u64 until = deadline_ms(20);
        while (cmos(0x0A) & 0x80) /* update in progress */
            if (expired(until)) return fail("RTC update never ends");
        for (int i = 0; i < 7; i++) a[i] = cmos(regs[i]);
        for (int i = 0; i < 7; i++) b[i] = cmos(regs[i]);
        if (!memcmp(a, b, sizeof a)) break;
        if (tries == 5) return fail("RTC keeps changing");
    }
    u8 stb = cmos(0x0B);
    bool bin = stb & 0x04, h24 = stb & 0x02;
    u32 hour = bcd(a[2] & 0x7F, bin);
    if (!h24) hour = (hour % 12) + ((a[2] & 0x80) ? 12 : 0);
    u32 century = bcd(a[6], bin);
    if (century < 19 || century > 99) century = 20;
    kprintf("%02u%02u-%02u-%02u %02u:%02u:%02u\n", century, bcd(a[5], bin), bcd(a[4], bin), bcd(a[3], bin), hour,
            bcd(a[1], bin), bcd(a[0], bin));
    return 0;
}
