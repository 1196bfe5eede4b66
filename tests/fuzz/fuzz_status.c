/* fuzz_status.c - libFuzzer target: bytes -> md_linebuf -> md_status_parse -> md_status_format.
 *
 * The first input byte picks the line cap (tiny caps exercise truncation) and the feed chunk
 * size; the rest is the stream.  Checked on every line:
 *   - the splitter never delivers more than cap bytes, and never a '\n';
 *   - a parsed event formats again (md_status_format) and that line parses to an equal event
 *     whose own formatting is identical: the writer and the reader agree on every value the
 *     reader accepts.
 * ASan/UBSan (MESHD_FUZZ=ON) catch the memory errors.
 */
#include "meshd/md_alloc.h"
#include "meshd/md_linebuf.h"
#include "meshd/md_status.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct ctx {
    size_t cap;
};

static int streq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static int event_equal(const struct md_status_event *a, const struct md_status_event *b)
{
    if (a->kind != b->kind)
        return 0;
    switch (a->kind) {
    case MD_ST_READY:
    case MD_ST_HEARTBEAT:
        return 1;
    case MD_ST_PROGRESS:
        return a->u.progress.done == b->u.progress.done &&
               a->u.progress.has_total == b->u.progress.has_total &&
               a->u.progress.total == b->u.progress.total &&
               streq(a->u.progress.unit, b->u.progress.unit);
    case MD_ST_METRIC:
        return streq(a->u.metric.name, b->u.metric.name) && a->u.metric.value == b->u.metric.value;
    case MD_ST_ALERT:
        return a->u.alert.severity == b->u.alert.severity &&
               streq(a->u.alert.key, b->u.alert.key) &&
               streq(a->u.alert.message, b->u.alert.message);
    case MD_ST_RESOLVE:
        return streq(a->u.resolve.key, b->u.resolve.key);
    case MD_ST_MESSAGE:
        return streq(a->u.message.type, b->u.message.type) &&
               streq(a->u.message.payload, b->u.message.payload) &&
               a->u.message.has_priority == b->u.message.has_priority &&
               a->u.message.priority == b->u.message.priority &&
               streq(a->u.message.to_node, b->u.message.to_node) &&
               streq(a->u.message.to_job, b->u.message.to_job);
    case MD_ST_RESULT:
        return a->u.result.ok == b->u.result.ok && streq(a->u.result.summary, b->u.result.summary);
    }
    return 0;
}

static void on_line(void *ud, const char *line, size_t len, int flags)
{
    struct ctx *c = ud;
    struct md_status_event ev, ev2;
    struct md_error err = {0};
    char *out = NULL, *out2 = NULL;
    size_t n = 0, n2 = 0;

    if (len > c->cap || memchr(line, '\n', len) != NULL)
        abort();
    if (md_status_parse(line, len, &ev, &err) < 0) {
        if (err.msg[0] == '\0')
            abort();
        return;
    }
    /* A line that parses may still not format: its payload could print longer than the cap
     * (cJSON expands nothing, but "1E2" becomes "100").  Anything else is a disagreement. */
    int rc = md_status_format(&ev, &out, &n);
    if (rc == MD_ETOOBIG)
        goto out;
    if (rc != 0)
        abort();
    if (md_status_parse(out, n, &ev2, &err) != 0)
        abort();
    if (!event_equal(&ev, &ev2))
        abort();
    if (md_status_format(&ev2, &out2, &n2) != 0 || n2 != n || memcmp(out, out2, n) != 0)
        abort();
    md_status_event_cleanup(&ev2);
out:
    md_free(out);
    md_free(out2);
    md_status_event_cleanup(&ev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t caps[] = {1, 2, 7, 64, 4096, MD_STATUS_LINE_MAX};
    struct md_linebuf lb;
    struct ctx c;
    size_t chunk;

    if (size == 0)
        return 0;
    c.cap = caps[(data[0] & 0x0f) % (sizeof caps / sizeof caps[0])];
    chunk = (size_t)1 << (data[0] >> 4); /* 1 .. 32768 bytes per feed */
    data++, size--;

    md_linebuf_init(&lb, c.cap);
    for (size_t i = 0; i < size; i += chunk)
        md_linebuf_feed(&lb, (const char *)data + i, size - i < chunk ? size - i : chunk, on_line,
                        &c);
    md_linebuf_flush(&lb, on_line, &c);
    md_linebuf_cleanup(&lb);
    return 0;
}
