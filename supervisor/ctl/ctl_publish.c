/* ctl_publish.c - `meshctl publish TYPE [PAYLOAD] [--url URL] [--source NAME]`: put a message
 * on the registry's message bus, so the `on: TYPE` jobs (on any node) run for it.
 *
 * PAYLOAD is JSON (default {}), checked here so a typo is an error at the prompt, not a failed
 * run later.  The row is inserted pending; the table's trigger sends NOTIFY agent_messages, so
 * the consumers wake at once.  URL defaults to $DATABASE_URL.  Prints the message id.  Exit 0
 * ok, 1 database error, 2 usage (a bad type, bad JSON, no database).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "ctl.h"
#include "meshd/md_alloc.h"
#include "meshd/md_config.h"
#include "meshd/md_err.h"
#include "meshd/md_pq.h"

static void publish_usage(void)
{
    fputs("usage: meshctl publish TYPE [PAYLOAD_JSON] [--url URL] [--source NAME]\n"
          "  TYPE: a letter, then letters, digits, '_', '.', ':' or '-' (as in on: TYPE)\n"
          "  PAYLOAD_JSON defaults to {}; URL defaults to $DATABASE_URL\n",
          stderr);
}

int ctl_publish(int argc, char **argv)
{
    const char *type = NULL, *payload = "{}", *url = NULL, *source = "meshctl", *v;
    const char *params[3];
    PGconn *conn = NULL;
    PGresult *res = NULL;
    cJSON *json;
    char *target = NULL, *why = NULL;
    int rc = 2, npos = 0;
    bool bad = false;

    for (int i = 1; i < argc; i++) {
        if ((v = ctl_opt_value("--url", argc, argv, &i, &bad)) != NULL)
            url = v;
        else if ((v = ctl_opt_value("--source", argc, argv, &i, &bad)) != NULL)
            source = v;
        else if (bad)
            return 2;
        else if (argv[i][0] == '-' && argv[i][1] == '-') {
            publish_usage();
            return 2;
        } else if (npos++ == 0)
            type = argv[i];
        else if (npos == 2)
            payload = argv[i];
        else {
            publish_usage();
            return 2;
        }
    }
    if (type == NULL) {
        publish_usage();
        return 2;
    }
    if (!md_event_name_ok(type)) {
        fprintf(stderr,
                "meshctl publish: bad message type '%s' (a letter, then letters, "
                "digits, '_', '.', ':' or '-')\n",
                type);
        return 2;
    }
    json = cJSON_Parse(payload);
    if (json == NULL) {
        fprintf(stderr, "meshctl publish: the payload is not JSON: %s\n", payload);
        return 2;
    }
    cJSON_Delete(json);
    url = md_pq_url(url, NULL);
    if (url == NULL) {
        fputs("meshctl publish: no database: pass --url or set DATABASE_URL\n", stderr);
        return 2;
    }
    target = md_pq_target(url, MD_PQ_TARGET_URL);
    switch (md_pq_connect(url, NULL, &conn, &why)) {
    case 0:
        break;
    case MD_ECONFIG: /* a bad URL is a usage error */
        fprintf(stderr, "meshctl publish: %s\n", why);
        goto out;
    default:
        fprintf(stderr, "meshctl publish: %s: %s", target, why);
        rc = 1;
        goto out;
    }
    rc = 1;
    params[0] = type;
    params[1] = payload;
    params[2] = source;
    res = PQexecParams(conn,
                       "INSERT INTO agent_messages (type, payload, source) "
                       "VALUES ($1, $2::jsonb, $3) RETURNING id",
                       3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        fprintf(stderr, "meshctl publish: %s: %s", target, PQresultErrorMessage(res));
        goto out;
    }
    printf("%s\n", PQgetvalue(res, 0, 0));
    rc = 0;
out:
    PQclear(res);
    PQfinish(conn);
    md_free(why);
    md_free(target);
    return rc;
}
