/* md_pq.h - libpq helpers shared by every binary: a connection string's target for people,
 * and the blocking connect of the command-line tools.
 *
 * A connection string (a conninfo "host=... password=..." or a URI "postgresql://u:pw@h/db")
 * may carry a password, so it is never printed as is: logs and messages show its target, made
 * of host, port, dbname and user only.
 *
 * Two objects implement this header, on purpose.  pq.c (md_pq_target) calls no libpq function
 * but PQconninfoParse and PQconninfoFree, which the daemon's lazy libpq (pq_lazy.c) provides:
 * meshd links it through db.c and still has no libpq DT_NEEDED.  pq_connect.c (md_pq_url,
 * md_pq_connect) calls PQconnectdb, which meshd has no trampoline for: meshd_common is a
 * static archive, so that object is linked only into the binaries that call it, which link
 * libpq themselves.
 */
#ifndef MESHD_MD_PQ_H
#define MESHD_MD_PQ_H

#include <libpq-fe.h>

#include "meshd/md_err.h"

/* The two ways a target is written. */
enum md_pq_form {
    /* "user@host:port/dbname", parts the string leaves to libpq's defaults shown as
     * "(default host)" and "(default db)" or left out: meshctl's messages and output. */
    MD_PQ_TARGET_URL,
    /* "host=... port=... dbname=... user=...", hostaddr standing in for a missing host, only
     * the parts the string sets, "(libpq defaults)" when it sets none: the daemon's logs
     * (md_db_target). */
    MD_PQ_TARGET_CONNINFO,
};

/* The target of connection string conninfo (borrowed), written in form, never with the
 * password.  A string libpq cannot parse gives "(invalid connection string)": libpq's parse
 * error may quote the password.  The daemon must have loaded libpq first (md_db_open does).
 * Returns a new string; the caller frees it with md_free. */
char *md_pq_target(const char *conninfo, enum md_pq_form form);

/* The connection string a command-line tool uses: url when it is not NULL, else
 * $DATABASE_URL; when that one is unset or empty, fallback (say, the config's registry.url; NULL
 * for none).  An empty url is not replaced by $DATABASE_URL, only by fallback.  Returns a
 * borrowed string, or NULL when all of them are unset or empty (no database was named). */
const char *md_pq_url(const char *url, const char *fallback);

/* Connects to url (borrowed, not NULL), blocking: for command-line tools, never inside an
 * event loop.  connect_timeout is the connect_timeout in seconds that applies unless url sets
 * its own, or NULL to pass url to libpq alone (PQconnectdb).
 * Returns 0 with *conn connected: the caller PQfinish-es it.  Otherwise *conn is NULL and *why
 * (the caller frees it with md_free) says what went wrong, never quoting the password:
 *   MD_ECONFIG  url is not a valid libpq connection string ("the database URL is not a valid
 *               libpq connection string": libpq's parse error may quote the password);
 *   MD_EDB      libpq could not connect: its message as is, which names host and port, may
 *               have several lines and ends with a newline.
 * Prefix the message with md_pq_target(url, MD_PQ_TARGET_URL) to say where. */
int md_pq_connect(const char *url, const char *connect_timeout, PGconn **conn,
                  char **why) MD_MUSTCHECK;

#endif
