/* fuzz_journal.c - libFuzzer target: arbitrary bytes as a segment file -> md_journal_open.
 *
 * The first input byte picks the size bound (small bounds run drop rounds and segment
 * rewrites on what was recovered) and whether a second segment follows; the rest is written as
 * segment file(s) into a fresh temp dir.  Then: open (recovery must never crash, whatever the
 * bytes), visit every pending event checking the visit agrees with md_journal_count and ids
 * rise, append one event (it must land on a clean line after the torn-tail cut), reopen and
 * find it again, close.  ASan/UBSan (MESHD_FUZZ=ON) catch memory errors and leaks.
 */
#include "meshd/md_journal.h"
#include "meshd/md_log.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

struct ctx {
    uint64_t last;
    size_t n;
};

static int on_visit(void *ud, uint64_t id, enum md_jprio prio, const char *json, size_t len)
{
    struct ctx *c = ud;

    if (id <= c->last || (unsigned)prio >= MD_JPRIO_COUNT || len == 0 || json[len] != '\0' ||
        memchr(json, '\n', len) != NULL)
        abort();
    c->last = id;
    c->n++;
    return 0;
}

static void write_file(const char *name, const uint8_t *p, size_t n)
{
    char path[128];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f == NULL)
        abort();
    if (n > 0 && fwrite(p, 1, n, f) != n)
        abort();
    fclose(f);
}

static void empty_dir(void)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        char path[512];
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        unlink(path);
    }
    closedir(d);
}

static void remove_dir(void)
{
    empty_dir();
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint64_t bounds[] = {0, 64, 300, 4096};
    struct md_journal_opts o = {0, 512, NULL, NULL};
    struct md_journal *j;
    struct ctx c = {0, 0};
    uint64_t id;
    size_t half;

    if (dir[0] == '\0') {
        md_log_init("fuzz_journal", MD_LOG_ERROR);
        snprintf(dir, sizeof dir, "/tmp/fuzz_journal.XXXXXX");
        if (mkdtemp(dir) == NULL)
            abort();
        atexit(remove_dir);
    }
    if (size == 0)
        return 0;
    o.max_bytes = bounds[data[0] & 3];
    half = (data[0] & 4) ? (size - 1) / 2 : size - 1;
    data++, size--;
    empty_dir();
    write_file("0000000000000001.seg", data, half);
    if (half < size)
        write_file("0000000000000100.seg", data + half, size - half);

    if (md_journal_open(dir, &o, &j) != 0)
        abort();
    if ((size_t)md_journal_pending(j, 0, on_visit, &c, (size_t)-1) != md_journal_count(j) ||
        c.n != md_journal_count(j))
        abort();
    if (md_journal_append(j, MD_JPRIO_RUN, "{\"x\":1}", 7, &id) != 0 || id <= c.last)
        abort();
    md_journal_close(j);

    if (md_journal_open(dir, &o, &j) != 0)
        abort();
    c.last = 0;
    c.n = 0;
    if (md_journal_pending(j, id - 1, on_visit, &c, 1) != 1 || c.last != id)
        abort();
    md_journal_close(j);
    return 0;
}
