/* ctl.h - meshctl's subcommands.  Each takes the arguments after its own name (argv[0] is the
 * subcommand) and returns the process exit code: 0 ok, 2 bad input (errors printed to stderr). */
#ifndef MESHD_CTL_H
#define MESHD_CTL_H

/* meshctl check [FILE]: validate a schedule, print errors and warnings. */
int ctl_check(int argc, char **argv);
/* meshctl next 'EXPR' [--tz ZONE] [--from ISO8601] [--count N]
 * meshctl next --job NAME [FILE] [--from ISO8601] [--count N] */
int ctl_next(int argc, char **argv);

/* meshctl migrate [--url URL]: apply pending registry migrations (0 ok, 1 db error, 2 usage).
 * URL defaults to $DATABASE_URL. */
int ctl_migrate(int argc, char **argv);

/* The default config path: $MESHD_CONFIG, else "conf/meshd.yaml". */
const char *ctl_default_config(void);

#endif
