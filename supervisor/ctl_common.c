/* ctl_common.c - what several meshctl subcommands share. */
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "ctl.h"
#include "meshd/md_alloc.h"

const char *ctl_default_config(void)
{
    const char *p = getenv("MESHD_CONFIG");
    return p && *p ? p : "conf/meshd.yaml";
}

char *ctl_redacted_target(const char *url)
{
    const char *host = "", *port = "", *db = "", *user = "";
    PQconninfoOption *opts = PQconninfoParse(url, NULL);
    char *s;

    if (opts == NULL)
        return md_xstrdup("(invalid connection string)");
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (o->val == NULL || o->val[0] == '\0')
            continue;
        if (strcmp(o->keyword, "host") == 0)
            host = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
        else if (strcmp(o->keyword, "dbname") == 0)
            db = o->val;
        else if (strcmp(o->keyword, "user") == 0)
            user = o->val;
    }
    s = md_xasprintf("%s%s%s%s%s/%s", user, *user ? "@" : "", *host ? host : "(default host)",
                     *port ? ":" : "", port, *db ? db : "(default db)");
    PQconninfoFree(opts);
    return s;
}
