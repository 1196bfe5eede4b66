/* route.h - meshd-report's pure decisions: which alerts are muted, which route and receiver
 * each goes to, how they group, and which group is due for a notification now.  No I/O: plan.c
 * loads the alerts and the groups' state from the registry, calls rpt_plan, and writes back.
 *
 * The rules (docs/report.md, after Alertmanager's):
 *
 *   - An open alert is **firing** unless an inhibit rule mutes it: another open alert matches
 *     the rule's source, it matches the target, and the labels in `equal` are the same.
 *   - Each alert walks the routes in order; the first that matches takes it, and the walk goes
 *     on only when that route says `continue`.
 *   - Within a route, each receiver has its own groups: alerts with the same values of the
 *     route's group_by labels.  A github receiver, and every escalation step, groups per alert.
 *   - A group's state is what its receiver was last told: the firing alert ids (`sent`), when.
 *   - New group (nothing sent yet): due group_wait after its oldest firing alert opened.  An
 *     alert that resolves before that is never notified.
 *   - Sent before: new firing alerts, or (send_resolved) alerts of `sent` now resolved, are due
 *     group_interval after the last notification; the same alerts still firing are repeated
 *     after repeat_interval.  Once nothing fires the group ends (its state is dropped).
 *   - Escalation step k (1-based) of a route: an alert still firing k * escalate_after after it
 *     opened goes to escalate_to[k-1] (no group_wait; repeats and resolve as above).
 *   - Quiet hours of a receiver hold a due group until the window ends, unless a critical alert
 *     fires in it.
 */
#ifndef MESHD_REPORT_ROUTE_H
#define MESHD_REPORT_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "report.h"

/* One row of agent_alerts. */
struct rpt_alert {
    int64_t id;
    char *key, *severity, *job /* "" for a node's own alert */, *node, *message;
    char fp[17]; /* fingerprint: 16 hex digits of sha256(key) */
    int64_t count;
    int64_t opened_ms, updated_ms, resolved_ms; /* resolved_ms 0: open */
    bool inhibited;                             /* set by rpt_plan */
};

/* A group's state, as stored in meshd_report.groups.  rpt_plan changes it in place. */
struct rpt_group {
    char *receiver, *group_key, *route;
    int64_t first_seen_ms; /* the group's generation: when its first notification was planned */
    int64_t last_sent_ms;  /* 0: nothing sent yet */
    int64_t *sent;         /* firing ids of the last notification, ascending */
    size_t nsent;
    int64_t seq;
    bool live;  /* rpt_plan: the group exists after this round (false: delete the row) */
    bool dirty; /* rpt_plan: write it back */
};

struct rpt_groups {
    struct rpt_group *v;
    size_t n, cap;
};

/* A notification rpt_plan found due. */
enum rpt_note_kind { RPT_N_FIRING, RPT_N_REPEAT, RPT_N_RESOLVED, RPT_N_ESCALATION };

struct rpt_due {
    int rcv; /* index into cfg->receivers */
    const struct rpt_route *route;
    int level;    /* 0, or the escalation step */
    size_t group; /* index into the groups (its state already updated) */
    enum rpt_note_kind kind;
    size_t *firing, nfiring; /* indexes into alerts[] */
    size_t *resolved, nresolved;
};

struct rpt_plan_out {
    struct rpt_due *v;
    size_t n, cap;
    int64_t next_ms; /* when something next falls due (0: nothing waits) */
};

const char *rpt_note_kind_name(enum rpt_note_kind k);

/* Does a match (lists of globs) take the alert? */
bool rpt_match_alert(const struct rpt_match *m, const struct rpt_alert *a);

/* The end of the receiver's quiet window around now_ms (ms), or 0 when not quiet now. */
int64_t rpt_quiet_until(const struct rpt_quiet *q, int64_t now_ms);

/* The group key of alert a for route rt at escalation level, receiver kind: "<route>/{job=\"x\"}",
 * "<route>/esc1/{key=\"...\"}".  Into buf (cap >= 256; a longer key is cut and hashed). */
void rpt_group_key(const struct rpt_route *rt, int level, enum rpt_kind kind,
                   const struct rpt_alert *a, char *buf, size_t cap);

/* Decides everything due at now_ms.  alerts[n]: the open alerts and the resolved ones some
 * group's `sent` names (others are ignored).  groups: the stored states; rpt_plan appends new
 * ones and updates (live, dirty) in place.  out: zeroed by the caller, freed with
 * rpt_plan_out_free. */
void rpt_plan(const struct rpt_cfg *cfg, struct rpt_alert *alerts, size_t n,
              struct rpt_groups *groups, int64_t now_ms, struct rpt_plan_out *out);

void rpt_plan_out_free(struct rpt_plan_out *out);
void rpt_groups_free(struct rpt_groups *g);
void rpt_alert_free(struct rpt_alert *a);

#endif
