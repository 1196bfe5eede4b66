/* http.h - the API's listeners: TCP (http.listen, $PORT) and the local unix socket
 * <state_dir>/meshd.sock (0600, no token), served from the libuv loop.
 *
 * Every connection is a uv_poll_t on a non-blocking socket; requests are parsed by http-parser
 * and answered from memory by api.c at once.  Limits, timeouts and the connection table are
 * described at the top of http.c and in docs/api.md.
 */
#ifndef MESHD_HTTP_H
#define MESHD_HTTP_H

struct sup;

/* What the HTTP server asks of the code above it, handed in by sup_http_start's caller (main.c):
 * calls go down only (docs/architecture.md), so http.c names nothing of the scheduler's. */
struct sup_http_hooks {
    /* Called before each request is answered (ud passed back): the caller starts the work that
     * is due by now (cron), so that it comes before a batch of requests ready in the same loop
     * iteration, not after it.  May be NULL. */
    void (*before_batch)(void *ud);
    void *ud;
};

/* Opens the listeners.  A listener that cannot be opened is logged and left out (meshd keeps
 * supervising); returns 0, or a negative code when neither could be opened though asked for.
 * hooks (borrowed: copied; NULL for none) stay in force until sup_http_close. */
int sup_http_start(struct sup *sup, const struct sup_http_hooks *hooks);
/* The TCP port listened on (useful with http.listen port 0), or -1. */
int sup_http_port(const struct sup *sup);
/* Closes the listeners and every connection (shutdown).  Safe when nothing was started. */
void sup_http_close(struct sup *sup);

#endif
