// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at https://mozilla.org/MPL/2.0/.

// The C side of the port-I/O exit benchmark: the smallest VMM that can run
// guests/out/pio-bench.rom, talking to KVM directly. It sets the VM up the
// way propolis-ts's Machine does (irqchip, PIT, TSS and identity-map pages,
// RAM at 0, the ROM read-only and right-aligned under 4 GiB, CPUID from
// KVM_GET_SUPPORTED_CPUID) so that the only difference left between the two
// is the userspace exit loop. bench/run.ts compiles and runs it.
//
//   pio-baseline <ROM> <N>
//
// Answers the guest's 32-bit IN on port 0x10 with N, counts its OUTs to port
// 0x10 and takes CLOCK_MONOTONIC at the first and the last one, and stops at
// the write to port 0x501. Prints one JSON line on stdout:
//   {"n":N,"exits":E,"ns":T,"nsPerExit":T/(N-1)}
// where T is the time from the first to the last OUT (N-1 round trips).
// Errors go to stderr with exit status 1.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RAM_SIZE (16u << 20)
#define ROM_BASE 0xffe00000ull
#define ROM_SIZE (2u << 20)
#define TSS_ADDR 0xfeffd000ul
#define IDENTITY_MAP_ADDR 0xfeffc000ull
#define BENCH_PORT 0x10
#define EXIT_PORT 0x501
#define CPUID_MAX 256

static void die(const char *what) {
    fprintf(stderr, "pio-baseline: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void fail(const char *msg) {
    fprintf(stderr, "pio-baseline: %s\n", msg);
    exit(1);
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *map_anon(size_t size) {
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) die("mmap");
    return p;
}

static void set_region(int vm, uint32_t slot, uint32_t flags, uint64_t gpa, uint64_t size, void *host) {
    struct kvm_userspace_memory_region r = {
        .slot = slot,
        .flags = flags,
        .guest_phys_addr = gpa,
        .memory_size = size,
        .userspace_addr = (uint64_t)(uintptr_t)host,
    };
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r) < 0) die("KVM_SET_USER_MEMORY_REGION");
}

int main(int argc, char **argv) {
    if (argc != 3) fail("usage: pio-baseline <ROM> <N>");
    char *end;
    unsigned long n = strtoul(argv[2], &end, 10);
    if (*end != '\0' || n < 2 || n > 0xffffffffu) fail("N must be an integer from 2 to 2^32-1");

    // The ROM image, right-aligned in a 2 MiB read-only window ending at 4 GiB.
    int romfd = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (romfd < 0) die(argv[1]);
    struct stat st;
    if (fstat(romfd, &st) < 0) die("fstat");
    if (st.st_size <= 0 || st.st_size > ROM_SIZE || st.st_size % 4096 != 0) fail("ROM must be 4 KiB..2 MiB, page-sized");
    uint8_t *rom = map_anon(ROM_SIZE);
    size_t off = ROM_SIZE - (size_t)st.st_size;
    for (size_t got = 0; got < (size_t)st.st_size;) {
        ssize_t r = read(romfd, rom + off + got, (size_t)st.st_size - got);
        if (r <= 0) die("read ROM");
        got += (size_t)r;
    }
    close(romfd);

    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) die("/dev/kvm");
    if (ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) fail("unexpected KVM API version");
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0) die("KVM_CREATE_VM");

    if (ioctl(vm, KVM_SET_TSS_ADDR, TSS_ADDR) < 0) die("KVM_SET_TSS_ADDR");
    uint64_t idmap = IDENTITY_MAP_ADDR;
    if (ioctl(vm, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0) die("KVM_SET_IDENTITY_MAP_ADDR");
    if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0) die("KVM_CREATE_IRQCHIP");
    struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
    if (ioctl(vm, KVM_CREATE_PIT2, &pit) < 0) die("KVM_CREATE_PIT2");

    set_region(vm, 0, 0, 0, RAM_SIZE, map_anon(RAM_SIZE));
    set_region(vm, 2, KVM_MEM_READONLY, ROM_BASE, ROM_SIZE, rom);

    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0) die("KVM_CREATE_VCPU");
    size_t cpuid_size = sizeof(struct kvm_cpuid2) + CPUID_MAX * sizeof(struct kvm_cpuid_entry2);
    struct kvm_cpuid2 *cpuid = calloc(1, cpuid_size);
    if (!cpuid) die("calloc");
    cpuid->nent = CPUID_MAX;
    if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) die("KVM_GET_SUPPORTED_CPUID");
    // As for propolis-ts's vCPU 0 of a 1-vCPU VM: APIC ID 0, one logical CPU.
    for (uint32_t i = 0; i < cpuid->nent; i++) {
        struct kvm_cpuid_entry2 *e = &cpuid->entries[i];
        if (e->function == 1) e->ebx = (e->ebx & 0xffff) | (1u << 16);
        else if (e->function == 0xb || e->function == 0x1f) e->edx = 0;
    }
    if (ioctl(vcpu, KVM_SET_CPUID2, cpuid) < 0) die("KVM_SET_CPUID2");

    int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size <= 0) die("KVM_GET_VCPU_MMAP_SIZE");
    struct kvm_run *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED) die("mmap kvm_run");

    uint64_t outs = 0, exits = 0;
    int64_t first = 0, last = 0;
    for (;;) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            die("KVM_RUN");
        }
        exits++;
        if (run->exit_reason != KVM_EXIT_IO) {
            fprintf(stderr, "pio-baseline: unexpected exit reason %u after %llu exits\n", run->exit_reason,
                    (unsigned long long)exits);
            return 1;
        }
        uint8_t *data = (uint8_t *)run + run->io.data_offset;
        if (run->io.port == BENCH_PORT && run->io.direction == KVM_EXIT_IO_OUT) {
            int64_t t = now_ns();
            if (outs == 0) first = t;
            last = t;
            outs++;
        } else if (run->io.port == BENCH_PORT && run->io.direction == KVM_EXIT_IO_IN) {
            uint32_t v = (uint32_t)n;
            memcpy(data, &v, run->io.size < 4 ? run->io.size : 4);
        } else if (run->io.port == EXIT_PORT && run->io.direction == KVM_EXIT_IO_OUT) {
            break;
        } else if (run->io.direction == KVM_EXIT_IO_IN) {
            memset(data, 0xff, (size_t)run->io.size * run->io.count);
        }
    }
    if (outs != n) {
        fprintf(stderr, "pio-baseline: guest did %llu OUTs, expected %lu\n", (unsigned long long)outs, n);
        return 1;
    }
    int64_t ns = last - first;
    printf("{\"n\":%lu,\"exits\":%llu,\"ns\":%lld,\"nsPerExit\":%.1f}\n", n, (unsigned long long)exits, (long long)ns,
           (double)ns / (double)(n - 1));
    return 0;
}
