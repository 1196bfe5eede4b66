/* pq.c - a connection string's target for people (md_pq.h).
 *
 * Only PQconninfoParse and PQconninfoFree are called here: db.c is linked into meshd, which
 * has no libpq but the trampolines of pq_lazy.c, and this object comes along with db.c. */
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "meshd/md_alloc.h"
#include "meshd/md_pq.h"

/* The parts of a connection string a target shows; NULL when not set (or set empty). */
struct pq_parts {
    const char *host, *hostaddr, *port, *dbname, *user;
};

static char *url_form(const struct pq_parts *p)
{
    return md_xasprintf("%s%s%s%s%s/%s", p->user ? p->user : "", p->user ? "@" : "",
                        p->host ? p->host : "(default host)", p->port ? ":" : "",
                        p->port ? p->port : "", p->dbname ? p->dbname : "(default db)");
}

/* At most 511 bytes: the part that goes past them is cut there, and those after it are left
 * out. */
static char *conninfo_form(const struct pq_parts *p)
{
    const char *keys[] = {"host", "port", "dbname", "user"};
    const char *vals[] = {p->host != NULL ? p->host : p->hostaddr, p->port, p->dbname, p->user};
    char buf[512];
    size_t n = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < MD_ARRAY_SIZE(keys); i++) {
        if (vals[i] == NULL)
            continue;
        int r = snprintf(buf + n, sizeof buf - n, "%s%s=%s", n > 0 ? " " : "", keys[i], vals[i]);
        if (r < 0 || (size_t)r >= sizeof buf - n)
            break;
        n += (size_t)r;
    }
    return md_xstrdup(n > 0 ? buf : "(libpq defaults)");
}

char *md_pq_target(const char *conninfo, enum md_pq_form form)
{
    struct pq_parts p = {0};
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
    char *s;

    if (opts == NULL)
        return md_xstrdup("(invalid connection string)");
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (o->val == NULL || o->val[0] == '\0')
            continue;
        if (strcmp(o->keyword, "host") == 0)
            p.host = o->val;
        else if (strcmp(o->keyword, "hostaddr") == 0)
            p.hostaddr = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            p.port = o->val;
        else if (strcmp(o->keyword, "dbname") == 0)
            p.dbname = o->val;
        else if (strcmp(o->keyword, "user") == 0)
            p.user = o->val;
    }
    s = form == MD_PQ_TARGET_URL ? url_form(&p) : conninfo_form(&p);
    PQconninfoFree(opts);
    return s;
}
