/* fuzz_validate.c - libFuzzer target: arbitrary bytes as meshd-validate's `tables:` JSON.
 *
 * Binds and compiles the checks (vsuite_bind); when they compile, writes every SQL statement
 * the worker would send for them (the scan of each check, its duplicate query, its samples)
 * and requires each to pass the same lint the user's SQL passes: balanced parentheses outside
 * quotes, every quote closed, no ';' and no comment outside quotes.  So no config, however
 * odd its names, values or expressions, makes meshd-validate send a statement whose structure
 * the config's text changed.  Each compiled threshold's text must parse back to itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "meshd/md_buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must_lint(struct md_buf *b)
{
    struct md_error err;
    if (b->full)
        return;
    if (vsql_expr_lint(md_buf_str(b), &err) != 0)
        abort(); /* generated SQL whose structure the config changed */
}

static void round_trip(const struct vc_threshold *t)
{
    char text[128];
    struct vc_threshold back;
    struct md_error err;

    if (!t->set)
        return;
    vc_threshold_text(t, text, sizeof text);
    if (vc_threshold_parse(text, &back, &err) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vsuite s;
    struct md_error err;
    char *key[1] = {"\"k\""};

    if (vsuite_bind((const char *)data, size, 20, &s, &err) == 0) {
        for (size_t i = 0; i < s.n; i++) {
            const struct vtable *t = &s.t[i];
            for (size_t j = 0; j < t->nchecks; j++) {
                const struct vcheck *c = &t->checks[j];
                struct md_buf b;
                round_trip(&c->warn);
                round_trip(&c->fail);
                if (c->type == VC_SCHEMA)
                    continue;
                md_buf_init(&b, 1 << 22);
                if (c->type == VC_DUPLICATE)
                    vsql_dup(&b, t, c, "t.\"p\" = '1'");
                else
                    vsql_scan(&b, t, &c, 1, "t.\"p\" = '1'");
                must_lint(&b);
                md_buf_free(&b);
                if (c->counts && c->group_label == NULL) { /* grouped ones take $1 */
                    md_buf_init(&b, 1 << 22);
                    vsql_samples(&b, t, c, NULL, key, 1);
                    must_lint(&b);
                    md_buf_free(&b);
                }
            }
        }
    }
    vsuite_free(&s);
    return 0;
}
