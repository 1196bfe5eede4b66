/* send.c - rpt_send: checks the note, hands it to its receiver's sender, and makes sure the
 * answer quotes no secret (send.h).
 */
#include "send.h"

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "http.h"
#include "render.h"
#include "send_internal.h"

static const char *const note_kinds[] = {"firing", "repeat", "resolved", "escalation", "digest"};

/* Replaces every occurrence of secret in s with "***": a receiver may echo what it was sent
 * (a URL, a header), and an answer is stored and shown. */
static void scrub(char *s, const char *secret)
{
    size_t n;
    char *p;

    if (secret == NULL || (n = strlen(secret)) < 4)
        return;
    while ((p = strstr(s, secret)) != NULL) {
        memcpy(p, "***", 3);
        memmove(p + 3, p + n, strlen(p + n) + 1);
    }
}

int rpt_send(const struct rpt_receiver *r, const struct rpt_send_ctx *ctx, const cJSON *note,
             struct rpt_answer *a)
{
    const char *kind = rpt_note_meshd(note, "kind");
    bool known = false;
    int rc = 0;

    memset(a, 0, sizeof *a);
    for (size_t i = 0; i < sizeof note_kinds / sizeof note_kinds[0]; i++)
        known = known || strcmp(kind, note_kinds[i]) == 0;
    if (!cJSON_IsObject(note) || !known) {
        rpt_answer_set(a, RPT_FAILED, 0, "not a notification: meshd.kind is \"%.40s\"", kind);
        return 0;
    }
    if (rpt_note_meshd(note, "idempotencyKey")[0] == '\0') {
        rpt_answer_set(a, RPT_FAILED, 0, "not a notification: no meshd.idempotencyKey");
        return 0;
    }
    switch (r->kind) {
    case RPT_WEBHOOK:
        rc = rpt_send_webhook(r, ctx, note, a);
        break;
    case RPT_EMAIL:
        rc = rpt_send_email(r, ctx, note, a);
        break;
    case RPT_GITHUB:
        rc = rpt_send_github(r, ctx, note, a);
        break;
    }
    const char *secrets[] = {r->secret, r->password, r->token};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
        scrub(a->detail, secrets[i]);
        scrub(a->ref, secrets[i]);
    }
    return rc;
}

int rpt_send_global_init(void)
{
    struct sigaction sa;

    /* A write to a socket the peer closed must fail with EPIPE, not kill the worker: OpenSSL
     * writes without MSG_NOSIGNAL, and CURLOPT_NOSIGNAL keeps libcurl from ignoring SIGPIPE
     * around each transfer itself. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGPIPE, &sa, NULL) < 0)
        return -errno;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -ENOMEM;
    return rpt_http_share_init();
}

void rpt_send_global_cleanup(void)
{
    rpt_http_share_cleanup();
    curl_global_cleanup();
}
