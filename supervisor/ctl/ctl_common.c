/* ctl_common.c - what several meshctl subcommands share. */
#include <stdio.h>
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

const char *ctl_opt_value(const char *name, int argc, char **argv, int *i, bool *bad)
{
    size_t n = strlen(name);
    const char *a = argv[*i];

    if (strncmp(a, name, n) != 0)
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        fprintf(stderr, "meshctl %s: %s needs a value\n", argv[0], name);
        *bad = true;
        return NULL;
    }
    return argv[++*i];
}
