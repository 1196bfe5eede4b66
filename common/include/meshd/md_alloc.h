/* md_alloc.h - allocation that never returns NULL.
 *
 * meshd cannot do anything useful when the heap is exhausted, so these abort with a message
 * instead of plumbing ENOMEM through every caller (redis zmalloc, h2o h2o_mem_alloc).
 */
#ifndef MESHD_MD_ALLOC_H
#define MESHD_MD_ALLOC_H

#include <stddef.h>

void *md_xmalloc(size_t n);
void *md_xcalloc(size_t nmemb, size_t size);
void *md_xrealloc(void *p, size_t n);
char *md_xstrdup(const char *s);
char *md_xstrndup(const char *s, size_t n);
/* printf into a fresh string; caller frees with md_free. */
char *md_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void md_free(void *p);

#define MD_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define MD_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
