/* fetch.c - meshd-scrape's downloads (fetch.h).
 *
 * One thread owns a curl multi handle, every easy handle, every .part file and every item's out
 * fields.  It shares three things with the caller: the stop flag (atomic; fetch_stop sets it and
 * wakes curl_multi_poll), the byte counter (atomic) and the queue of finished items (mutex and
 * condition variable).  An item's out fields are all written before it is queued, under the
 * mutex, so the caller reads them after taking it off the queue without more locking.
 *
 * The loop, at most TICK_MS per turn:
 *
 *   stop flag set?         abort everything, queue what is left as FETCH_STOPPED, return
 *   start due slots        while fewer than concurrency run (and per_host to one host)
 *   curl_multi_perform
 *   finished transfers     decide: done, not modified, retry later (a due time), restart now,
 *                          or failed; free the easy handle
 *   curl_multi_poll        until a socket is ready, curl's own timer, the next due retry, or
 *                          TICK_MS (also cut short by curl_multi_wakeup)
 *
 * We keep the start queue ourselves rather than adding every handle and letting
 * CURLMOPT_MAX_TOTAL_CONNECTIONS hold them back: a handle curl keeps pending has "started" for
 * us (attempts, seconds), and the retry due times have to be ours anyway.  The two multi limits
 * are set too, as a backstop.
 *
 * A slot's body handling is decided once per attempt, at the first body byte, or when the
 * transfer ends without one (a 304, an empty file, a file:// resume with nothing left): begin().
 * Only then are the response's status and headers known for certain (a redirect's body never
 * reaches the write callback).
 *
 * Ranges: HTTP resumes use CURLOPT_RANGE, not CURLOPT_RESUME_FROM_LARGE.  With the latter,
 * libcurl 7.88 treats a 200 to a resumed request as CURLE_RANGE_ERROR, and a 200 whose length
 * happens to equal the resume offset as "already downloaded", returning OK with nothing written
 * (http.c, Curl_http_firstwrite); but a 200 is exactly what If-Range answers when the file
 * changed.  With CURLOPT_RANGE libcurl passes any answer through and we check Content-Range
 * ourselves.  file:// has no such checks and uses CURLOPT_RESUME_FROM_LARGE.
 */
#include "fetch.h"

#include <assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "meshd/md_alloc.h"
#include "meshd/md_log.h"
#include "meshd/md_rand.h"
#include "meshd/md_time.h"

#define TICK_MS 200       /* the longest the thread goes without looking at the stop flag */
#define WBUF (128 * 1024) /* the write buffer of a running slot */
#define META_MAX 4096     /* a .part.meta longer than this is not ours */
#define MAX_REDIRS 10L
#define URL_SHOWN 120 /* of a URL in a message; longer ones are cut with "..." */
#define META_MAGIC "meshd-fetch-part 1"

#ifndef MESHD_VERSION
#define MESHD_VERSION "dev"
#endif

enum slot_state {
    SLOT_WAITING, /* not started, or waiting for a retry's due time */
    SLOT_RUNNING, /* an easy handle is in the multi handle */
    SLOT_DONE,    /* queued for the caller; the thread no longer touches the item */
};

/* Why begin() or the write callback refused a transfer (it then ends with CURLE_WRITE_ERROR,
 * which means nothing by itself). */
enum slot_abort {
    ABORT_NONE,
    ABORT_DISK,    /* writing the .part failed: fail, keep what was written */
    ABORT_RESTART, /* the .part does not continue into this response: discard it, start over */
    ABORT_PROTO,   /* the server answered something we did not ask for: fail */
};

/* What a .part continues: a strong ETag, else a Last-Modified (Unix s); both empty: nothing. */
struct validator {
    char etag[256];
    int64_t lm;
};

struct slot {
    struct fetch_item *it;
    struct fetcher *f;
    enum slot_state state;
    bool is_file;     /* file:// */
    bool bad;         /* the URL failed to parse: fails at its first start */
    char *shown;      /* the URL without user:password, cut to URL_SHOWN: for messages */
    char *ident;      /* the URL without user:password, whole: for .part.meta */
    char *part;       /* "<path>.part" */
    char *meta;       /* "<path>.part.meta" */
    int host;         /* index into fetcher.host_running; -1: not counted (file://) */
    int64_t due_ms;   /* SLOT_WAITING: monotonic ms it may start */
    int64_t first_ms; /* monotonic ms of its first request */
    int tries;        /* retryable failures so far */
    bool restarted;   /* the one discard-and-start-over is used */
    EVP_MD_CTX *md;   /* allocated at the first body */

    /* One attempt: reset by attempt_start, released by attempt_end. */
    CURL *easy;
    struct curl_slist *hdrs;
    int64_t asked;         /* the offset resumed from (Range / RESUME_FROM), 0: none */
    struct validator pv;   /* the .part's validator: the one asked for, or the new one */
    bool cond;             /* If-None-Match or a time condition was sent */
    bool began;            /* begin() ran */
    bool writing;          /* the body goes to the .part */
    enum slot_abort abort; /* set with why */
    char why[160];         /* the cause for an abort */
    int fd;                /* the .part, -1 */
    unsigned char *buf;    /* WBUF bytes, while writing */
    size_t buflen;         /* unwritten bytes in buf */
    int64_t base;          /* offset in the file of the body's first byte */
    int64_t got;           /* body bytes of this attempt taken into the .part */
    int64_t range_total;   /* from a 206's Content-Range, -1 unknown */
    /* the headers of the last response (reset at each status line: redirects, 1xx) */
    char reason[64]; /* the status line's reason phrase, printable ASCII */
    char etag[256];  /* "" none, or not printable, or too long */
    char crange[96]; /* Content-Range, "" none */
    char errbuf[CURL_ERROR_SIZE];
};

struct fetcher {
    struct fetch_item *items;
    size_t n;
    struct slot *slots;
    struct fetch_opts o;
    char *ua;
    CURLM *multi;
    pthread_t tid;
    atomic_bool stopping;
    _Atomic int64_t bytes;
    uint64_t rng; /* the thread's own xorshift state: md_rand is not thread-safe */

    /* the thread's alone */
    int *host_running; /* transfers running per host key */
    size_t nhosts;
    size_t running;
    size_t finished;

    /* the queue: q[0..nq) finished in order, q[0..returned) handed out */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct fetch_item **q;
    size_t nq;       /* under mu */
    size_t returned; /* the consumer's alone */
};

static int64_t now_ms(void)
{
    return md_time_clock_ms(CLOCK_MONOTONIC);
}

/* ---- small helpers --------------------------------------------------------------------------- */

/* xorshift64*, as md_rand, but the fetcher's own: md_rand's state is not thread-safe. */
static uint64_t rng_next(struct fetcher *f)
{
    f->rng ^= f->rng >> 12;
    f->rng ^= f->rng << 25;
    f->rng ^= f->rng >> 27;
    return f->rng * 0x2545F4914F6CDD1Dull;
}

/* A header value we would send back (If-None-Match, If-Range): printable ASCII only, so a
 * stored ETag can never split the request head. */
static bool printable(const char *s, size_t max)
{
    size_t i;

    for (i = 0; s[i]; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e || i >= max)
            return false;
    return i > 0;
}

/* "scheme://user:pw@host/p" -> "scheme://host/p", controls as '?', cut to URL_SHOWN when cut is
 * set.  Works on any text, also one curl_url refused, so a malformed URL's message does not leak
 * its password either. */
static char *url_redact(const char *url, bool cut)
{
    const char *sep = strstr(url, "://");
    char *out;

    if (sep != NULL) {
        const char *auth = sep + 3;
        size_t alen = strcspn(auth, "/?#");
        const char *at = NULL;
        for (const char *p = auth; p < auth + alen; p++)
            if (*p == '@')
                at = p;
        if (at != NULL)
            out = md_xasprintf("%.*s%s", (int)(auth - url), url, at + 1);
        else
            out = md_xstrdup(url);
    } else {
        out = md_xstrdup(url);
    }
    if (cut && strlen(out) > URL_SHOWN)
        memcpy(out + URL_SHOWN - 3, "...", 4);
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return out;
}

char *fetch_url_shown(const char *url)
{
    return url_redact(url, false);
}

/* An IMF-fixdate (RFC 9110 5.6.7) for If-Range, without the locale strftime would use. */
static void http_date(int64_t t, char *buf, size_t len)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    snprintf(buf, len, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Digits only, no sign, no overflow; *end past them.  -1 when there are none. */
static int64_t parse_u63(const char *s, const char **end)
{
    int64_t v = 0;
    const char *p = s;

    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (INT64_MAX - (*p - '0')) / 10)
            return -1;
        v = v * 10 + (*p - '0');
    }
    *end = p;
    return p == s ? -1 : v;
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;

    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static void unlink_quiet(const char *path)
{
    (void)unlink(path);
}

/* ---- .part.meta ------------------------------------------------------------------------------
 *
 *   meshd-fetch-part 1
 *   url <the URL without user:password>
 *   etag <strong ETag>        or    last-modified <Unix s>
 *
 * The URL line keeps a .part from being continued from another URL that now goes to the same
 * path.  Written before the first body byte of a new .part; a crash at any point leaves either
 * no .part.meta (the .part is discarded) or one that matches the .part's first bytes.
 */

static int meta_write(const struct slot *s, const struct validator *v)
{
    char *text = v->etag[0] ? md_xasprintf(META_MAGIC "\nurl %s\netag %s\n", s->ident, v->etag)
                            : md_xasprintf(META_MAGIC "\nurl %s\nlast-modified %" PRId64 "\n",
                                           s->ident, v->lm);
    int rc = 0;
    int fd = open(s->meta, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    if (fd < 0)
        rc = -errno;
    else
        rc = write_all(fd, text, strlen(text));
    if (fd >= 0 && close(fd) < 0 && rc == 0)
        rc = -errno;
    md_free(text);
    return rc;
}

/* 0 with *v set when s->meta is ours, names s's URL and holds a validator; -1 otherwise. */
static int meta_read(const struct slot *s, struct validator *v)
{
    char buf[META_MAX + 1];
    size_t len = 0;
    int fd = open(s->meta, O_RDONLY | O_CLOEXEC);
    char *line, *save = NULL;
    bool url_ok = false;

    if (fd < 0)
        return -1;
    while (len < sizeof buf - 1) {
        ssize_t r = read(fd, buf + len, sizeof buf - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    if (len >= META_MAX)
        return -1;
    buf[len] = '\0';
    *v = (struct validator){{0}, 0};
    line = strtok_r(buf, "\n", &save);
    if (line == NULL || strcmp(line, META_MAGIC) != 0)
        return -1;
    while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
        const char *end;
        if (strncmp(line, "url ", 4) == 0) {
            url_ok = strcmp(line + 4, s->ident) == 0;
        } else if (strncmp(line, "etag ", 5) == 0) {
            if (strlen(line + 5) >= sizeof v->etag || !printable(line + 5, sizeof v->etag))
                return -1;
            strcpy(v->etag, line + 5);
        } else if (strncmp(line, "last-modified ", 14) == 0) {
            v->lm = parse_u63(line + 14, &end);
            if (v->lm <= 0 || *end != '\0')
                return -1;
        }
    }
    return url_ok && (v->etag[0] || v->lm > 0) ? 0 : -1;
}

/* ---- the .part ------------------------------------------------------------------------------- */

static void slot_abort(struct slot *s, enum slot_abort a, const char *fmt, ...) MD_PRINTF(3, 4);

static void slot_abort(struct slot *s, enum slot_abort a, const char *fmt, ...)
{
    va_list ap;

    s->abort = a;
    va_start(ap, fmt);
    vsnprintf(s->why, sizeof s->why, fmt, ap);
    va_end(ap);
}

static int buf_flush(struct slot *s)
{
    int rc;

    if (s->buflen == 0)
        return 0;
    rc = write_all(s->fd, s->buf, s->buflen);
    s->buflen = 0;
    if (rc < 0)
        slot_abort(s, ABORT_DISK, "writing %s: %s", s->part, strerror(-rc));
    return rc;
}

/* Hashes and buffers n body bytes. */
static int buf_put(struct slot *s, const char *p, size_t n)
{
    EVP_DigestUpdate(s->md, p, n);
    s->got += (int64_t)n;
    if (s->buflen + n > WBUF && buf_flush(s) < 0)
        return -1;
    if (n >= WBUF) {
        int rc = write_all(s->fd, p, n);
        if (rc < 0)
            slot_abort(s, ABORT_DISK, "writing %s: %s", s->part, strerror(-rc));
        return rc;
    }
    memcpy(s->buf + s->buflen, p, n);
    s->buflen += n;
    return 0;
}

static void part_close(struct slot *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    md_free(s->buf);
    s->buf = NULL;
    s->buflen = 0;
    s->writing = false;
}

static void part_discard(struct slot *s)
{
    part_close(s);
    unlink_quiet(s->meta);
    unlink_quiet(s->part);
}

static int part_open(struct slot *s, int flags)
{
    s->fd = open(s->part, O_RDWR | O_CREAT | O_CLOEXEC | flags, 0644);
    if (s->fd < 0) {
        slot_abort(s, ABORT_DISK, "opening %s: %s", s->part, strerror(errno));
        return -1;
    }
    if (s->md == NULL && (s->md = EVP_MD_CTX_new()) == NULL) {
        slot_abort(s, ABORT_DISK, "out of memory for SHA-256");
        return -1;
    }
    if (EVP_DigestInit_ex(s->md, EVP_sha256(), NULL) != 1) {
        slot_abort(s, ABORT_DISK, "SHA-256 is not available");
        return -1;
    }
    s->buf = md_xmalloc(WBUF);
    s->buflen = 0;
    s->got = 0;
    s->writing = true;
    return 0;
}

/* A new file from byte 0.  Order matters for a crash: the old .part.meta goes first, then the
 * .part is emptied, then the new .part.meta is written, then the body. */
static int part_new(struct slot *s, int64_t filetime)
{
    struct validator v = {{0}, 0};
    int rc;

    /* A weak ETag cannot be an If-Range validator (RFC 9110 13.1.5). */
    if (s->etag[0] && strncmp(s->etag, "W/", 2) != 0)
        strcpy(v.etag, s->etag);
    else if (filetime > 0)
        v.lm = filetime;
    unlink_quiet(s->meta);
    if (part_open(s, O_TRUNC) < 0)
        return -1;
    if ((v.etag[0] || v.lm > 0) && (rc = meta_write(s, &v)) < 0) {
        slot_abort(s, ABORT_DISK, "writing %s: %s", s->meta, strerror(-rc));
        return -1;
    }
    s->pv = v;
    s->base = 0;
    s->it->resumed = false;
    return 0;
}

/* Continues the .part at s->asked: its bytes are hashed first. */
static int part_continue(struct slot *s)
{
    int64_t off = 0;

    if (part_open(s, 0) < 0)
        return -1;
    if (ftruncate(s->fd, (off_t)s->asked) < 0) {
        slot_abort(s, ABORT_DISK, "truncating %s: %s", s->part, strerror(errno));
        return -1;
    }
    while (off < s->asked) {
        size_t want = s->asked - off < WBUF ? (size_t)(s->asked - off) : WBUF;
        ssize_t r = pread(s->fd, s->buf, want, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            slot_abort(s, ABORT_DISK, "reading %s: %s", s->part, strerror(errno));
            return -1;
        }
        if (r == 0) { /* shrank under us since attempt_start */
            slot_abort(s, ABORT_RESTART, "%s shrank", s->part);
            return -1;
        }
        EVP_DigestUpdate(s->md, s->buf, (size_t)r);
        off += r;
    }
    if (lseek(s->fd, (off_t)s->asked, SEEK_SET) < 0) {
        slot_abort(s, ABORT_DISK, "seeking %s: %s", s->part, strerror(errno));
        return -1;
    }
    s->base = s->asked;
    s->it->resumed = true;
    return 0;
}

/* Decides what the body of this response is: the whole file, the rest of the .part, or an error
 * page to drop.  Returns -1 (with s->abort set) to abort the transfer. */
static int begin(struct slot *s)
{
    long code = 0;
    curl_off_t ft = -1;

    s->began = true;
    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(s->easy, CURLINFO_FILETIME_T, &ft);
    if (s->is_file) {
        if (s->asked == 0)
            return part_new(s, ft);
        if (ft != s->pv.lm) {
            slot_abort(s, ABORT_RESTART, "the file changed since the .part was started");
            return -1;
        }
        return part_continue(s);
    }
    if (code == 200 || code == 203)
        return part_new(s, ft);
    if (code == 206) {
        const char *p = s->crange, *end;
        int64_t first = -1, last = -1;

        if (s->asked == 0) {
            slot_abort(s, ABORT_PROTO, "HTTP 206 to a request without Range");
            return -1;
        }
        /* "bytes first-last/total", where total may be "*" (unknown) */
        if (strncasecmp(p, "bytes ", 6) == 0) {
            first = parse_u63(p + 6, &end);
            if (first >= 0 && *end == '-') {
                last = parse_u63(end + 1, &end);
                if (last >= first && *end == '/')
                    s->range_total = end[1] == '*' ? -1 : parse_u63(end + 1, &end);
            }
        }
        if (first != s->asked || last < first) {
            slot_abort(s, ABORT_RESTART, "Content-Range \"%s\" does not continue the .part",
                       s->crange);
            return -1;
        }
        /* A server that ignored If-Range but names the entity: trust the name. */
        if (s->pv.etag[0] && s->etag[0] && strcmp(s->pv.etag, s->etag) != 0) {
            slot_abort(s, ABORT_RESTART, "the 206's ETag differs from the .part's");
            return -1;
        }
        return part_continue(s);
    }
    return 0; /* an error page, a redirect's body: not ours to keep */
}

/* ---- curl callbacks (the download thread) ---------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
    struct slot *s = arg;
    size_t n = size * nmemb;

    if (!s->began && begin(s) < 0)
        return CURL_WRITEFUNC_ERROR;
    if (!s->writing)
        return n;
    if (buf_put(s, p, n) < 0)
        return CURL_WRITEFUNC_ERROR;
    s->it->bytes_received += (int64_t)n;
    atomic_fetch_add(&s->f->bytes, (int64_t)n);
    return n;
}

/* Copies a header's value (leading and trailing blanks cut) when it is printable and fits. */
static void header_value(const char *v, size_t n, char *dst, size_t size)
{
    while (n > 0 && (*v == ' ' || *v == '\t'))
        v++, n--;
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r' || v[n - 1] == '\n'))
        n--;
    dst[0] = '\0';
    if (n == 0 || n >= size)
        return;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] > 0x7e)
            return;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

/* Keeps what we need of the last response's head.  A status line starts a new response (after
 * a redirect or a 1xx), so it forgets the previous one's headers. */
static size_t on_header(char *p, size_t size, size_t nmemb, void *arg)
{
    struct slot *s = arg;
    size_t n = size * nmemb;

    if (n > 5 && memcmp(p, "HTTP/", 5) == 0) {
        const char *sp = memchr(p, ' ', n);
        s->etag[0] = s->crange[0] = s->reason[0] = '\0';
        if (sp != NULL) {
            size_t rest = n - (size_t)(sp - p);
            const char *r = memchr(sp + 1, ' ', rest - 1); /* after the code */
            if (r != NULL)
                header_value(r + 1, n - (size_t)(r + 1 - p), s->reason, sizeof s->reason);
        }
    } else if (n > 5 && strncasecmp(p, "etag:", 5) == 0) {
        header_value(p + 5, n - 5, s->etag, sizeof s->etag);
    } else if (n > 14 && strncasecmp(p, "content-range:", 14) == 0) {
        header_value(p + 14, n - 14, s->crange, sizeof s->crange);
    }
    return n;
}

/* ---- outcomes -------------------------------------------------------------------------------- */

/* Hands the item to the caller.  Nothing of it may be written after this. */
static void finish(struct slot *s, enum fetch_outcome out)
{
    struct fetcher *f = s->f;

    part_close(s);
    s->it->outcome = out;
    if (s->first_ms > 0)
        s->it->seconds = (double)(now_ms() - s->first_ms) / 1000.0;
    s->state = SLOT_DONE;
    f->finished++;
    pthread_mutex_lock(&f->mu);
    f->q[f->nq++] = s->it;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static void fail(struct slot *s, bool permanent, const char *fmt, ...) MD_PRINTF(3, 4);

static void fail(struct slot *s, bool permanent, const char *fmt, ...)
{
    char cause[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cause, sizeof cause, fmt, ap);
    va_end(ap);
    snprintf(s->it->error, sizeof s->it->error, "%s: %s", s->shown, cause);
    s->it->permanent = permanent;
    finish(s, FETCH_FAILED);
}

static void not_modified(struct slot *s, const char *etag, int64_t filetime)
{
    struct fetch_item *it = s->it;

    /* The .part being resumed (if any) is of a version that is no longer current. */
    if (s->asked > 0)
        part_discard(s);
    if (etag[0])
        snprintf(it->etag_new, sizeof it->etag_new, "%s", etag);
    else if (it->etag != NULL && strlen(it->etag) < sizeof it->etag_new)
        strcpy(it->etag_new, it->etag);
    it->last_modified_new = filetime > 0 ? filetime : it->last_modified;
    finish(s, FETCH_NOT_MODIFIED);
}

static void complete(struct slot *s, const char *etag, int64_t filetime)
{
    struct fetch_item *it = s->it;
    int64_t size = s->base + s->got;
    unsigned char dig[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;

    if (buf_flush(s) < 0) {
        fail(s, false, "%s", s->why);
        return;
    }
    if (s->range_total >= 0 && size != s->range_total) {
        fail(s, false, "206 ended at %" PRId64 " of %" PRId64 " bytes", size, s->range_total);
        return;
    }
    /* The rename must not reach the disk before the data (a crash would leave a short file
     * under the final name). */
    if (fdatasync(s->fd) < 0) {
        fail(s, false, "syncing %s: %s", s->part, strerror(errno));
        return;
    }
    part_close(s);
    if (rename(s->part, it->path) < 0) {
        fail(s, false, "renaming %s: %s", s->part, strerror(errno));
        return;
    }
    unlink_quiet(s->meta);
    EVP_DigestFinal_ex(s->md, dig, &dlen);
    for (unsigned int i = 0; i < dlen && i < 32; i++)
        snprintf(it->sha256 + 2 * i, 3, "%02x", dig[i]);
    it->bytes = size;
    snprintf(it->etag_new, sizeof it->etag_new, "%s", etag[0] ? etag : s->pv.etag);
    it->last_modified_new = filetime > 0 ? filetime : s->pv.lm;
    finish(s, FETCH_DOWNLOADED);
}

/* Tries again after a backoff (Retry-After, in seconds, may lengthen it), or fails for good once
 * the retries are used up.  The .part stays for the next attempt to resume. */
static void retry(struct slot *s, int64_t retry_after_s, const char *fmt, ...) MD_PRINTF(3, 4);

static void retry(struct slot *s, int64_t retry_after_s, const char *fmt, ...)
{
    struct fetcher *f = s->f;
    char cause[200];
    uint64_t wait = f->o.backoff_ms, jitter;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cause, sizeof cause, fmt, ap);
    va_end(ap);
    if (++s->tries > f->o.retries) {
        if (s->it->attempts > 1)
            fail(s, false, "%s after %d attempts", cause, s->it->attempts);
        else
            fail(s, false, "%s", cause);
        return;
    }
    for (int i = 1; i < s->tries && wait < f->o.max_backoff_ms; i++)
        wait *= 2;
    jitter = wait / 10;
    wait = wait - jitter + rng_next(f) % (2 * jitter + 1);
    if (retry_after_s > 0) {
        uint64_t ra = (uint64_t)retry_after_s * 1000;
        if (retry_after_s > INT64_MAX / 1000 || ra > f->o.max_backoff_ms)
            ra = f->o.max_backoff_ms;
        if (ra > wait)
            wait = ra;
    }
    if (wait > f->o.max_backoff_ms)
        wait = f->o.max_backoff_ms;
    md_log(MD_LOG_WARN, "retrying: url=%s attempt=%d of %d wait_ms=%" PRIu64 " cause=%s", s->shown,
           s->it->attempts, f->o.retries + 1, wait, cause);
    part_close(s);
    s->state = SLOT_WAITING;
    s->due_ms = now_ms() + (int64_t)wait;
}

/* Discards the .part and starts over from 0 at once, once per item. */
static void restart(struct slot *s, const char *cause)
{
    if (s->restarted) {
        fail(s, false, "could not resume: %s", cause);
        return;
    }
    md_log(MD_LOG_INFO, "restarting: url=%s cause=%s", s->shown, cause);
    s->restarted = true;
    part_discard(s);
    s->state = SLOT_WAITING;
    s->due_ms = 0;
}

static bool curl_retryable(CURLcode rc)
{
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
        return true;
    default:
        return false;
    }
}

/* Failures that another run cannot fix either, short of changing the config. */
static bool curl_permanent(CURLcode rc)
{
    switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_FILE_COULDNT_READ_FILE:
    case CURLE_REMOTE_ACCESS_DENIED:
    case CURLE_LOGIN_DENIED:
    case CURLE_TOO_MANY_REDIRECTS:
        return true;
    default:
        return false;
    }
}

/* The cause of a failed transfer, in words. */
static void curl_cause(const struct slot *s, CURLcode rc, char *buf, size_t len)
{
    const struct fetch_opts *o = &s->f->o;
    const char *eb = s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc);
    long oserr = 0;

    curl_easy_getinfo(s->easy, CURLINFO_OS_ERRNO, &oserr);
    if (rc == CURLE_OPERATION_TIMEDOUT && strncmp(s->errbuf, "Operation too slow", 18) == 0)
        snprintf(buf, len, "timed out: less than %ld B/s for %" PRIu64 " s", o->stall_bytes_per_s,
                 (o->stall_ms + 999) / 1000);
    else if ((rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR) && oserr == ECONNRESET)
        snprintf(buf, len, "connection reset");
    else if (rc == CURLE_COULDNT_CONNECT && oserr == ECONNREFUSED)
        snprintf(buf, len, "connection refused");
    else if (rc == CURLE_GOT_NOTHING)
        snprintf(buf, len, "empty reply from server");
    else if (rc == CURLE_PARTIAL_FILE)
        snprintf(buf, len, "connection closed early: %.150s", eb);
    else
        snprintf(buf, len, "%.180s", eb);
    /* curl's messages end without a newline, but be sure */
    buf[strcspn(buf, "\r\n")] = '\0';
}

/* For HTTP/2, whose status line has no reason phrase. */
static const char *reason_of(long code)
{
    static const struct {
        long code;
        const char *text;
    } reasons[] = {
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {410, "Gone"},
        {416, "Range Not Satisfiable"},
        {429, "Too Many Requests"},
        {500, "Internal Server Error"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
    };

    for (size_t i = 0; i < MD_ARRAY_SIZE(reasons); i++)
        if (reasons[i].code == code)
            return reasons[i].text;
    return "";
}

/* Frees the attempt's curl resources; the .part stays open (it is decided on after). */
static void attempt_end(struct slot *s)
{
    struct fetcher *f = s->f;

    curl_multi_remove_handle(f->multi, s->easy);
    curl_easy_cleanup(s->easy);
    s->easy = NULL;
    curl_slist_free_all(s->hdrs);
    s->hdrs = NULL;
    f->running--;
    if (s->host >= 0)
        f->host_running[s->host]--;
}

/* A transfer ended with rc: decide the item's fate. */
static void on_done(struct slot *s, CURLcode rc)
{
    long code = 0, unmet = 0;
    curl_off_t ft = -1, ra = 0;
    char etag[256], cause[200];

    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(s->easy, CURLINFO_FILETIME_T, &ft);
    curl_easy_getinfo(s->easy, CURLINFO_RETRY_AFTER, &ra);
    curl_easy_getinfo(s->easy, CURLINFO_CONDITION_UNMET, &unmet);
    s->it->http_code = code;
    snprintf(etag, sizeof etag, "%s", s->is_file ? "" : s->etag);
    /* No body byte came: a file:// read with nothing left, an empty file, or no body at all. */
    if (rc == CURLE_OK && !s->began &&
        ((s->is_file && !unmet) || code == 200 || code == 203 || code == 206))
        (void)begin(s);
    if (s->writing && s->abort == ABORT_NONE)
        (void)buf_flush(s); /* also before a retry: the next attempt resumes from the file */
    if (rc != CURLE_OK && s->abort == ABORT_NONE)
        curl_cause(s, rc, cause, sizeof cause);
    attempt_end(s);

    switch (s->abort) {
    case ABORT_RESTART:
        restart(s, s->why);
        return;
    case ABORT_DISK:
    case ABORT_PROTO:
        fail(s, false, "%s", s->why);
        return;
    case ABORT_NONE:
        break;
    }
    if (rc == CURLE_BAD_DOWNLOAD_RESUME) { /* file:// shorter than the .part */
        restart(s, cause);
        return;
    }
    if (rc != CURLE_OK) {
        if (curl_retryable(rc))
            retry(s, 0, "%s", cause);
        else
            fail(s, curl_permanent(rc), "%s", cause);
        return;
    }
    if (s->is_file) {
        if (unmet)
            not_modified(s, "", ft);
        else
            complete(s, "", ft);
        return;
    }
    const char *reason = s->reason[0] ? s->reason : reason_of(code);
    if (code == 200 || code == 203 || code == 206) {
        complete(s, etag, ft);
    } else if (code == 304 && s->cond) {
        not_modified(s, etag, ft);
    } else if (code == 416 && s->asked > 0) {
        restart(s, "HTTP 416 to the Range request");
    } else if (code == 408 || code == 429 || (code >= 500 && code <= 599)) {
        retry(s, ra, "HTTP %ld %s", code, reason);
    } else if (code >= 400 && code <= 499) {
        fail(s, true, "HTTP %ld %s", code, reason);
    } else {
        fail(s, true, "unexpected HTTP %ld %s", code, reason);
    }
}

/* ---- starting attempts ----------------------------------------------------------------------- */

#define SETOPT(s, opt, val)                                                                        \
    do {                                                                                           \
        if (curl_easy_setopt((s)->easy, (opt), (val)) != CURLE_OK)                                 \
            goto fail;                                                                             \
    } while (0)

static bool add_header(struct slot *s, const char *fmt, ...) MD_PRINTF(2, 3);

static bool add_header(struct slot *s, const char *fmt, ...)
{
    char line[400];
    struct curl_slist *l;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if ((l = curl_slist_append(s->hdrs, line)) == NULL)
        return false;
    s->hdrs = l;
    return true;
}

/* Looks at the .part: resume it when its .part.meta holds a validator, else throw it away. */
static void part_probe(struct slot *s)
{
    struct stat st;
    struct validator v;

    s->asked = 0;
    s->pv = (struct validator){{0}, 0};
    if (stat(s->part, &st) < 0) {
        unlink_quiet(s->meta);
        return;
    }
    if (st.st_size > 0 && S_ISREG(st.st_mode) && meta_read(s, &v) == 0) {
        s->asked = (int64_t)st.st_size;
        s->pv = v;
        return;
    }
    unlink_quiet(s->meta);
    unlink_quiet(s->part);
}

static void attempt_start(struct slot *s)
{
    struct fetcher *f = s->f;
    const struct fetch_item *it = s->it;
    const struct fetch_opts *o = &f->o;

    if (s->bad)
        return; /* failed in slot_init */
    s->it->attempts++;
    if (s->first_ms == 0)
        s->first_ms = now_ms();
    s->cond = s->began = s->writing = false;
    s->abort = ABORT_NONE;
    s->why[0] = s->reason[0] = s->etag[0] = s->crange[0] = s->errbuf[0] = '\0';
    s->range_total = -1;
    s->base = s->got = 0;
    part_probe(s);

    if ((s->easy = curl_easy_init()) == NULL) {
        fail(s, false, "out of memory (curl_easy_init)");
        return;
    }
    SETOPT(s, CURLOPT_URL, it->url);
    SETOPT(s, CURLOPT_PRIVATE, s);
    SETOPT(s, CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(s, CURLOPT_WRITEDATA, s);
    SETOPT(s, CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(s, CURLOPT_HEADERDATA, s);
    SETOPT(s, CURLOPT_ERRORBUFFER, s->errbuf);
    SETOPT(s, CURLOPT_NOSIGNAL, 1L); /* no SIGALRM for DNS timeouts: we are a thread */
    SETOPT(s, CURLOPT_PROTOCOLS_STR, "http,https,file");
    SETOPT(s, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    SETOPT(s, CURLOPT_FOLLOWLOCATION, 1L);
    SETOPT(s, CURLOPT_MAXREDIRS, MAX_REDIRS);
    SETOPT(s, CURLOPT_FILETIME, 1L);
    SETOPT(s, CURLOPT_USERAGENT, f->ua);
    SETOPT(s, CURLOPT_CONNECTTIMEOUT_MS, (long)o->connect_timeout_ms);
    SETOPT(s, CURLOPT_LOW_SPEED_LIMIT, o->stall_bytes_per_s);
    SETOPT(s, CURLOPT_LOW_SPEED_TIME, (long)((o->stall_ms + 999) / 1000));
    SETOPT(s, CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(s, CURLOPT_BUFFERSIZE, 128L * 1024);
    if (o->max_recv_speed > 0)
        SETOPT(s, CURLOPT_MAX_RECV_SPEED_LARGE, (curl_off_t)o->max_recv_speed);

    /* The condition for the version loaded last; still sent when resuming (fetch.h). */
    if (!s->is_file && it->etag != NULL && printable(it->etag, 1024)) {
        if (!add_header(s, "If-None-Match: %s", it->etag))
            goto fail;
        s->cond = true;
    } else if (it->last_modified > 0) {
        SETOPT(s, CURLOPT_TIMECONDITION, (long)CURL_TIMECOND_IFMODSINCE);
        SETOPT(s, CURLOPT_TIMEVALUE_LARGE, (curl_off_t)it->last_modified);
        s->cond = true;
    }
    if (s->asked > 0 && s->is_file) {
        SETOPT(s, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)s->asked);
    } else if (s->asked > 0) {
        char range[32], date[40];
        snprintf(range, sizeof range, "%" PRId64 "-", s->asked);
        SETOPT(s, CURLOPT_RANGE, range);
        if (s->pv.etag[0]) {
            if (!add_header(s, "If-Range: %s", s->pv.etag))
                goto fail;
        } else {
            http_date(s->pv.lm, date, sizeof date);
            if (!add_header(s, "If-Range: %s", date))
                goto fail;
        }
    }
    if (s->hdrs != NULL)
        SETOPT(s, CURLOPT_HTTPHEADER, s->hdrs);
    if (curl_multi_add_handle(f->multi, s->easy) != CURLM_OK)
        goto fail;
    s->state = SLOT_RUNNING;
    f->running++;
    if (s->host >= 0)
        f->host_running[s->host]++;
    return;
fail:
    curl_easy_cleanup(s->easy);
    s->easy = NULL;
    curl_slist_free_all(s->hdrs);
    s->hdrs = NULL;
    fail(s, false, "could not set up the transfer (out of memory?)");
}

/* Starts what is due and fits under the limits, in item order. */
static void start_due(struct fetcher *f, int64_t now)
{
    for (size_t i = 0; i < f->n && f->running < (size_t)f->o.concurrency; i++) {
        struct slot *s = &f->slots[i];
        if (s->state != SLOT_WAITING || s->due_ms > now)
            continue;
        if (s->host >= 0 && f->host_running[s->host] >= f->o.per_host)
            continue;
        attempt_start(s);
    }
}

/* Parses the URL once: the scheme decides file:// handling, the host key the per-host limit. */
static void slot_init(struct fetcher *f, struct slot *s, char ***keys)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *key;
    CURLUcode uc;

    s->f = f;
    s->fd = -1;
    s->host = -1;
    s->shown = url_redact(s->it->url, true);
    s->ident = url_redact(s->it->url, false);
    s->part = md_xasprintf("%s.part", s->it->path);
    s->meta = md_xasprintf("%s.part.meta", s->it->path);
    if (u == NULL) {
        s->bad = true;
        fail(s, false, "out of memory (curl_url)");
        return;
    }
    if ((uc = curl_url_set(u, CURLUPART_URL, s->it->url, 0)) != CURLUE_OK ||
        (uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0)) != CURLUE_OK) {
        s->bad = true;
        fail(s, true, "malformed URL (%s)", curl_url_strerror(uc));
        goto out;
    }
    if (strcasecmp(scheme, "file") == 0) {
        s->is_file = true;
        goto out;
    }
    if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) {
        s->bad = true;
        fail(s, true, "unsupported scheme \"%s\" (http, https, file)", scheme);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        s->bad = true;
        fail(s, true, "malformed URL (no host)");
        goto out;
    }
    key = md_xasprintf("%s://%s:%s", scheme, host, port);
    for (size_t i = 0; i < f->nhosts; i++) {
        if (strcasecmp((*keys)[i], key) == 0) {
            s->host = (int)i;
            md_free(key);
            goto out;
        }
    }
    *keys = md_xrealloc(*keys, (f->nhosts + 1) * sizeof **keys);
    (*keys)[f->nhosts] = key;
    s->host = (int)f->nhosts++;
out:
    curl_free(port);
    curl_free(host);
    curl_free(scheme);
    curl_url_cleanup(u);
}

/* fetch_stop: the transfers in flight keep their .part (flushed), the rest never start. */
static void stop_all(struct fetcher *f)
{
    for (size_t i = 0; i < f->n; i++) {
        struct slot *s = &f->slots[i];
        if (s->state == SLOT_DONE)
            continue;
        if (s->state == SLOT_RUNNING) {
            if (s->writing)
                (void)buf_flush(s);
            attempt_end(s);
        }
        snprintf(s->it->error, sizeof s->it->error, "%s: stopped", s->shown);
        finish(s, FETCH_STOPPED);
    }
}

static void *fetch_thread(void *arg)
{
    struct fetcher *f = arg;
    char **keys = NULL;

    for (size_t i = 0; i < f->n; i++) {
        f->slots[i].it = &f->items[i];
        slot_init(f, &f->slots[i], &keys);
    }
    f->host_running = md_xcalloc(f->nhosts + 1, sizeof *f->host_running);
    for (size_t i = 0; i < f->nhosts; i++)
        md_free(keys[i]);
    md_free(keys);

    while (f->finished < f->n) {
        int64_t now, next = INT64_MAX;
        int running = 0, left, timeout = TICK_MS;
        bool ended = false;
        CURLMsg *m;

        if (atomic_load(&f->stopping)) {
            stop_all(f);
            break;
        }
        start_due(f, now_ms());
        curl_multi_perform(f->multi, &running);
        while ((m = curl_multi_info_read(f->multi, &left)) != NULL) {
            char *priv = NULL;
            if (m->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
            on_done((struct slot *)priv, m->data.result);
            ended = true;
        }
        if (ended)
            continue; /* a slot freed, or a restart due now: start before waiting */
        /* start_due just ran: any slot due by now is held back by a limit, and a transfer's end
         * (which wakes the poll) is what frees it. */
        now = now_ms();
        for (size_t i = 0; i < f->n; i++)
            if (f->slots[i].state == SLOT_WAITING && f->slots[i].due_ms > now &&
                f->slots[i].due_ms < next)
                next = f->slots[i].due_ms;
        if (next - now < timeout)
            timeout = (int)(next - now);
        curl_multi_poll(f->multi, NULL, 0, timeout, NULL);
    }
    return NULL;
}

/* ---- the caller's side ----------------------------------------------------------------------- */

void fetch_opts_init(struct fetch_opts *o)
{
    *o = (struct fetch_opts){
        .concurrency = 4,
        .per_host = 2,
        .retries = 5,
        .backoff_ms = 1000,
        .max_backoff_ms = 60000,
        .connect_timeout_ms = 30000,
        .stall_ms = 60000,
        .stall_bytes_per_s = 1024,
        .max_recv_speed = 0,
        .user_agent = NULL,
    };
}

static int opts_check(struct fetch_opts *o, const struct fetch_opts *in)
{
    struct fetch_opts d;

    fetch_opts_init(&d);
    if (in == NULL) {
        *o = d;
        return 0;
    }
    *o = *in;
    if (o->concurrency < 0 || o->per_host < 0 || o->retries < 0 || o->stall_bytes_per_s < 0 ||
        o->max_recv_speed < 0)
        return -EINVAL;
    if (o->concurrency == 0)
        o->concurrency = d.concurrency;
    if (o->per_host == 0)
        o->per_host = d.per_host;
    if (o->backoff_ms == 0)
        o->backoff_ms = d.backoff_ms;
    if (o->max_backoff_ms == 0)
        o->max_backoff_ms = d.max_backoff_ms;
    if (o->connect_timeout_ms == 0)
        o->connect_timeout_ms = d.connect_timeout_ms;
    if (o->stall_ms == 0)
        o->stall_ms = d.stall_ms;
    if (o->stall_bytes_per_s == 0)
        o->stall_bytes_per_s = d.stall_bytes_per_s;
    /* long milliseconds and seconds for curl; a day is more than anyone means */
    if (o->retries > 1000 || o->connect_timeout_ms > 86400000 || o->stall_ms > 86400000 ||
        o->max_backoff_ms > 86400000 || o->backoff_ms > o->max_backoff_ms)
        return -EINVAL;
    return 0;
}

int fetch_start(struct fetcher **out, struct fetch_item *items, size_t n,
                const struct fetch_opts *o)
{
    struct fetcher *f;
    struct fetch_opts opts;
    pthread_condattr_t ca;
    sigset_t block, old;
    int rc;

    *out = NULL;
    if ((rc = opts_check(&opts, o)) < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        struct fetch_item *it = &items[i];
        assert(it->url != NULL && it->path != NULL);
        it->outcome = FETCH_PENDING;
        it->http_code = 0;
        it->etag_new[0] = it->sha256[0] = it->error[0] = '\0';
        it->last_modified_new = it->bytes = it->bytes_received = 0;
        it->attempts = 0;
        it->resumed = it->permanent = false;
        it->seconds = 0;
    }
    /* Reference-counted; balanced in fetch_free. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -ENOMEM; /* what it fails on, in practice (TLS library set-up aside) */
    f = md_xcalloc(1, sizeof *f);
    f->items = items;
    f->n = n;
    f->o = opts;
    f->ua = md_xasprintf("%s", opts.user_agent ? opts.user_agent : "meshd-scrape/" MESHD_VERSION);
    f->o.user_agent = NULL;
    f->slots = md_xcalloc(n ? n : 1, sizeof *f->slots);
    f->q = md_xcalloc(n ? n : 1, sizeof *f->q);
    f->rng = md_rand64() | 1;
    atomic_init(&f->stopping, false);
    atomic_init(&f->bytes, 0);
    if ((f->multi = curl_multi_init()) == NULL) {
        rc = -ENOMEM;
        goto fail_multi;
    }
    curl_multi_setopt(f->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)opts.concurrency);
    curl_multi_setopt(f->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)opts.per_host);
    pthread_mutex_init(&f->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cv, &ca);
    pthread_condattr_destroy(&ca);

    /* The thread inherits the mask: the stop signals go to the caller's thread, and SIGPIPE
     * (thread-directed, from a write to a closed socket) stays pending, harmless, in ours. */
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    rc = -pthread_create(&f->tid, NULL, fetch_thread, f);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0)
        goto fail_thread;
    *out = f;
    return 0;

fail_thread:
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    curl_multi_cleanup(f->multi);
fail_multi:
    md_free(f->q);
    md_free(f->slots);
    md_free(f->ua);
    md_free(f);
    curl_global_cleanup();
    return rc;
}

struct fetch_item *fetch_next(struct fetcher *f, int timeout_ms)
{
    struct fetch_item *it = NULL;
    struct timespec until;

    if (timeout_ms > 0) {
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&f->mu);
    while (f->returned == f->nq && f->returned < f->n && timeout_ms != 0) {
        int rc = timeout_ms < 0 ? pthread_cond_wait(&f->cv, &f->mu)
                                : pthread_cond_timedwait(&f->cv, &f->mu, &until);
        if (rc == ETIMEDOUT)
            break;
    }
    if (f->returned < f->nq)
        it = f->q[f->returned++];
    pthread_mutex_unlock(&f->mu);
    return it;
}

bool fetch_done(const struct fetcher *f)
{
    return f->returned == f->n;
}

int64_t fetch_bytes(const struct fetcher *f)
{
    return atomic_load(&f->bytes);
}

void fetch_stop(struct fetcher *f)
{
    atomic_store(&f->stopping, true);
    curl_multi_wakeup(f->multi);
}

void fetch_free(struct fetcher *f)
{
    if (f == NULL)
        return;
    fetch_stop(f);
    pthread_join(f->tid, NULL);
    for (size_t i = 0; i < f->n; i++) {
        struct slot *s = &f->slots[i];
        EVP_MD_CTX_free(s->md);
        md_free(s->shown);
        md_free(s->ident);
        md_free(s->part);
        md_free(s->meta);
    }
    md_free(f->host_running);
    curl_multi_cleanup(f->multi);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    md_free(f->q);
    md_free(f->slots);
    md_free(f->ua);
    md_free(f);
    curl_global_cleanup();
}
