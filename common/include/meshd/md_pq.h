/* md_pq.h - libpq helpers shared by every binary: a connection string's target for people.
 *
 * A connection string (a conninfo "host=... password=..." or a URI "postgresql://u:pw@h/db")
 * may carry a password, so it is never printed as is: logs and messages show its target, made
 * of host, port, dbname and user only.
 *
 * pq.c calls no libpq function but PQconninfoParse and PQconninfoFree, which the daemon's lazy
 * libpq (pq_lazy.c) provides: meshd links it through db.c and still has no libpq DT_NEEDED.
 */
#ifndef MESHD_MD_PQ_H
#define MESHD_MD_PQ_H

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

#endif
