/* This Source Code Form is subject to the terms of the Mozilla Public
 * License, v. 2.0. If a copy of the MPL was not distributed with this
 * file, You can obtain one at https://mozilla.org/MPL/2.0/. */

/*
 * testos: the little C library (strings, number parsing, printf) and the
 * console on COM1.
 *
 * The console is a 16550 at 0x3F8, 115200 8N1, FIFOs on. Output is
 * gathered in a buffer and sent by the console_write() system call, which
 * writes 16 bytes (the transmit FIFO) each time LSR.THRE is set, from CPL0
 * where port I/O is cheaper (entry.S). console_getc() and the shell flush
 * what is left.
 * Input: polled from LSR.DR; when nothing is there the CPU waits in idle()
 * (HLT at CPL0) until the receive-data IRQ (IER.ERBFI, IRQ 4) or the PIT
 * tick wakes it.
 */

#include "testos.h"

#define UART_RBR 0
#define UART_THR 0
#define UART_DLL 0
#define UART_IER 1
#define UART_DLM 1
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define LSR_DR 0x01
#define IER_ERBFI 0x01

void *memset(void *d, int c, size_t n)
{
    void *r = d;
    __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
    return r;
}

void *memcpy(void *d, const void *s, size_t n)
{
    void *r = d;
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
    return r;
}

void *memmove(void *d, const void *s, size_t n)
{
    u8 *dp = d;
    const u8 *sp = s;
    if (dp <= sp || dp >= sp + n) return memcpy(d, s, n);
    while (n-- > 0) dp[n] = sp[n];
    return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const u8 *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

int strcmp(const char *a, const char *b)
{
    while (*a && *a == *b) a++, b++;
    return (u8)*a - (u8)*b;
}

int strncmp(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i]) return (u8)a[i] - (u8)b[i];
        if (!a[i]) return 0;
    }
    return 0;
}

bool parse_u64(const char *s, int base, u64 *out)
{
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s += 2, base = 16;
    if (!*s) return false;
    u64 v = 0;
    for (; *s; s++) {
        int d;
        if (*s >= '0' && *s <= '9') d = *s - '0';
        else if (*s >= 'a' && *s <= 'f') d = *s - 'a' + 10;
        else if (*s >= 'A' && *s <= 'F') d = *s - 'A' + 10;
        else return false;
        if (d >= base) return false;
        if (v > (~0ull - (u64)d) / (u64)base) return false; /* overflow */
        v = v * (u64)base + (u64)d;
    }
    *out = v;
    return true;
}

u64 fnv1a(u64 h, const void *p, size_t n)
{
    const u8 *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* ---- console ---- */

/* Output waits here until it is full or console_flush() is called. */
static u8 tx_buf[512];
static u32 tx_len;

void console_init(void)
{
    u16 p = COM1_BASE;
    outb(p + UART_IER, 0);
    outb(p + UART_LCR, 0x80); /* DLAB */
    outb(p + UART_DLL, 1);    /* 115200 */
    outb(p + UART_DLM, 0);
    outb(p + UART_LCR, 0x03);      /* 8N1 */
    outb(p + UART_FCR, 0x07);      /* FIFOs on and cleared */
    outb(p + UART_MCR, 0x0B);      /* DTR, RTS, OUT2 (gates the IRQ on PCs) */
    outb(p + UART_IER, IER_ERBFI); /* receive data available: IRQ 4 */
    tx_len = 0;
}

void console_flush(void)
{
    if (tx_len == 0) return;
    console_write(tx_buf, tx_len);
    tx_len = 0;
}

void console_putc(char c)
{
    if (c == '\n') console_putc('\r');
    tx_buf[tx_len++] = (u8)c;
    if (tx_len == sizeof tx_buf) console_flush();
}

void console_puts(const char *s)
{
    while (*s) console_putc(*s++);
}

int console_getc(void)
{
    for (;;) {
        if (inb(COM1_BASE + UART_LSR) & LSR_DR) return inb(COM1_BASE + UART_RBR);
        /* Nothing pending: the echo and any output go out before the wait.
         * Input arriving meanwhile raises IRQ 4, which ends idle() at once. */
        console_flush();
        idle();
    }
}

/* ---- printf: %[0][width][l|ll|z](d|u|x|c|s|p) and %% ---- */

static void put_num(u64 v, unsigned base, int width, bool zero, bool neg)
{
    char buf[24];
    int n = 0;
    do {
        unsigned d = (unsigned)(v % base);
        buf[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        v /= base;
    } while (v);
    if (neg) {
        if (zero) console_putc('-');
        width--;
    }
    for (int i = n; i < width; i++) console_putc(zero ? '0' : ' ');
    if (neg && !zero) console_putc('-');
    while (n > 0) console_putc(buf[--n]);
}

void kvprintf(const char *fmt, va_list ap)
{
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            console_putc(*fmt);
            continue;
        }
        fmt++;
        bool zero = false;
        int width = 0, longs = 0;
        if (*fmt == '0') zero = true, fmt++;
        while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l' || *fmt == 'z') longs++, fmt++;
        switch (*fmt) {
        case 'd': {
            int64_t v = longs ? va_arg(ap, int64_t) : va_arg(ap, int);
            put_num(v < 0 ? (u64)-v : (u64)v, 10, width, zero, v < 0);
            break;
        }
        case 'u':
        case 'x': {
            u64 v = longs ? va_arg(ap, u64) : va_arg(ap, unsigned);
            put_num(v, *fmt == 'x' ? 16 : 10, width, zero, false);
            break;
        }
        case 'p':
            put_num((u64)va_arg(ap, void *), 16, width, zero, false);
            break;
        case 'c':
            console_putc((char)va_arg(ap, int));
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            int n = (int)strlen(s);
            for (int i = n; i < width; i++) console_putc(' ');
            console_puts(s);
            break;
        }
        case '%':
            console_putc('%');
            break;
        default:
            return;
        }
    }
}

void kprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kvprintf(fmt, ap);
    va_end(ap);
}

int fail(const char *fmt, ...)
{
    va_list ap;
    console_puts("error: ");
    va_start(ap, fmt);
    kvprintf(fmt, ap);
    va_end(ap);
    console_putc('\n');
    return 1;
}
