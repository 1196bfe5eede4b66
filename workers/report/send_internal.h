/* send_internal.h - the three senders behind rpt_send (send.c), one file each.  Same contract
 * as rpt_send (send.h): a is zeroed by the caller, the note is already known to be an object
 * with meshd.kind and meshd.idempotencyKey set; return 0, -ECANCELED, or a registry error
 * (github).  Not for use outside send*.c.
 */
#ifndef MESHD_REPORT_SEND_INTERNAL_H
#define MESHD_REPORT_SEND_INTERNAL_H

#include "send.h"

int rpt_send_webhook(const struct rpt_receiver *r, const struct rpt_send_ctx *ctx,
                     const cJSON *note, struct rpt_answer *a) MD_MUSTCHECK;
int rpt_send_email(const struct rpt_receiver *r, const struct rpt_send_ctx *ctx, const cJSON *note,
                   struct rpt_answer *a) MD_MUSTCHECK;
int rpt_send_github(const struct rpt_receiver *r, const struct rpt_send_ctx *ctx, const cJSON *note,
                    struct rpt_answer *a) MD_MUSTCHECK;

#endif
