/* names.c - the rules for job, node and message-type names (md_config.h).
 *
 * Apart from the config loader on purpose: the status protocol (status.c) checks a message's
 * to_node/to_job with them, and every worker links status.c.  Kept here, they pull nothing of
 * the loader (nor libyaml, which a worker must not need) into a worker's binary.
 */
#include <stdbool.h>
#include <string.h>

#include "config_internal.h"
#include "meshd/md_config.h"

/* [A-Za-z0-9_.-]{1,64}: job names and node names. */
bool md__valid_name(const char *s, size_t len)
{
    if (len == 0 || len > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return false;
    }
    return true;
}

bool md_name_ok(const char *s)
{
    return s != NULL && md__valid_name(s, strlen(s));
}

bool md_event_name_ok(const char *s)
{
    /* A letter, then letters, digits and _ . : - (at most 128). */
    bool ok = ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')) && strlen(s) <= 128;

    for (const char *p = s; *p && ok; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
             strchr("_.:-", *p) != NULL;
    return ok;
}
