/* reader.c - see reader.h.  libarchive for zip (the seekable reader, which reads the central
 * directory first, so a zip cut short is refused before a byte of it is used) and gzip (the
 * raw format behind the gzip filter); plain files through read(2).
 */
#include "reader.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "meshd/md_alloc.h"

struct reader {
    struct archive *a; /* NULL: plain */
    int fd;            /* plain */
    int64_t pos;       /* plain: bytes read */
    char name[400];
    char path[128]; /* the file's base name, cut */
};

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int sniff(const char *path, char *kind, size_t kcap, struct md_error *err)
{
    unsigned char m[4] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return md_error_set(err, -errno, 0, 0, "%s: %s", path, strerror(errno));
    n = read(fd, m, sizeof m);
    close(fd);
    if (n >= 4 && m[0] == 'P' && m[1] == 'K' && m[2] == 3 && m[3] == 4)
        snprintf(kind, kcap, "zip");
    else if (n >= 4 && m[0] == 'P' && m[1] == 'K' && m[2] == 5 && m[3] == 6)
        snprintf(kind, kcap, "zip"); /* an empty zip: refused below for want of a member */
    else if (n >= 2 && m[0] == 0x1f && m[1] == 0x8b)
        snprintf(kind, kcap, "gzip");
    else
        snprintf(kind, kcap, "none");
    return 0;
}

static bool member_wanted(const char *name, const char *glob)
{
    const char *b = base_name(name);
    size_t n = strlen(b);

    if (n == 0) /* a directory */
        return false;
    if (glob != NULL) { /* case-insensitive: FNM_CASEFOLD is a GNU extension */
        char lb[256], lg[256];
        size_t i;
        for (i = 0; b[i] && i + 1 < sizeof lb; i++)
            lb[i] = (char)tolower((unsigned char)b[i]);
        lb[i] = '\0';
        for (i = 0; glob[i] && i + 1 < sizeof lg; i++)
            lg[i] = (char)tolower((unsigned char)glob[i]);
        lg[i] = '\0';
        return fnmatch(lg, lb, 0) == 0;
    }
    return (n > 4 && (strcasecmp(b + n - 4, ".csv") == 0 || strcasecmp(b + n - 4, ".txt") == 0));
}

/* Positions the zip on its member. */
static int zip_find(struct reader *r, const char *member, struct md_error *err)
{
    struct archive_entry *e;
    int rc, seen = 0;
    char first[128] = "";

    while ((rc = archive_read_next_header(r->a, &e)) == ARCHIVE_OK || rc == ARCHIVE_WARN) {
        const char *name = archive_entry_pathname(e);
        if (name == NULL)
            continue;
        if (seen++ == 0)
            snprintf(first, sizeof first, "%s", name);
        if (member_wanted(name, member)) {
            snprintf(r->name, sizeof r->name, "%.200s (in %s)", name, r->path);
            return 0;
        }
    }
    if (rc != ARCHIVE_EOF)
        return md_error_set(err, MD_EPARSE, 0, 0, "%s: not a readable zip: %s", r->path,
                            archive_error_string(r->a));
    if (seen == 0)
        return md_error_set(err, MD_EPARSE, 0, 0, "%s: the zip holds no file", r->path);
    return md_error_set(err, MD_EPARSE, 0, 0, "%s: no member matches %s (the first is %s)", r->path,
                        member ? member : "*.csv or *.txt", first);
}

int reader_open(struct reader **out, const char *path, const char *archive, const char *member,
                struct md_error *err)
{
    struct reader *r = md_xcalloc(1, sizeof *r);
    char kind[8];
    int rc;

    *out = NULL;
    r->fd = -1;
    snprintf(r->path, sizeof r->path, "%s", base_name(path));
    snprintf(r->name, sizeof r->name, "%s", base_name(path));
    if (archive == NULL || strcmp(archive, "auto") == 0) {
        if ((rc = sniff(path, kind, sizeof kind, err)) < 0)
            goto fail;
    } else {
        snprintf(kind, sizeof kind, "%s", archive);
    }
    if (strcmp(kind, "none") == 0) {
        if ((r->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
            rc = md_error_set(err, -errno, 0, 0, "%s: %s", path, strerror(errno));
            goto fail;
        }
        *out = r;
        return 0;
    }
    r->a = archive_read_new();
    if (strcmp(kind, "zip") == 0) {
        archive_read_support_format_zip_seekable(r->a);
    } else {
        archive_read_support_filter_gzip(r->a);
        archive_read_support_format_raw(r->a);
    }
    if (archive_read_open_filename(r->a, path, 256 * 1024) != ARCHIVE_OK) {
        rc = md_error_set(err, MD_EPARSE, 0, 0, "%s: not a readable %s file: %s", r->path, kind,
                          archive_error_string(r->a));
        goto fail;
    }
    if (strcmp(kind, "zip") == 0) {
        if ((rc = zip_find(r, member, err)) < 0)
            goto fail;
    } else {
        struct archive_entry *e;
        if (archive_read_next_header(r->a, &e) != ARCHIVE_OK) {
            rc = md_error_set(err, MD_EPARSE, 0, 0, "%s: not a readable gzip file: %s", r->path,
                              archive_error_string(r->a));
            goto fail;
        }
        snprintf(r->name, sizeof r->name, "%s (gunzipped)", r->path);
    }
    *out = r;
    return 0;
fail:
    reader_close(r);
    return rc;
}

ssize_t reader_read(struct reader *r, char *buf, size_t cap, struct md_error *err)
{
    ssize_t n;

    if (r->a == NULL) {
        do
            n = read(r->fd, buf, cap);
        while (n < 0 && errno == EINTR);
        if (n < 0)
            return md_error_set(err, -errno, 0, 0, "%s: %s", r->name, strerror(errno));
        r->pos += n;
        return n;
    }
    n = archive_read_data(r->a, buf, cap);
    if (n < 0)
        return md_error_set(err, MD_EPARSE, 0, 0, "%s: %s", r->name,
                            archive_error_string(r->a) ? archive_error_string(r->a)
                                                       : "unreadable archive data");
    return n;
}

const char *reader_name(const struct reader *r)
{
    return r->name;
}

int64_t reader_position(const struct reader *r)
{
    return r->a ? archive_filter_bytes(r->a, -1) : r->pos;
}

bool reader_is_archive(const struct reader *r)
{
    return r->a != NULL;
}

void reader_close(struct reader *r)
{
    if (r == NULL)
        return;
    if (r->a != NULL)
        archive_read_free(r->a);
    if (r->fd >= 0)
        close(r->fd);
    md_free(r);
}
