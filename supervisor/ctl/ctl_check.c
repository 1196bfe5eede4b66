/* ctl_check.c - `meshctl check [FILE]`: load a schedule the way meshd would and say what is
 * wrong with it.
 *
 * Every error and warning goes to stderr as "FILE:LINE:COL: error: MESSAGE", in file order,
 * so editors and CI can jump to them.  The one-line summary goes to stdout on success
 * ("conf/meshd.yaml: ok, 5 jobs, 1 warning") and to stderr on failure.  Exit 0 when the file
 * is valid (warnings allowed), 2 when it has errors or cannot be read.
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "meshd/md_config.h"

int ctl_check(int argc, char **argv)
{
    struct md_config *cfg = NULL;
    struct md_diag diag;
    const char *file;
    int rc;

    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        fputs("usage: meshctl check [FILE]\n", stderr);
        return 2;
    }
    file = argc == 2 ? argv[1] : ctl_default_config();
    md_diag_init(&diag);
    rc = md_config_load(file, &cfg, &diag);
    md_diag_print(&diag, file, stderr);
    if (rc == 0) {
        printf("%s: ok, %zu job%s, %zu warning%s\n", file, cfg->njobs, cfg->njobs == 1 ? "" : "s",
               diag.nwarnings, diag.nwarnings == 1 ? "" : "s");
    } else {
        fprintf(stderr, "%s: %zu error%s, %zu warning%s\n", file, diag.nerrors,
                diag.nerrors == 1 ? "" : "s", diag.nwarnings, diag.nwarnings == 1 ? "" : "s");
    }
    md_config_free(cfg);
    md_diag_cleanup(&diag);
    return rc == 0 ? 0 : 2;
}
