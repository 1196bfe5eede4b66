/* md_rand.h - the one random number generator of meshd's processes.
 *
 * For spreading things out (cron jitter, restart backoff, reconnect backoff), not for secrets:
 * xorshift64* seeded once from getrandom(2) (time and pid if that fails), single-threaded like
 * the loop that uses it.
 */
#ifndef MESHD_MD_RAND_H
#define MESHD_MD_RAND_H

#include <stddef.h>
#include <stdint.h>

uint64_t md_rand64(void);
uint32_t md_rand32(void);
/* A uniform value in [0, n] (n < 2^64 - 1), without modulo bias worth the name for jitter. */
uint64_t md_rand_upto(uint64_t n);
/* Fills buf with bytes from getrandom(2), or from md_rand64 when the kernel has none yet (early
 * boot): for identities that must differ between processes, not for secrets. */
void md_rand_bytes(void *buf, size_t len);

#endif
