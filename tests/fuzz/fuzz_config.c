/* fuzz_config.c - libFuzzer target: md_config_parse on arbitrary bytes.
 *
 * Any input must end in either a config or a list of diagnostics, never a crash, a leak or
 * undefined behaviour, and an error result must come with at least one error item.
 *   clang -fsanitize=fuzzer,address,undefined ...; ./fuzz_config -max_total_time=60 corpus/
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meshd/md_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct md_config *cfg = NULL;
    struct md_diag diag;
    int rc;

    md_diag_init(&diag);
    rc = md_config_parse((const char *)data, size, "fuzz.yaml", &cfg, &diag);
    if ((rc == 0) != (cfg != NULL) || (rc != 0 && diag.nerrors == 0))
        abort();
    for (size_t i = 0; i < diag.n; i++)
        if (diag.items[i].msg == NULL || diag.items[i].line < 0 || diag.items[i].col < 0)
            abort();
    if (cfg) {
        for (size_t i = 0; i < cfg->njobs; i++) {
            const struct md_job *j = &cfg->jobs[i];
            if (j->argv == NULL || j->argv[j->argc] != NULL || j->tz == NULL ||
                j->config_json == NULL || md_config_job(cfg, j->name) == NULL ||
                !md_job_same_process(j, j) || !md_job_same_schedule(j, j))
                abort();
        }
    }
    md_config_free(cfg);
    md_diag_cleanup(&diag);
    return 0;
}
