/* pq_connect.c - the blocking connect of meshctl and the other command-line tools (md_pq.h).
 *
 * Apart from pq.c because it calls PQconnectdb: meshd, which links pq.o through db.c, has
 * no libpq but the lazy trampolines of pq_lazy.c, and none for the blocking connect. */
#include <stdlib.h>

#include <libpq-fe.h>

#include "meshd/md_alloc.h"
#include "meshd/md_pq.h"

const char *md_pq_url(const char *url, const char *fallback)
{
    if (url == NULL)
        url = getenv("DATABASE_URL");
    if (url == NULL || url[0] == '\0')
        url = fallback;
    return url != NULL && url[0] != '\0' ? url : NULL;
}

int md_pq_connect(const char *url, const char *connect_timeout, PGconn **conn, char **why)
{
    PQconninfoOption *parsed;
    PGconn *c;

    *conn = NULL;
    *why = NULL;
    /* libpq's parse errors may quote the string, password included: say only that it is bad. */
    parsed = PQconninfoParse(url, NULL);
    if (parsed == NULL) {
        *why = md_xstrdup("the database URL is not a valid libpq connection string");
        return MD_ECONFIG;
    }
    PQconninfoFree(parsed);
    if (connect_timeout == NULL) {
        c = PQconnectdb(url);
    } else {
        /* url goes in as dbname with expand_dbname: its own connect_timeout, later in the
         * list, overrides the default. */
        const char *keys[] = {"connect_timeout", "dbname", NULL};
        const char *vals[] = {connect_timeout, url, NULL};
        c = PQconnectdbParams(keys, vals, 1);
    }
    if (PQstatus(c) != CONNECTION_OK) {
        /* libpq's connect errors name host and port, never the password. */
        *why = md_xstrdup(PQerrorMessage(c));
        PQfinish(c);
        return MD_EDB;
    }
    *conn = c;
    return 0;
}
