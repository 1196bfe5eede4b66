/* ctl_publish.c - `meshctl publish TYPE [PAYLOAD] [--url URL] [--source NAME] [--priority N]
 * [--to-node NAME] [--to-job NAME]`: put a message on the registry's message bus, so an
 * `on: TYPE` job (on any node, or only the one named) runs for it.
 *
 * PAYLOAD is JSON (default {}), checked here so a typo is an error at the prompt, not a failed
 * run later; so are the priority (a whole number 0..1000000, lower runs first, default 100) and
 * the target names (the job/node name rule).  The row is inserted pending; the table's trigger
 * sends NOTIFY agent_messages, so the consumers wake at once.  A target the registry has never
 * seen is only warned about: the node may simply not have started yet, and the message waits
 * for it.  URL defaults to $DATABASE_URL.  Prints the message id.  Exit 0 ok, 1 database
 * error, 2 usage (a bad type, bad JSON, a bad priority or name, no database).
 */
#include <errno.h>
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
#include "meshd/md_status.h"

static void publish_usage(FILE *f)
{
    fputs("usage: meshctl publish TYPE [PAYLOAD_JSON] [--url URL] [--source NAME]\n"
          "                       [--priority N] [--to-node NODE] [--to-job JOB]\n"
          "  TYPE: a letter, then letters, digits, '_', '.', ':' or '-' (as in on: TYPE)\n"
          "  PAYLOAD_JSON defaults to {}; URL defaults to $DATABASE_URL\n"
          "  --priority N: 0 to 1000000, lower runs first (default 100)\n"
          "  --to-node NODE: only the meshd with node.name NODE takes it (default: any node)\n"
          "  --to-job JOB: only the on: job named JOB takes it (default: any on: TYPE job)\n",
          f);
}

/* "0".."1000000" exactly: digits only, no sign, no spaces. */
static bool parse_priority(const char *s, int *out)
{
    char *end;
    long v;

    if (s[0] < '0' || s[0] > '9')
        return false;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < MD_STATUS_PRIORITY_MIN || v > MD_STATUS_PRIORITY_MAX)
        return false;
    *out = (int)v;
    return true;
}

int ctl_publish(int argc, char **argv)
{
    const char *type = NULL, *payload = "{}", *url = NULL, *source = "meshctl", *v;
    const char *to_node = NULL, *to_job = NULL, *prio_s = NULL;
    const char *params[6];
    char prio_buf[16];
    PGconn *conn = NULL;
    PGresult *res = NULL;
    cJSON *json;
    char *target = NULL, *why = NULL;
    int rc = 2, npos = 0, prio = MD_STATUS_PRIORITY_DEFAULT;
    bool bad = false;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            publish_usage(stdout);
            return 0;
        }
        if ((v = ctl_opt_value("--url", argc, argv, &i, &bad)) != NULL)
            url = v;
        else if ((v = ctl_opt_value("--source", argc, argv, &i, &bad)) != NULL)
            source = v;
        else if ((v = ctl_opt_value("--priority", argc, argv, &i, &bad)) != NULL)
            prio_s = v;
        else if ((v = ctl_opt_value("--to-node", argc, argv, &i, &bad)) != NULL)
            to_node = v;
        else if ((v = ctl_opt_value("--to-job", argc, argv, &i, &bad)) != NULL)
            to_job = v;
        else if (bad)
            return 2;
        else if (argv[i][0] == '-' && argv[i][1] == '-') {
            fprintf(stderr, "meshctl publish: unknown option '%s'\n", argv[i]);
            publish_usage(stderr);
            return 2;
        } else if (npos++ == 0)
            type = argv[i];
        else if (npos == 2)
            payload = argv[i];
        else {
            publish_usage(stderr);
            return 2;
        }
    }
    if (type == NULL) {
        publish_usage(stderr);
        return 2;
    }
    if (!md_event_name_ok(type)) {
        fprintf(stderr,
                "meshctl publish: bad message type '%s' (a letter, then letters, "
                "digits, '_', '.', ':' or '-')\n",
                type);
        return 2;
    }
    if (prio_s != NULL && !parse_priority(prio_s, &prio)) {
        fprintf(stderr,
                "meshctl publish: --priority must be a whole number from %d to %d, not '%s'\n",
                MD_STATUS_PRIORITY_MIN, MD_STATUS_PRIORITY_MAX, prio_s);
        return 2;
    }
    if ((to_node != NULL && !md_name_ok(to_node)) || (to_job != NULL && !md_name_ok(to_job))) {
        bool node_bad = to_node != NULL && !md_name_ok(to_node);
        fprintf(stderr,
                "meshctl publish: --to-%s: bad %s name '%s' (1 to 64 letters, digits, '_', '.' "
                "or '-')\n",
                node_bad ? "node" : "job", node_bad ? "node" : "job", node_bad ? to_node : to_job);
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
    snprintf(prio_buf, sizeof prio_buf, "%d", prio);
    params[0] = type;
    params[1] = payload;
    params[2] = source;
    params[3] = prio_buf;
    params[4] = to_node;
    params[5] = to_job;
    /* One round trip: the insert, and whether the registry knows the target (a node row for
     * to_node; a job row of that name, on that node when both are given, for to_job). */
    res = PQexecParams(conn,
                       "WITH m AS (INSERT INTO agent_messages (type, payload, source, priority, "
                       "to_node, to_job) VALUES ($1, $2::jsonb, $3, $4::integer, $5, $6) "
                       "RETURNING id) "
                       "SELECT m.id, $5::text IS NULL OR EXISTS (SELECT 1 FROM agent_registry "
                       "WHERE job IS NULL AND node = $5), $6::text IS NULL OR EXISTS (SELECT 1 "
                       "FROM agent_registry WHERE job = $6 AND ($5::text IS NULL OR node = $5)) "
                       "FROM m",
                       6, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        fprintf(stderr, "meshctl publish: %s: %s", target, PQresultErrorMessage(res));
        goto out;
    }
    printf("%s\n", PQgetvalue(res, 0, 0));
    if (strcmp(PQgetvalue(res, 0, 1), "t") != 0)
        fprintf(stderr,
                "meshctl publish: warning: no node '%s' in the registry yet; message %s stays "
                "pending until a meshd named %s takes it\n",
                to_node, PQgetvalue(res, 0, 0), to_node);
    else if (strcmp(PQgetvalue(res, 0, 2), "t") != 0)
        fprintf(stderr,
                "meshctl publish: warning: no job '%s'%s%s in the registry yet; message %s "
                "stays pending until an on: %s job of that name takes it\n",
                to_job, to_node ? " on node " : "", to_node ? to_node : "", PQgetvalue(res, 0, 0),
                type);
    rc = 0;
out:
    PQclear(res);
    PQfinish(conn);
    md_free(why);
    md_free(target);
    return rc;
}
