/* ctl.h - meshctl's subcommands.  Each takes the arguments after its own name (argv[0] is the
 * subcommand) and returns the process exit code: 0 ok, 2 bad input (errors printed to stderr). */
#ifndef MESHD_CTL_H
#define MESHD_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* meshctl check [FILE]: validate a schedule, print errors and warnings. */
int ctl_check(int argc, char **argv);
/* meshctl next 'EXPR' [--tz ZONE] [--from ISO8601] [--count N]
 * meshctl next --job NAME [FILE] [--from ISO8601] [--count N] */
int ctl_next(int argc, char **argv);

/* meshctl migrate [--url URL]: apply pending registry migrations (0 ok, 1 db error, 2 usage).
 * URL defaults to $DATABASE_URL. */
int ctl_migrate(int argc, char **argv);

/* meshctl health [--url URL] [--config FILE] [--json] [--stale D] [--slow D]: the fleet health
 * check against the registry (0 healthy, 1 unhealthy, 2 could not check). */
int ctl_health(int argc, char **argv);

/* The client commands, which ask a running meshd over its HTTP API (docs/api.md, docs/meshctl.md).
 * Common options: --socket PATH (default <node.state_dir>/meshd.sock of --config FILE) or
 * --url http://HOST:PORT with --token T (default $MESHD_API_TOKEN).  They return 0 ok, 1 meshd
 * refused the action / answered an error / reports itself unhealthy, 2 usage, 3 meshd cannot be
 * reached, 4 not authorized.  Blocking (libcurl's easy interface). */

/* meshctl status [JOB] [--json]: the node line and a table of jobs, or /status pretty-printed. */
int ctl_status(int argc, char **argv);
/* meshctl logs JOB [--json]: the last output lines of the job's recent runs. */
int ctl_logs(int argc, char **argv);
/* meshctl run|pause|resume|restart|stop JOB [--json], meshctl reload [--json]: argv[0] names
 * the action; it must be one of these six. */
int ctl_action(int argc, char **argv);

/* meshctl publish TYPE [PAYLOAD] [--url URL] [--source NAME] [--priority N] [--to-node NODE]
 * [--to-job JOB]: put a message on the bus (agent_messages); prints its id.  0 ok, 1 database
 * error, 2 usage. */
int ctl_publish(int argc, char **argv);

/* "--name VALUE" or "--name=VALUE" at argv[*i] (argv[0] is the subcommand): the value
 * (borrowed) or NULL; advances *i past a separate value.  Sets *bad, after printing why, when
 * the option is there but its value is missing. */
const char *ctl_opt_value(const char *name, int argc, char **argv, int *i, bool *bad);

/* The default config path: $MESHD_CONFIG, else "conf/meshd.yaml". */
const char *ctl_default_config(void);

/* A span of time for people, into buf (32 bytes are enough), in one of two styles that share
 * one ladder of units (ms, s, m+s, h+m, d+h).
 * ctl_fmt_span: how long ago, until, or how long a run took (meshctl status), as a glance
 * needs it: 450ms, 2.5s, 45s, 3m12s, 5h07m, 3d04h.  A tenth of a second below 10 s; 0 or less
 * (or NaN) is "0s".
 * ctl_fmt_ms: a limit or an age in whole milliseconds (meshctl health), so a configured "5m"
 * reads back as 5m: 250ms, 4.2s, 10s, 3m12s, 5m, 5h07m, 26h, 3d04h.  A tenth below a minute, a
 * zero smaller unit dropped, hours up to 48. */
void ctl_fmt_span(char *buf, size_t size, double secs);
void ctl_fmt_ms(char *buf, size_t size, uint64_t ms);

#endif
