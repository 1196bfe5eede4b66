/* config_sections.c - the top-level sections besides the jobs: node:, registry:, http:, cluster:.
 *
 * Each builder sets its part of struct md_config to the defaults first, so a section that is
 * absent or broken still leaves every field defined.  Values that may hold secrets
 * (registry.url, http.token) are ${VAR}-expanded and never put into a message.
 */
#include "config_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "meshd/md_alloc.h"
#include "meshd/md_log.h"

/* ---- node: ----------------------------------------------------------------------------------- */

static bool check_name(const char *s, char *why, size_t n)
{
    if (md__valid_name(s, strlen(s)))
        return true;
    snprintf(why, n, "expected 1 to 64 letters, digits, '_', '.' or '-'");
    return false;
}

static bool check_nonempty(const char *s, char *why, size_t n)
{
    if (*s)
        return true;
    snprintf(why, n, "must not be empty");
    return false;
}

static bool check_level(const char *s, char *why, size_t n)
{
    enum md_log_level lv;

    if (md_log_level_parse(s, &lv) == 0)
        return true;
    snprintf(why, n, "expected one of error, warn, notice, info, debug");
    return false;
}

static bool check_cgroups(const char *s, char *why, size_t n)
{
    if (strcmp(s, "auto") == 0 || strcmp(s, "off") == 0)
        return true;
    snprintf(why, n, "expected auto or off");
    return false;
}

static const struct node_key {
    const char *name;
    size_t off; /* a char * in struct md_config */
    bool (*check)(const char *s, char *why, size_t n);
} node_keys[] = {
    {"name", offsetof(struct md_config, node_name), check_name},
    {"environment", offsetof(struct md_config, node_env), check_name},
    {"state_dir", offsetof(struct md_config, state_dir), check_nonempty},
    {"worker_dir", offsetof(struct md_config, worker_dir), check_nonempty},
    {"log_level", offsetof(struct md_config, log_level), check_level},
    {"cgroups", offsetof(struct md_config, cgroups), check_cgroups},
};

void md__node_build(struct ctx *c, const struct md__ynode *map)
{
    struct md_config *cfg = c->cfg;
    char host[256], path[300], why[128], buf[80];
    bool *dup;

    if (map && !md__ynode_is_null(map) && map->type != MD__Y_BAD) {
        if (map->type != MD__Y_MAP) {
            md__err_at(c, map, "node", "expected a mapping, got %s",
                       md__describe(map, buf, sizeof buf));
        } else {
            dup = md__find_dups(c, map, "node", false);
            for (size_t i = 0; i + 1 < map->n; i += 2) {
                const struct md__ynode *kn = map->kids[i];
                const char *s;
                char **dst;
                size_t j;

                if (dup[i / 2] || !md__key_ok(c, kn, "node"))
                    continue;
                for (j = 0; j < MD_ARRAY_SIZE(node_keys); j++)
                    if (strcmp(kn->value, node_keys[j].name) == 0)
                        break;
                if (j == MD_ARRAY_SIZE(node_keys)) {
                    md__unknown_key(c, kn, "node", node_keys, MD_ARRAY_SIZE(node_keys),
                                    sizeof node_keys[0]);
                    continue;
                }
                snprintf(path, sizeof path, "node.%s", node_keys[j].name);
                if ((s = md__scalar(c, map->kids[i + 1], path, "a string")) == NULL)
                    continue;
                if (!node_keys[j].check(s, why, sizeof why)) {
                    md__err_at(c, map->kids[i + 1], path, "%s, got '%s'", why,
                               md__show(s, strlen(s), buf, sizeof buf));
                    continue;
                }
                dst = (char **)((char *)cfg + node_keys[j].off);
                md_free(*dst);
                *dst = md_xstrdup(s);
            }
            md_free(dup);
        }
    }
    if (cfg->node_name == NULL) {
        if (gethostname(host, sizeof host) != 0 || host[0] == '\0')
            snprintf(host, sizeof host, "localhost");
        host[sizeof host - 1] = '\0';
        cfg->node_name = md_xstrdup(host);
    }
    if (cfg->node_env == NULL)
        cfg->node_env = md_xstrdup("default");
    if (cfg->state_dir == NULL)
        cfg->state_dir = md_xstrdup("var/state");
    if (cfg->log_level == NULL)
        cfg->log_level = md_xstrdup("notice");
    if (cfg->cgroups == NULL)
        cfg->cgroups = md_xstrdup("auto");
}

/* ---- registry: ------------------------------------------------------------------------------- */

#define KIB 1024ULL
#define MIB (1024ULL * KIB)
#define GIB (1024ULL * MIB)
#define SEC 1000ULL
#define HOUR (3600ULL * SEC)
#define DAY (24ULL * HOUR)

enum reg_type { RK_URL, RK_DURATION, RK_SIZE };

static const struct reg_key {
    const char *name;
    enum reg_type type;
    size_t off;             /* RK_DURATION, RK_SIZE: a uint64_t in struct md_config */
    uint64_t def, min, max; /* ms or bytes */
    const char *range;      /* the range as written in the docs, for messages */
} reg_keys[] = {
    {"url", RK_URL, 0, 0, 0, 0, NULL},
    {"heartbeat", RK_DURATION, offsetof(struct md_config, heartbeat_ms), 30 * SEC, SEC, HOUR,
     "1s..1h"},
    {"retention", RK_DURATION, offsetof(struct md_config, retention_ms), 30 * DAY, HOUR, 3650 * DAY,
     "1h..3650d"},
    {"journal_max", RK_SIZE, offsetof(struct md_config, journal_max_bytes), 64 * MIB, MIB, 64 * GIB,
     "1MiB..64GiB"},
};

/* registry.url: a string (an empty value counts as ""), ${VAR}-expanded like a job's env
 * value.  The text is never put into a message: it may hold a password. */
static void registry_url(struct ctx *c, const struct md__ynode *v, const char *path)
{
    struct md_config *cfg = c->cfg;
    char buf[80];
    const char *raw;
    char *val;

    if (v->type == MD__Y_BAD)
        return;
    if (md__ynode_is_null(v)) {
        raw = "";
    } else if (v->type != MD__Y_SCALAR) {
        md__err_at(c, v, path, "expected a string, got %s", md__describe(v, buf, sizeof buf));
        return;
    } else if (strlen(v->value) != v->len) {
        md__err_at(c, v, path, "the value contains a NUL character");
        return;
    } else {
        raw = v->value;
    }
    if ((val = md__expand_env(c, v, raw, path)) == NULL)
        return;
    md_free(cfg->registry_url);
    cfg->registry_url = val;
    cfg->registry_url_set = true;
}

void md__registry_build(struct ctx *c, const struct md__ynode *map)
{
    struct md_config *cfg = c->cfg;
    char path[300], buf[80];
    bool *dup;

    for (size_t j = 0; j < MD_ARRAY_SIZE(reg_keys); j++)
        if (reg_keys[j].type != RK_URL)
            memcpy((char *)cfg + reg_keys[j].off, &reg_keys[j].def, sizeof(uint64_t));
    if (map == NULL || md__ynode_is_null(map) || map->type == MD__Y_BAD)
        return;
    if (map->type != MD__Y_MAP) {
        md__err_at(c, map, "registry", "expected a mapping, got %s",
                   md__describe(map, buf, sizeof buf));
        return;
    }
    dup = md__find_dups(c, map, "registry", false);
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        const struct md__ynode *kn = map->kids[i], *vn = map->kids[i + 1];
        const struct reg_key *k;
        const char *s, *expect;
        uint64_t val;
        bool ok;
        size_t j;

        if (dup[i / 2] || !md__key_ok(c, kn, "registry"))
            continue;
        for (j = 0; j < MD_ARRAY_SIZE(reg_keys); j++)
            if (strcmp(kn->value, reg_keys[j].name) == 0)
                break;
        if (j == MD_ARRAY_SIZE(reg_keys)) {
            md__unknown_key(c, kn, "registry", reg_keys, MD_ARRAY_SIZE(reg_keys),
                            sizeof reg_keys[0]);
            continue;
        }
        k = &reg_keys[j];
        snprintf(path, sizeof path, "registry.%s", k->name);
        if (k->type == RK_URL) {
            registry_url(c, vn, path);
            continue;
        }
        expect = k->type == RK_DURATION ? "a duration like 30s, 5m or 1h30m"
                                        : "a size in bytes or with KiB, MiB or GiB, like 64MiB";
        if ((s = md__scalar(c, vn, path, expect)) == NULL)
            continue;
        ok = k->type == RK_DURATION ? md_duration_parse(s, &val) == 0 : md__parse_size(s, &val);
        if (!ok) {
            md__err_at(c, vn, path, "expected %s, got '%s'", expect,
                       md__show(s, strlen(s), buf, sizeof buf));
            continue;
        }
        if (val < k->min || val > k->max) {
            md__err_at(c, vn, path, "'%s' is out of range %s",
                       md__show(s, strlen(s), buf, sizeof buf), k->range);
            continue;
        }
        memcpy((char *)cfg + k->off, &val, sizeof val);
    }
    md_free(dup);
}

/* ---- http: ----------------------------------------------------------------------------------- */

/* http.listen grammar:  "" (TCP off) | PORT | ":" PORT | IPV4 ":" PORT | "[" IPV6 "]" ":" PORT
 *                       | "localhost:" PORT.   PORT = 1*5DIGIT, 0..65535 (0: any free port). */
static bool parse_listen(const char *s, char **host, int *port, const char **why)
{
    const char *colon, *ps;
    char hostbuf[64];
    unsigned char addr[16];
    size_t hl = 0;
    long v = 0;

    *host = NULL;
    if (*s == '[') {
        const char *end = strchr(s, ']');
        if (end == NULL || end[1] != ':') {
            *why = "an IPv6 address goes in brackets, followed by :PORT, like [::1]:8470";
            return false;
        }
        hl = (size_t)(end - s - 1);
        if (hl == 0 || hl >= sizeof hostbuf) {
            *why = "bad IPv6 address";
            return false;
        }
        memcpy(hostbuf, s + 1, hl);
        hostbuf[hl] = '\0';
        if (inet_pton(AF_INET6, hostbuf, addr) != 1) {
            *why = "bad IPv6 address";
            return false;
        }
        ps = end + 2;
    } else if ((colon = strrchr(s, ':')) != NULL) {
        hl = (size_t)(colon - s);
        if (hl >= sizeof hostbuf) {
            *why = "the host is too long";
            return false;
        }
        memcpy(hostbuf, s, hl);
        hostbuf[hl] = '\0';
        if (hl == 0 || strcmp(hostbuf, "*") == 0)
            strcpy(hostbuf, "0.0.0.0");
        else if (strcmp(hostbuf, "localhost") == 0)
            strcpy(hostbuf, "127.0.0.1");
        else if (inet_pton(AF_INET, hostbuf, addr) != 1) {
            *why = strchr(hostbuf, ':') ? "an IPv6 address goes in brackets, like [::1]:8470"
                                        : "the host must be an IP address (or localhost)";
            return false;
        }
        ps = colon + 1;
    } else {
        strcpy(hostbuf, "0.0.0.0");
        ps = s;
    }
    if (*ps == '\0' || strlen(ps) > 5 || strspn(ps, "0123456789") != strlen(ps)) {
        *why = "expected a port number 0..65535 after the host";
        return false;
    }
    v = strtol(ps, NULL, 10);
    if (v > 65535) {
        *why = "the port is out of range 0..65535";
        return false;
    }
    *host = md_xstrdup(hostbuf);
    *port = (int)v;
    return true;
}

void md__http_build(struct ctx *c, const struct md__ynode *map)
{
    static const char *const keys[] = {"listen", "token", "anonymous_read", "max_connections"};
    struct md_config *cfg = c->cfg;
    char path[300], buf[80];
    bool *dup;

    cfg->http_host = md_xstrdup("127.0.0.1");
    cfg->http_port = 8470;
    cfg->http_anonymous_read = true;
    cfg->http_max_connections = 256;
    if (map == NULL || md__ynode_is_null(map) || map->type == MD__Y_BAD)
        return;
    if (map->type != MD__Y_MAP) {
        md__err_at(c, map, "http", "expected a mapping, got %s",
                   md__describe(map, buf, sizeof buf));
        return;
    }
    dup = md__find_dups(c, map, "http", false);
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        const struct md__ynode *kn = map->kids[i], *vn = map->kids[i + 1];
        const char *s, *why = "";
        size_t j;

        if (dup[i / 2] || !md__key_ok(c, kn, "http"))
            continue;
        for (j = 0; j < MD_ARRAY_SIZE(keys); j++)
            if (strcmp(kn->value, keys[j]) == 0)
                break;
        if (j == MD_ARRAY_SIZE(keys)) {
            md__unknown_key(c, kn, "http", keys, MD_ARRAY_SIZE(keys), sizeof keys[0]);
            continue;
        }
        snprintf(path, sizeof path, "http.%s", keys[j]);
        if (j == 1) { /* token: ${VAR}-expanded; the text never goes into a message */
            char *val;
            if (md__ynode_is_null(vn) || vn->type != MD__Y_SCALAR) {
                md__err_at(c, vn, path, "expected a string like ${MESHD_API_TOKEN}, got %s",
                           md__describe(vn, buf, sizeof buf));
                continue;
            }
            if (strlen(vn->value) != vn->len) {
                md__err_at(c, vn, path, "the value contains a NUL character");
                continue;
            }
            if ((val = md__expand_env(c, vn, vn->value, path)) == NULL)
                continue;
            if (*val != '\0' && strlen(val) < 16)
                md__warn_pos(c, vn->line, vn->col, path,
                             "the token is shorter than 16 characters: easy to guess");
            md_free(cfg->http_token);
            cfg->http_token = val;
            continue;
        }
        if (j == 0 && vn->type == MD__Y_SCALAR && vn->len == 0) {
            md_free(cfg->http_host); /* listen: "" turns TCP off */
            cfg->http_host = NULL;
            continue;
        }
        if ((s = md__scalar(c, vn, path,
                            j == 0   ? "an address like 127.0.0.1:8470"
                            : j == 2 ? "true or false"
                                     : "a number 1..65535")) == NULL)
            continue;
        if (j == 0) {
            char *host;
            int port;
            if (!parse_listen(s, &host, &port, &why)) {
                md__err_at(c, vn, path, "'%s': %s", md__show(s, strlen(s), buf, sizeof buf), why);
                continue;
            }
            md_free(cfg->http_host);
            cfg->http_host = host;
            cfg->http_port = port;
            cfg->http_port_set = true;
        } else if (j == 2) {
            if (!md__parse_bool(s, &cfg->http_anonymous_read))
                md__err_at(c, vn, path, "expected true or false, got '%s'",
                           md__show(s, strlen(s), buf, sizeof buf));
        } else {
            char *end;
            long v;
            errno = 0;
            v = strtol(s, &end, 10);
            if (errno != 0 || *end != '\0' || end == s || v < 1 || v > 65535) {
                md__err_at(c, vn, path, "expected a number 1..65535, got '%s'",
                           md__show(s, strlen(s), buf, sizeof buf));
                continue;
            }
            cfg->http_max_connections = (unsigned)v;
        }
    }
    md_free(dup);
}

/* ---- cluster: -------------------------------------------------------------------------------- */

void md__cluster_build(struct ctx *c, const struct md__ynode *map)
{
    static const char *const keys[] = {"enabled", "when_offline", "claim_timeout"};
    struct md_config *cfg = c->cfg;
    char path[300], buf[80];
    bool *dup;

    cfg->claim_timeout_ms = 5000;
    /* The safe choice: a node that cannot reach the database never runs a slot another node
     * may run (docs/cluster.md).  `run` is at-least-once. */
    cfg->cluster_offline_skip = true;
    if (map == NULL || md__ynode_is_null(map) || map->type == MD__Y_BAD)
        return;
    if (map->type != MD__Y_MAP) {
        md__err_at(c, map, "cluster", "expected a mapping, got %s",
                   md__describe(map, buf, sizeof buf));
        return;
    }
    dup = md__find_dups(c, map, "cluster", false);
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        const struct md__ynode *kn = map->kids[i], *vn = map->kids[i + 1];
        const char *s;
        uint64_t ms;
        size_t j;

        if (dup[i / 2] || !md__key_ok(c, kn, "cluster"))
            continue;
        for (j = 0; j < MD_ARRAY_SIZE(keys); j++)
            if (strcmp(kn->value, keys[j]) == 0)
                break;
        if (j == MD_ARRAY_SIZE(keys)) {
            md__unknown_key(c, kn, "cluster", keys, MD_ARRAY_SIZE(keys), sizeof keys[0]);
            continue;
        }
        snprintf(path, sizeof path, "cluster.%s", keys[j]);
        if ((s = md__scalar(c, vn, path,
                            j == 0   ? "true or false"
                            : j == 1 ? "run or skip"
                                     : "a duration like 5s")) == NULL)
            continue;
        if (j == 0) {
            if (!md__parse_bool(s, &cfg->cluster))
                md__err_at(c, vn, path, "expected true or false, got '%s'",
                           md__show(s, strlen(s), buf, sizeof buf));
        } else if (j == 1) {
            if (strcmp(s, "run") == 0 || strcmp(s, "skip") == 0)
                cfg->cluster_offline_skip = s[0] == 's';
            else
                md__err_at(c, vn, path, "expected run or skip, got '%s'",
                           md__show(s, strlen(s), buf, sizeof buf));
        } else if (md_duration_parse(s, &ms) != 0 || ms < 100 || ms > 60000) {
            md__err_at(c, vn, path, "expected a duration from 100ms to 1m, got '%s'",
                       md__show(s, strlen(s), buf, sizeof buf));
        } else {
            cfg->claim_timeout_ms = ms;
        }
    }
    md_free(dup);
}
