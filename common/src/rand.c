/* rand.c - md_rand.h: xorshift64* (Vigna), seeded from getrandom(2). */
#include "meshd/md_rand.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static uint64_t state;

static void seed(void)
{
    uint64_t s = 0;

    if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec;
    }
    state = s ^ 0x9E3779B97F4A7C15ull;
    if (state == 0)
        state = 1;
}

uint64_t md_rand64(void)
{
    if (state == 0)
        seed();
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1Dull;
}

uint32_t md_rand32(void)
{
    return (uint32_t)(md_rand64() >> 32);
}

uint64_t md_rand_upto(uint64_t n)
{
    return md_rand64() % (n + 1);
}

void md_rand_bytes(void *buf, size_t len)
{
    unsigned char *p = buf;
    ssize_t got = getrandom(buf, len, GRND_NONBLOCK);
    size_t i = got > 0 ? (size_t)got : 0;

    while (i < len) {
        uint64_t r = md_rand64();
        size_t n = len - i < sizeof r ? len - i : sizeof r;
        memcpy(p + i, &r, n);
        i += n;
    }
}
