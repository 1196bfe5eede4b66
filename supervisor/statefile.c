/* statefile.c - statefile.h. */
#include "statefile.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "meshd/md_alloc.h"
#include "meshd/md_log.h"

void sup_statefile_save(const char *path, const struct sup_state_entry *v, size_t n)
{
    char *tmp = md_xasprintf("%s.tmp", path);
    FILE *f = fopen(tmp, "we");

    if (f == NULL) {
        md_log_err(MD_LOG_WARN, -errno, "state not saved: path=%s", tmp);
        md_free(tmp);
        return;
    }
    fputs("# meshd schedule state: job, last handled slot (Unix seconds), [paused]\n", f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s\t%" PRId64 "%s\n", v[i].job, v[i].last_slot, v[i].paused ? "\tpaused" : "");
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        md_log_err(MD_LOG_WARN, -errno, "state not saved: path=%s", path);
    md_free(tmp);
}

void sup_statefile_load(const char *path,
                        void (*cb)(void *ud, const char *job, int64_t last_slot, bool paused),
                        void *ud)
{
    FILE *f = fopen(path, "re");
    char line[512];

    if (f == NULL) {
        if (errno != ENOENT)
            md_log_err(MD_LOG_WARN, -errno, "state not read: path=%s", path);
        return;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        char *tab = strchr(line, '\t'), *end;
        long long v;
        if (line[0] == '#' || tab == NULL)
            continue;
        *tab = '\0';
        errno = 0;
        v = strtoll(tab + 1, &end, 10);
        if (errno != 0 || end == tab + 1 || v < 0)
            continue;
        cb(ud, line, v, strncmp(end, "\tpaused", 7) == 0);
    }
    fclose(f);
}
