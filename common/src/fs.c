/* fs.c - small file-system helpers (md_fs.h). */
#include "meshd/md_fs.h"

#include <errno.h>
#include <sys/stat.h>

#include "meshd/md_alloc.h"

int md_mkdir_p(const char *dir, mode_t mode)
{
    char *p;
    int rc = 0;

    if (dir[0] == '\0')
        return -EINVAL;
    p = md_xstrdup(dir);
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, mode) < 0 && errno != EEXIST) {
            rc = -errno;
            break;
        }
        *s = c;
        if (c == '\0')
            break;
    }
    md_free(p);
    return rc;
}
