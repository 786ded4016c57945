/* This Source Code Form is subject to the terms of the Mozilla Public
 * License, v. 2.0. If a copy of the MPL was not distributed with this
 * file, You can obtain one at https://mozilla.org/MPL/2.0/. */

/*
 * testos: QEMU's fw_cfg (legacy I/O: selector 0x510, data 0x511) and AP
 * start-up.
 *
 * `nproc` brings the APs up the first time it runs: the trampoline is
 * copied to AP_TRAMPOLINE, then INIT, 10 ms, STARTUP, 200 us, STARTUP
 * (Intel SDM vol. 3 §8.4.4), all to "all excluding self" through the local
 * APIC's ICR, which is memory-mapped and so reachable from CPL3. The number
 * of CPUs expected comes from the ACPI MADT or, without ACPI (ROM boot),
 * from fw_cfg's FW_CFG_NB_CPUS; the wait ends when that many have checked in
 * (entry.S counts them in ap_online) or after a second.
 */

#include "testos.h"

#define FW_CFG_SEL 0x510
#define FW_CFG_DATA 0x511
#define FW_CFG_SIGNATURE 0x0000
#define FW_CFG_NB_CPUS 0x0005

#define LAPIC 0xFEE00000ull
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define ICR_BUSY 0x1000
#define ICR_INIT_ALL_BUT_SELF 0x000C4500u
#define ICR_SIPI_ALL_BUT_SELF 0x000C4600u

bool fwcfg_present(void)
{
    outw(FW_CFG_SEL, FW_CFG_SIGNATURE);
    char s[4];
    for (int i = 0; i < 4; i++) s[i] = (char)inb(FW_CFG_DATA);
    return s[0] == 'Q' && s[1] == 'E' && s[2] == 'M' && s[3] == 'U';
}

u64 fwcfg_read_u64(u16 selector, int bytes)
{
    outw(FW_CFG_SEL, selector);
    u64 v = 0;
    for (int i = 0; i < bytes; i++) v |= (u64)inb(FW_CFG_DATA) << (8 * i);
    return v;
}

static bool started;
static u32 expected;

static void send_ipi(u32 icr)
{
    mmio_write32(LAPIC + LAPIC_ICR_HI, 0);
    mmio_write32(LAPIC + LAPIC_ICR_LO, icr);
    u64 until = deadline_ms(10);
    while ((mmio_read32(LAPIC + LAPIC_ICR_LO) & ICR_BUSY) && !expired(until)) cpu_relax();
}

static void start_aps(void)
{
    const struct acpi_info *a = acpi();
    if (a->cpus) expected = a->cpus;
    else if (fwcfg_present()) expected = (u32)fwcfg_read_u64(FW_CFG_NB_CPUS, 2);
    if (expected > MAX_CPUS) expected = MAX_CPUS;
    if (expected == 1) return;
    memcpy(phys(AP_TRAMPOLINE), ap_trampoline, (size_t)(ap_trampoline_end - ap_trampoline));
    send_ipi(ICR_INIT_ALL_BUT_SELF);
    delay_us(10000);
    send_ipi(ICR_SIPI_ALL_BUT_SELF | (AP_TRAMPOLINE >> 12));
    delay_us(200);
    send_ipi(ICR_SIPI_ALL_BUT_SELF | (AP_TRAMPOLINE >> 12));
    /* With an unknown count, give every AP the whole second. */
    u64 until = deadline_ms(1000);
    while (!expired(until) && (expected == 0 || ap_online + 1 < expected)) cpu_relax();
}

/* nproc: CPUs online (this one and the APs that checked in). */
int cmd_nproc(int argc, char **argv)
{
    (void)argc, (void)argv;
    if (!started) {
        started = true;
        start_aps();
    }
    kprintf("%u\n", ap_online + 1);
    return 0;
}
