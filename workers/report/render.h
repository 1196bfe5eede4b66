/* render.h - what meshd-report's receivers say, as text: subject lines, e-mail bodies, Slack
 * blocks, GitHub issue titles, bodies, comments and labels, and the small encodings they need
 * (RFC 2047 words, RFC 5322 dates, Message-IDs, HTML and Slack escaping, HMAC-SHA256).
 *
 * Pure: no I/O, no clock (instants are passed in), no global state, so test_report_render
 * checks every rule without a network.  The note is send.h's JSON; every reader here tolerates a
 * member that is missing or of the wrong type (it reads as "" or 0): a note the receiver cannot
 * render at all is refused by the sender, not here.
 *
 * Every returned string is UTF-8, NUL-terminated, and the caller frees it with md_free, unless
 * said otherwise.  Text from a worker (messages, keys) is never trusted: it is escaped for the
 * medium it goes into (HTML, Slack mrkdwn, Markdown code blocks, one-line headers).
 */
#ifndef MESHD_REPORT_RENDER_H
#define MESHD_REPORT_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "report.h"

/* Slack's limits (api.slack.com/reference/block-kit/blocks): a section's text is at most 3000
 * characters, a message at most 50 blocks.  We count bytes, which are never fewer. */
#define RPT_SLACK_TEXT_MAX 3000
#define RPT_SLACK_BLOCKS_MAX 50
/* GitHub refuses a label name longer than 50 characters (422). */
#define RPT_GH_LABEL_MAX 50

/* ---- reading the note ------------------------------------------------------------------------ */

/* obj.name when it is a string, else "" (never NULL; borrowed from obj). */
const char *rpt_jstr(const cJSON *obj, const char *name);
/* obj.name when it is a number, else 0. */
int64_t rpt_jint(const cJSON *obj, const char *name);
/* note.meshd.<name> as a string, "" when absent. */
const char *rpt_note_meshd(const cJSON *note, const char *name);

/* ---- small encodings ------------------------------------------------------------------------- */

/* Copies n bytes of src into dst (cap bytes, cap > 0) as text safe to store and show: control
 * characters (0x00-0x1f, 0x7f) and bytes that are not valid UTF-8 become '?', and the text is
 * cut (never inside a character) to fit.  Returns strlen(dst). */
size_t rpt_clean_text(char *dst, size_t cap, const char *src, size_t n);

/* text as an unstructured header value (Subject): unchanged when it is printable ASCII;
 * otherwise RFC 2047 encoded-words "=?UTF-8?B?...?=", each at most 75 characters and never
 * splitting a UTF-8 character, separated by CRLF + space (folding).  Control characters are
 * first replaced by spaces, so the value is one logical line. */
char *rpt_rfc2047(const char *text);

/* An RFC 5322 date-time in UTC, "Wed, 25 Nov 2026 07:00:00 +0000", for Unix ms (no locale). */
void rpt_rfc5322_date(int64_t ms, char *buf, size_t len);

/* The Message-ID for a notification: "<meshd.<first 32 hex digits of SHA-256(idem_key)>@<domain
 * of from>>".  The same notification (its idempotency key) always gets the same Message-ID, so
 * a re-send after a crash is recognisably the same mail.  The domain is the part of the From
 * address after its last '@' (to a '>' or the end), keeping only letters, digits, '.' and '-';
 * "meshd.invalid" when nothing is left.  buf needs 128 bytes. */
void rpt_message_id(const char *idem_key, const char *from, char *buf, size_t len);

/* HMAC-SHA256(key, msg) as 64 lower-case hex digits into out (65 bytes). */
void rpt_hmac_sha256_hex(const void *key, size_t klen, const void *msg, size_t mlen, char out[65]);

/* s with &, <, >, " and ' as HTML entities. */
char *rpt_html_escape(const char *s);

/* s escaped for Slack mrkdwn (&, <, > as &amp; &lt; &gt;; control characters but '\n' as ' '),
 * cut to at most max bytes (never inside an entity or a character; "..." marks a cut, within
 * max).  max >= 4. */
char *rpt_slack_escape(const char *s, size_t max);

/* ---- e-mail ---------------------------------------------------------------------------------- */

/* The subject line (UTF-8, one line, at most 250 bytes): "<prefix> FIRING: 2 alerts job=load".
 * The word is FIRING (kind firing), STILL FIRING (repeat), RESOLVED (resolved, or status
 * resolved), ESCALATED (escalation); then "<alertname>" when one alert is counted, else "<n>
 * alerts" (the alerts with the note's status, plus truncatedAlerts); then the groupLabels as
 * "name=value", space-separated.  A digest's subject is meshd.digest.subject, with prefix put
 * in front unless it already starts with it.  prefix may be NULL or "". */
char *rpt_render_subject(const cJSON *note, const char *prefix);

/* The plain-text body, CRLF line endings.  A digest: meshd.digest.text (or its markdown). */
char *rpt_render_text(const cJSON *note);

/* The HTML body (a complete document), CRLF line endings.  A digest: meshd.digest.html, or its
 * text in a <pre>. */
char *rpt_render_html(const cJSON *note);

/* ---- Slack ----------------------------------------------------------------------------------- */

/* The Slack message for note: {"text": fallback, "blocks": [...]} with section and context
 * blocks in mrkdwn, no emoji, at most RPT_SLACK_BLOCKS_MAX blocks and RPT_SLACK_TEXT_MAX bytes
 * of text in each.  One section per alert (its text cut to the limit); alerts beyond the
 * blocks' room are counted in a last section.  A digest: its text (or markdown) in sections
 * split at line ends, cut where the blocks run out.  prefix as for the subject.  Returns a new
 * tree (cJSON_Delete). */
cJSON *rpt_render_slack(const cJSON *note, const char *prefix);

/* ---- GitHub ---------------------------------------------------------------------------------- */

/* What a comment reports. */
enum rpt_gh_event {
    RPT_GH_FIRING_AGAIN, /* firing while the issue is open */
    RPT_GH_REOPENED,     /* firing on a recently closed issue, which is reopened */
    RPT_GH_REPEAT,       /* still firing */
    RPT_GH_RESOLVED,     /* resolved: the issue is closed */
    RPT_GH_ESCALATED,    /* escalation step on an open issue */
};

/* The issue title: "<prefix> <key> (job <job>)", or "(node <node>)" for a node's alert; one
 * line, at most 200 bytes. */
char *rpt_gh_title(const cJSON *alert, const char *prefix);

/* The issue body (Markdown): what fires, a table of its labels, the message in a code block
 * (so no mention, reference or formatting in it acts), a link when the note has one, mention
 * (may be NULL) when the note is an escalation, and at the end the hidden markers
 *   <!-- meshd:fp=<fingerprint> -->
 *   <!-- meshd:note=<idempotencyKey> -->
 * The fp marker says which alert the issue is for; the note marker which notification wrote
 * it (a retry finds its own issue by it). */
char *rpt_gh_body(const cJSON *note, const cJSON *alert, const char *mention);

/* A comment for ev (Markdown, ending with the note marker).  occurrence: the firing episodes
 * the issue has seen, this one included (shown for FIRING_AGAIN and REOPENED when > 0). */
char *rpt_gh_comment(const cJSON *note, const cJSON *alert, enum rpt_gh_event ev, int occurrence,
                     const char *mention);

/* The fingerprint label: "meshd-fp:<fp>" into buf (RPT_GH_LABEL_MAX + 1 bytes). */
void rpt_gh_fp_label(const char *fp, char *buf, size_t len);

/* The labels a new issue gets, as a JSON array of strings: "meshd", "meshd-fp:<fp>",
 * "severity:<severity>", "job:<job>" when the alert has a job, then r->labels; each cut to
 * RPT_GH_LABEL_MAX bytes (never inside a character), duplicates and empty ones left out. */
cJSON *rpt_gh_labels(const struct rpt_receiver *r, const cJSON *alert);

/* True when body carries "<!-- meshd:note=<idem_key> -->". */
bool rpt_gh_has_note(const char *body, const char *idem_key);

#endif
