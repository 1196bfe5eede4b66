/* journal.c - the local event journal (docs/journal.md has the design and the file format). */
#include "meshd/md_journal.h"

#include "meshd/md_alloc.h"
#include "meshd/md_fs.h"
#include "meshd/md_log.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_MAX_BYTES ((uint64_t)64 << 20)
#define DEFAULT_SEGMENT_BYTES ((uint64_t)4 << 20)
/* Ids handed out ahead of the state file: one fsync of the state file per this many ids, and
 * the jump of ids after a restart is at most this. */
#define ID_RESERVE 65536
/* With nothing pending, the ack watermark is saved once it is this many ids ahead of the
 * saved one (and at close): at most this many acked events are replayed after a crash. */
#define ACK_LAZY_IDS 4096
/* "<crc32 8 hex> <id <= 20 digits> <prio> <len <= 5 digits> " fits in this. */
#define HDR_MAX 48
#define WBUF_SIZE (256 * 1024)
#define STATE_NAME "state"
#define STATE_TMP "state.tmp"
#define STATE_MAGIC "meshd-journal-v1"
#define SEG_SUFFIX ".seg"
#define SEG_NAME_LEN (16 + 4) /* %016x + ".seg" */

/* One pending event.  It sits on two doubly linked lists, both in id order: every pending
 * event (head/tail), and the events of its priority (prio[p]), whose head is therefore the
 * oldest event of that priority, the next one a drop round takes. */
struct jent {
    struct jent *prev, *next;
    struct jent *pprev, *pnext;
    struct seg *seg; /* the segment file holding its record */
    uint64_t id;
    uint32_t len; /* bytes of json */
    uint32_t rec; /* bytes of its record on disk: the unit of the bound */
    uint8_t prio;
    char json[]; /* len bytes and a NUL */
};

struct plist {
    struct jent *head, *tail;
};

/* One segment file, "<base as %016x>.seg".  Invariant: segments are ordered by base and hold
 * strictly increasing ids across files, so the pending events of one segment are contiguous in
 * the global list and first is the first of them (NULL when nlive is 0).  The last segment is
 * the active one: j->fd is open on it for appending. */
struct seg {
    uint64_t base; /* the id about to be assigned when it was created */
    uint64_t size; /* bytes in the file */
    size_t nlive;  /* pending events it holds */
    struct jent *first;
    int compact; /* lost a pending event to a drop round: rewrite it */
};

struct md_journal {
    struct md_journal_opts opts;
    int dirfd; /* every file is opened relative to it; fsynced after renames and unlinks */
    int fd;    /* the active segment (segs[nsegs - 1]), -1 while there is no segment */
    int dirty; /* written since the last fdatasync */
    struct seg **segs;
    size_t nsegs, asegs;
    struct jent *head, *tail;
    struct plist prio[MD_JPRIO_COUNT];
    uint64_t pbytes[MD_JPRIO_COUNT];
    size_t count;
    uint64_t bytes;
    uint64_t next_id;
    uint64_t reserved;    /* ids up to this are covered by the state file on disk */
    uint64_t acked;       /* the ack watermark in memory */
    uint64_t acked_saved; /* ... and as last written to the state file */
    uint64_t dropped;
    struct jent *hint; /* where the last md_journal_pending stopped (a live entry or NULL) */
    int over;          /* over the bound with nothing left to drop, and reported */
    int busy;          /* inside a callback: re-entry is a contract violation */
    char *dir;         /* for log lines */
    char *wbuf;        /* WBUF_SIZE bytes: record encoding and segment rewrites */
};

/* --- CRC-32 (IEEE, as zlib's crc32) ------------------------------------------------------- */

static uint32_t crc_table[256];

static uint32_t crc32_update(uint32_t crc, const void *data, size_t n)
{
    const unsigned char *p = data;

    if (crc_table[1] == 0) { /* single-threaded: filled on first use */
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            crc_table[i] = c;
        }
    }
    crc = ~crc;
    while (n--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* --- small I/O helpers -------------------------------------------------------------------- */

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int sync_dir(struct md_journal *j)
{
    if (fsync(j->dirfd) < 0) {
        int err = -errno;
        md_log_err(MD_LOG_WARN, err, "journal dir fsync failed: dir=%s", j->dir);
        return err;
    }
    return 0;
}

static void seg_name(char *buf, size_t n, uint64_t base)
{
    snprintf(buf, n, "%016" PRIx64 SEG_SUFFIX, base);
}

/* --- the record format -------------------------------------------------------------------- */

/* Encodes "<crc> <id> <prio> <len> <json>\n" into buf (room for HDR_MAX + len + 1); the crc
 * covers everything after "<crc> " up to, not including, the '\n'.  Returns the size. */
static size_t encode_record(char *buf, uint64_t id, unsigned prio, const char *json, size_t len)
{
    char crc[9];
    int h = snprintf(buf + 9, HDR_MAX - 9, "%" PRIu64 " %u %zu ", id, prio, len);

    assert(h > 0 && h < HDR_MAX - 9);
    memcpy(buf + 9 + h, json, len);
    snprintf(crc, sizeof crc, "%08" PRIx32, crc32_update(0, buf + 9, (size_t)h + len));
    memcpy(buf, crc, 8);
    buf[8] = ' ';
    buf[9 + (size_t)h + len] = '\n';
    return 9 + (size_t)h + len + 1;
}

/* Reads decimal digits up to the next ' ' at *p (exclusive of end); at least one, no overflow. */
static int parse_dec(const char **p, const char *end, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;

    if (s == end || *s < '0' || *s > '9')
        return -1;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (s == end || *s != ' ')
        return -1;
    *p = s + 1;
    *out = v;
    return 0;
}

static int parse_hex8(const char *s, uint32_t *out)
{
    uint32_t v = 0;

    for (int i = 0; i < 8; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else
            return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

/* Parses one line (n bytes, '\n' excluded).  Returns 0 and the fields, or -1 if it is not an
 * intact record; *json points into line. */
static int parse_record(const char *line, size_t n, uint64_t *id, unsigned *prio, const char **json,
                        size_t *len)
{
    const char *p = line + 9, *end = line + n;
    uint32_t crc;
    uint64_t v;

    if (n < 9 + 8 || line[8] != ' ' || parse_hex8(line, &crc) < 0)
        return -1;
    if (parse_dec(&p, end, id) < 0)
        return -1;
    if (parse_dec(&p, end, &v) < 0 || v >= MD_JPRIO_COUNT)
        return -1;
    *prio = (unsigned)v;
    if (parse_dec(&p, end, &v) < 0 || v == 0 || v > MD_JOURNAL_EVENT_MAX ||
        v != (uint64_t)(end - p))
        return -1;
    if (crc32_update(0, line + 9, n - 9) != crc)
        return -1;
    *json = p;
    *len = (size_t)v;
    return 0;
}

/* --- the state file: "<crc> meshd-journal-v1 <acked> <reserved>\n" ------------------------ */

static int read_state(struct md_journal *j)
{
    char buf[128];
    ssize_t n;
    int fd = openat(j->dirfd, STATE_NAME, O_RDONLY | O_CLOEXEC);
    const char *p, *end;
    uint32_t crc;

    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    do
        n = read(fd, buf, sizeof buf);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    close(fd);
    p = buf + 9 + sizeof STATE_MAGIC;
    end = buf + n - 1;
    if (n < 9 + (ssize_t)sizeof STATE_MAGIC + 4 || buf[n - 1] != '\n' || buf[8] != ' ' ||
        parse_hex8(buf, &crc) < 0 || crc32_update(0, buf + 9, (size_t)n - 10) != crc ||
        memcmp(buf + 9, STATE_MAGIC " ", sizeof STATE_MAGIC) != 0 ||
        parse_dec(&p, end, &j->acked) < 0) {
        goto bad;
    }
    /* The last field ends at the '\n', which parse_dec wants as a ' '. */
    buf[n - 1] = ' ';
    if (parse_dec(&p, end + 1, &j->reserved) < 0 || p != end + 1)
        goto bad;
    j->acked_saved = j->acked;
    return 0;
bad:
    /* Ids stay unique anyway as long as a segment survives; say so loudly. */
    md_log(MD_LOG_WARN, "journal state file corrupt, ignored: dir=%s", j->dir);
    j->acked = j->reserved = 0;
    return 0;
}

/* Writes the state (the ack watermark and reserved) durably: temp file, fdatasync, rename,
 * directory fsync.  Updates acked_saved and j->reserved only on success. */
static int write_state(struct md_journal *j, uint64_t reserved)
{
    char buf[128], crc[9];
    int n =
        snprintf(buf + 9, sizeof buf - 9, STATE_MAGIC " %" PRIu64 " %" PRIu64, j->acked, reserved);
    int fd, rc;

    assert(n > 0 && (size_t)n < sizeof buf - 10);
    snprintf(crc, sizeof crc, "%08" PRIx32, crc32_update(0, buf + 9, (size_t)n));
    memcpy(buf, crc, 8);
    buf[8] = ' ';
    buf[9 + n] = '\n';
    fd = openat(j->dirfd, STATE_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
        goto fail;
    }
    rc = write_all(fd, buf, (size_t)n + 10);
    if (rc == 0 && fdatasync(fd) < 0)
        rc = -errno;
    close(fd);
    if (rc < 0)
        goto fail;
    if (renameat(j->dirfd, STATE_TMP, j->dirfd, STATE_NAME) < 0) {
        rc = -errno;
        goto fail;
    }
    rc = sync_dir(j);
    if (rc < 0)
        goto fail;
    j->acked_saved = j->acked;
    j->reserved = reserved;
    return 0;
fail:
    md_log_err(MD_LOG_ERROR, rc, "journal state write failed: dir=%s", j->dir);
    return rc;
}

/* --- in-memory lists ---------------------------------------------------------------------- */

static void add_entry(struct md_journal *j, struct seg *s, uint64_t id, unsigned prio,
                      const char *json, size_t len, size_t rec)
{
    struct jent *e = md_xmalloc(sizeof *e + len + 1);
    struct plist *pl = &j->prio[prio];

    e->seg = s;
    e->id = id;
    e->len = (uint32_t)len;
    e->rec = (uint32_t)rec;
    e->prio = (uint8_t)prio;
    memcpy(e->json, json, len);
    e->json[len] = '\0';
    e->next = NULL;
    e->prev = j->tail;
    if (j->tail)
        j->tail->next = e;
    else
        j->head = e;
    j->tail = e;
    e->pnext = NULL;
    e->pprev = pl->tail;
    if (pl->tail)
        pl->tail->pnext = e;
    else
        pl->head = e;
    pl->tail = e;
    if (s->nlive++ == 0)
        s->first = e;
    j->count++;
    j->bytes += rec;
    j->pbytes[prio] += rec;
}

static void remove_entry(struct md_journal *j, struct jent *e)
{
    struct plist *pl = &j->prio[e->prio];
    struct seg *s = e->seg;

    if (j->hint == e)
        j->hint = e->prev;
    if (s->first == e)
        s->first = (e->next && e->next->seg == s) ? e->next : NULL;
    s->nlive--;
    if (e->prev)
        e->prev->next = e->next;
    else
        j->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        j->tail = e->prev;
    if (e->pprev)
        e->pprev->pnext = e->pnext;
    else
        pl->head = e->pnext;
    if (e->pnext)
        e->pnext->pprev = e->pprev;
    else
        pl->tail = e->pprev;
    j->count--;
    j->bytes -= e->rec;
    j->pbytes[e->prio] -= e->rec;
    md_free(e);
}

/* --- segments ----------------------------------------------------------------------------- */

static struct seg *push_seg(struct md_journal *j, uint64_t base)
{
    struct seg *s = md_xcalloc(1, sizeof *s);

    s->base = base;
    if (j->nsegs == j->asegs) {
        j->asegs = j->asegs ? j->asegs * 2 : 8;
        j->segs = md_xrealloc(j->segs, j->asegs * sizeof *j->segs);
    }
    j->segs[j->nsegs++] = s;
    return s;
}

/* Deletes every segment but the active one that holds no pending event.  The ack watermark is
 * persisted first: after the unlink, nothing else remembers that those events were confirmed
 * (replaying them would be harmless, but the promise is that acked events are not replayed). */
static int delete_empty_segments(struct md_journal *j)
{
    size_t i, k, nempty = 0;
    int rc;

    for (i = 0; i + 1 < j->nsegs; i++)
        nempty += j->segs[i]->nlive == 0;
    if (nempty == 0)
        return 0;
    if (j->acked != j->acked_saved) {
        rc = write_state(j, j->reserved);
        if (rc < 0)
            return rc;
    }
    for (i = k = 0; i < j->nsegs; i++) {
        struct seg *s = j->segs[i];
        char name[SEG_NAME_LEN + 1];
        if (s->nlive == 0 && i + 1 < j->nsegs) {
            seg_name(name, sizeof name, s->base);
            if (unlinkat(j->dirfd, name, 0) < 0 && errno != ENOENT)
                md_log_err(MD_LOG_WARN, -errno, "journal segment unlink failed: file=%s/%s", j->dir,
                           name);
            md_free(s);
            continue;
        }
        j->segs[k++] = s;
    }
    j->nsegs = k;
    return sync_dir(j);
}

/* Starts a new active segment named after the id about to be assigned. */
static int rotate(struct md_journal *j, uint64_t base)
{
    char name[SEG_NAME_LEN + 1];
    int fd;

    seg_name(name, sizeof name, base);
    fd = openat(j->dirfd, name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        int err = -errno;
        md_log_err(MD_LOG_ERROR, err, "journal segment create failed: file=%s/%s", j->dir, name);
        return err;
    }
    if (j->fd >= 0) {
        /* The old segment's tail must reach the disk no later than the new one's head, or a
         * power loss could keep later events and lose earlier ones. */
        if (j->dirty && fdatasync(j->fd) < 0)
            md_log_err(MD_LOG_WARN, -errno, "journal fdatasync failed: dir=%s", j->dir);
        close(j->fd);
    }
    j->fd = fd;
    j->dirty = 0;
    push_seg(j, base);
    md_log(MD_LOG_DEBUG, "journal segment started: file=%s/%s", j->dir, name);
    /* The old active segment may have been fully acked or dropped already. */
    return delete_empty_segments(j);
}

/* Rewrites segment s with only its pending records (temp file, fdatasync, rename), so dropped
 * events are gone from the disk too.  The rename is atomic: a crash leaves either the old file
 * (the drops are forgotten and get dropped again) or the new one, never a mix. */
static int rewrite_segment(struct md_journal *j, struct seg *s)
{
    char name[SEG_NAME_LEN + 1], tmp[SEG_NAME_LEN + 5];
    size_t used = 0;
    uint64_t size = 0;
    int fd, rc = 0;

    seg_name(name, sizeof name, s->base);
    snprintf(tmp, sizeof tmp, "%s.tmp", name);
    fd = openat(j->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
        goto fail;
    }
    for (struct jent *e = s->first; e && e->seg == s; e = e->next) {
        if (WBUF_SIZE - used < HDR_MAX + (size_t)e->len + 1) {
            if ((rc = write_all(fd, j->wbuf, used)) < 0)
                goto fail_fd;
            used = 0;
        }
        used += encode_record(j->wbuf + used, e->id, e->prio, e->json, e->len);
        size += e->rec;
    }
    if ((rc = write_all(fd, j->wbuf, used)) < 0)
        goto fail_fd;
    if (fdatasync(fd) < 0) {
        rc = -errno;
        goto fail_fd;
    }
    close(fd);
    fd = -1;
    if (renameat(j->dirfd, tmp, j->dirfd, name) < 0) {
        rc = -errno;
        goto fail_tmp;
    }
    s->size = size;
    if (s == j->segs[j->nsegs - 1]) {
        /* j->fd still points at the old inode: reopen the new file for appending. */
        close(j->fd);
        j->fd = openat(j->dirfd, name, O_WRONLY | O_APPEND | O_CLOEXEC);
        j->dirty = 0;
        if (j->fd < 0) {
            rc = -errno;
            md_log_err(MD_LOG_ERROR, rc, "journal segment reopen failed: file=%s/%s", j->dir, name);
            return rc;
        }
    }
    return 0;
fail_fd:
    close(fd);
fail_tmp:
    unlinkat(j->dirfd, tmp, 0);
fail:
    md_log_err(MD_LOG_ERROR, rc,
               "journal compaction failed, dropped events stay on disk: "
               "file=%s/%s",
               j->dir, name);
    return rc;
}

/* Keeps pending bytes under the bound: see md_journal_opts.max_bytes. */
static void enforce_bound(struct md_journal *j)
{
    uint64_t max = j->opts.max_bytes, low = max - max / 8, dbytes = 0;
    size_t count = 0;

    if (j->bytes <= max) {
        j->over = 0;
        return;
    }
    for (int p = MD_JPRIO_HEARTBEAT; p < MD_JPRIO_RUN; p++) {
        while (j->bytes > low && j->prio[p].head) {
            struct jent *e = j->prio[p].head;
            e->seg->compact = 1;
            dbytes += e->rec;
            count++;
            remove_entry(j, e);
        }
    }
    if (count > 0) {
        j->dropped += count;
        md_log(MD_LOG_WARN,
               "journal full, events dropped: dir=%s dropped=%zu dropped_bytes=%" PRIu64
               " pending=%zu pending_bytes=%" PRIu64 " max_bytes=%" PRIu64,
               j->dir, count, dbytes, j->count, j->bytes, max);
        for (size_t i = 0; i < j->nsegs; i++) {
            struct seg *s = j->segs[i];
            if (!s->compact)
                continue;
            s->compact = 0;
            if (s->nlive > 0 || i + 1 == j->nsegs)
                (void)rewrite_segment(j, s); /* logged; the drops are redone after a restart */
        }
        (void)delete_empty_segments(j);
        (void)sync_dir(j);
    }
    if (count == 0 && !j->over)
        md_log(MD_LOG_WARN,
               "journal over its bound with run records only: dir=%s "
               "pending=%zu pending_bytes=%" PRIu64 " max_bytes=%" PRIu64,
               j->dir, j->count, j->bytes, max);
    if ((count > 0 || !j->over) && j->opts.overflow_cb) {
        j->busy = 1;
        j->opts.overflow_cb(j->opts.ud, count, dbytes);
        j->busy = 0;
    }
    j->over = j->bytes > max;
}

/* --- recovery ----------------------------------------------------------------------------- */

static int read_file(int fd, char **out, size_t *outn)
{
    struct stat st;
    size_t n = 0, cap;
    char *buf;

    if (fstat(fd, &st) < 0)
        return -errno;
    cap = (size_t)st.st_size;
    buf = md_xmalloc(cap + 1);
    while (n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int err = -errno;
            md_free(buf);
            return err;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    *out = buf;
    *outn = n;
    return 0;
}

/* Loads one segment: intact records above the ack watermark become pending; a corrupt record
 * (bad CRC, bad framing, or an id not above the previous one) is skipped; a torn tail (bytes
 * after the last '\n': a crash mid-write) is cut off so that later appends start on a clean
 * line.  *max_id is the highest id seen so far, across segments. */
static int load_segment(struct md_journal *j, struct seg *s, uint64_t *max_id)
{
    char name[SEG_NAME_LEN + 1];
    char *buf = NULL;
    size_t n = 0, off = 0, bad = 0, first_bad = 0;
    int fd, rc;

    seg_name(name, sizeof name, s->base);
    fd = openat(j->dirfd, name, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    if ((rc = read_file(fd, &buf, &n)) < 0)
        goto out;
    while (off < n) {
        const char *line = buf + off, *nl = memchr(line, '\n', n - off), *json;
        uint64_t id;
        unsigned prio;
        size_t len;
        if (nl == NULL)
            break;
        size_t ll = (size_t)(nl - line);
        if (parse_record(line, ll, &id, &prio, &json, &len) < 0 || id <= *max_id) {
            if (bad++ == 0)
                first_bad = off;
        } else {
            *max_id = id;
            if (id > j->acked)
                add_entry(j, s, id, prio, json, len, ll + 1);
        }
        off += ll + 1;
    }
    if (bad > 0)
        md_log(MD_LOG_WARN, "journal corrupt records skipped: file=%s/%s count=%zu offset=%zu",
               j->dir, name, bad, first_bad);
    if (off < n) {
        md_log(MD_LOG_WARN, "journal torn record truncated: file=%s/%s offset=%zu bytes=%zu",
               j->dir, name, off, n - off);
        if (ftruncate(fd, (off_t)off) < 0) {
            rc = -errno;
            goto out;
        }
    }
    s->size = off;
    rc = 0;
out:
    if (rc < 0)
        md_log_err(MD_LOG_ERROR, rc, "journal segment read failed: file=%s/%s", j->dir, name);
    if (fd >= 0)
        close(fd);
    md_free(buf);
    return rc;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Lists the segment bases in dir, sorted; removes leftover temp files of an interrupted
 * compaction or state write (the file they were to replace is still intact). */
static int list_segments(struct md_journal *j, uint64_t **out, size_t *outn)
{
    int fd = dup(j->dirfd);
    DIR *d;
    struct dirent *de;
    uint64_t *v = NULL;
    size_t n = 0, a = 0;

    if (fd < 0)
        return -errno;
    d = fdopendir(fd);
    if (d == NULL) {
        int err = -errno;
        close(fd);
        return err;
    }
    rewinddir(d);
    while ((de = readdir(d)) != NULL) {
        const char *nm = de->d_name;
        size_t len = strlen(nm);
        uint64_t base = 0;
        int ok = len == SEG_NAME_LEN && strcmp(nm + 16, SEG_SUFFIX) == 0;
        if (len > 4 && strcmp(nm + len - 4, ".tmp") == 0) {
            unlinkat(j->dirfd, nm, 0);
            continue;
        }
        for (int i = 0; ok && i < 16; i++) {
            char c = nm[i];
            if (c >= '0' && c <= '9')
                base = base << 4 | (uint64_t)(c - '0');
            else if (c >= 'a' && c <= 'f')
                base = base << 4 | (uint64_t)(c - 'a' + 10);
            else
                ok = 0;
        }
        if (!ok)
            continue;
        if (n == a) {
            a = a ? a * 2 : 16;
            v = md_xrealloc(v, a * sizeof *v);
        }
        v[n++] = base;
    }
    closedir(d);
    if (n > 1)
        qsort(v, n, sizeof *v, cmp_u64);
    *out = v;
    *outn = n;
    return 0;
}

static void destroy(struct md_journal *j)
{
    while (j->head)
        remove_entry(j, j->head);
    for (size_t i = 0; i < j->nsegs; i++)
        md_free(j->segs[i]);
    md_free(j->segs);
    if (j->fd >= 0)
        close(j->fd);
    if (j->dirfd >= 0)
        close(j->dirfd);
    md_free(j->wbuf);
    md_free(j->dir);
    md_free(j);
}

/* --- public API --------------------------------------------------------------------------- */

int md_journal_open(const char *dir, const struct md_journal_opts *opts, struct md_journal **out)
{
    struct md_journal *j = md_xcalloc(1, sizeof *j);
    uint64_t *bases = NULL, max_id = 0;
    size_t nbases = 0;
    int rc;

    *out = NULL;
    j->fd = j->dirfd = -1;
    j->dir = md_xstrdup(dir);
    j->wbuf = md_xmalloc(WBUF_SIZE);
    if (opts)
        j->opts = *opts;
    if (j->opts.max_bytes == 0)
        j->opts.max_bytes = DEFAULT_MAX_BYTES;
    if (j->opts.segment_bytes == 0)
        j->opts.segment_bytes = DEFAULT_SEGMENT_BYTES;
    if ((rc = md_mkdir_p(dir, 0700)) < 0)
        goto fail;
    j->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (j->dirfd < 0) {
        rc = -errno;
        goto fail;
    }
    if ((rc = read_state(j)) < 0 || (rc = list_segments(j, &bases, &nbases)) < 0)
        goto fail;
    for (size_t i = 0; i < nbases; i++) {
        struct seg *s = push_seg(j, bases[i]);
        if ((rc = load_segment(j, s, &max_id)) < 0)
            goto fail;
        if (bases[i] > max_id)
            max_id = bases[i]; /* ids below a segment's base were handed out before it */
    }
    /* Every id handed out so far is <= one of these (docs/journal.md, "Ids"). */
    j->next_id = max_id;
    if (j->reserved > j->next_id)
        j->next_id = j->reserved;
    if (j->acked > j->next_id)
        j->next_id = j->acked;
    j->next_id++;
    if (j->nsegs > 0) {
        char name[SEG_NAME_LEN + 1];
        seg_name(name, sizeof name, j->segs[j->nsegs - 1]->base);
        j->fd = openat(j->dirfd, name, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (j->fd < 0) {
            rc = -errno;
            goto fail;
        }
    }
    (void)delete_empty_segments(j); /* logged; they are deleted at the next chance */
    md_log(MD_LOG_INFO,
           "journal opened: dir=%s segments=%zu pending=%zu pending_bytes=%" PRIu64
           " acked=%" PRIu64 " next_id=%" PRIu64,
           dir, j->nsegs, j->count, j->bytes, j->acked, j->next_id);
    enforce_bound(j);
    md_free(bases);
    *out = j;
    return 0;
fail:
    md_log_err(MD_LOG_ERROR, rc, "journal open failed: dir=%s", dir);
    md_free(bases);
    destroy(j);
    return rc;
}

static int sync_now(struct md_journal *j, bool lazy);

void md_journal_close(struct md_journal *j)
{
    if (j == NULL)
        return;
    assert(!j->busy);
    if (sync_now(j, false) < 0)
        md_log(MD_LOG_WARN, "journal closed without a full sync: dir=%s", j->dir);
    destroy(j);
}

int md_journal_append(struct md_journal *j, enum md_jprio prio, const char *json, size_t len,
                      uint64_t *id)
{
    uint64_t max = j->opts.max_bytes, low = max - max / 8, nid;
    struct seg *s;
    size_t n;
    int rc;

    assert(!j->busy);
    assert((unsigned)prio < MD_JPRIO_COUNT);
    if (len > MD_JOURNAL_EVENT_MAX)
        return MD_ETOOBIG;
    if (len == 0 || memchr(json, '\n', len) != NULL)
        return -EINVAL;
    nid = j->next_id;
    if (nid > j->reserved) {
        /* Persist the reservation before the id leaves: ids must survive a power loss too. */
        if ((rc = write_state(j, nid + ID_RESERVE - 1)) < 0)
            return rc;
    }
    n = encode_record(j->wbuf, nid, (unsigned)prio, json, len);
    if (prio != MD_JPRIO_RUN && j->pbytes[MD_JPRIO_RUN] > low && j->bytes + n > max) {
        /* A drop round would take this event right back (run records alone are over the low
         * mark); skip the write and the segment rewrite that would follow. */
        j->next_id++;
        j->dropped++;
        if (!j->over)
            md_log(MD_LOG_WARN,
                   "journal full of run records, event dropped: dir=%s id=%" PRIu64
                   " pending_bytes=%" PRIu64 " max_bytes=%" PRIu64,
                   j->dir, nid, j->bytes, max);
        j->over = 1;
        if (j->opts.overflow_cb) {
            j->busy = 1;
            j->opts.overflow_cb(j->opts.ud, 1, n);
            j->busy = 0;
        }
        if (id)
            *id = nid;
        return 0;
    }
    if (j->fd < 0 || (j->segs[j->nsegs - 1]->size > 0 &&
                      j->segs[j->nsegs - 1]->size + n > j->opts.segment_bytes)) {
        if ((rc = rotate(j, nid)) < 0 && j->fd < 0)
            return rc;
    }
    s = j->segs[j->nsegs - 1];
    j->next_id++;
    if ((rc = write_all(j->fd, j->wbuf, n)) < 0) {
        /* Cut a partial record off, so the next append starts on a clean line. */
        if (ftruncate(j->fd, (off_t)s->size) < 0)
            md_log_err(MD_LOG_ERROR, -errno, "journal truncate failed: dir=%s", j->dir);
        md_log_err(MD_LOG_ERROR, rc, "journal append failed: dir=%s", j->dir);
        return rc;
    }
    s->size += n;
    j->dirty = 1;
    add_entry(j, s, nid, (unsigned)prio, json, len, n);
    if (id)
        *id = nid;
    enforce_bound(j);
    return 0;
}

int md_journal_ack(struct md_journal *j, uint64_t id)
{
    assert(!j->busy);
    if (id <= j->acked)
        return 0;
    if (id >= j->next_id)
        return -EINVAL;
    j->acked = id;
    while (j->head && j->head->id <= id)
        remove_entry(j, j->head);
    if (j->bytes <= j->opts.max_bytes)
        j->over = 0;
    return delete_empty_segments(j);
}

bool md_journal_sync_due(const struct md_journal *j)
{
    /* Nothing pending: every record written is in the database already, so neither the
     * records nor (up to ACK_LAZY_IDS of them) the watermark need to reach the disk.  After a
     * crash the records past the saved watermark are replayed, harmlessly (md_journal.h). */
    if (j->count == 0)
        return j->acked - j->acked_saved >= ACK_LAZY_IDS;
    return (j->dirty && j->fd >= 0) || j->acked != j->acked_saved;
}

/* fdatasync if written, the watermark if moved; with lazy, only what md_journal_sync_due
 * asks for. */
static int sync_now(struct md_journal *j, bool lazy)
{
    int rc = 0;

    if (lazy && !md_journal_sync_due(j)) {
        j->dirty = 0;
        return 0;
    }
    if (j->dirty && j->fd >= 0) {
        if (fdatasync(j->fd) < 0) {
            rc = -errno;
            md_log_err(MD_LOG_ERROR, rc, "journal fdatasync failed: dir=%s", j->dir);
        } else {
            j->dirty = 0;
        }
    }
    if (j->acked != j->acked_saved) {
        int r = write_state(j, j->reserved);
        if (rc == 0)
            rc = r;
    }
    return rc;
}

int md_journal_sync(struct md_journal *j)
{
    assert(!j->busy);
    return sync_now(j, true);
}

int md_journal_pending(struct md_journal *j, uint64_t after_id, md_journal_visit_cb *cb, void *ud,
                       size_t max)
{
    struct jent *e = j->head, *last = NULL;
    int n = 0;

    assert(!j->busy);
    if (j->hint && j->hint->id <= after_id)
        e = j->hint;
    while (e && e->id <= after_id)
        e = e->next;
    for (; e && (size_t)n < max && n < INT_MAX; e = e->next) {
        int stop;
        n++;
        last = e;
        j->busy = 1;
        stop = cb(ud, e->id, (enum md_jprio)e->prio, e->json, e->len);
        j->busy = 0;
        if (stop)
            break;
    }
    if (last)
        j->hint = last;
    return n;
}

size_t md_journal_count(const struct md_journal *j)
{
    return j->count;
}

uint64_t md_journal_bytes(const struct md_journal *j)
{
    return j->bytes;
}

uint64_t md_journal_last_id(const struct md_journal *j)
{
    return j->next_id - 1;
}

uint64_t md_journal_acked(const struct md_journal *j)
{
    return j->acked;
}

uint64_t md_journal_dropped(const struct md_journal *j)
{
    return j->dropped;
}
