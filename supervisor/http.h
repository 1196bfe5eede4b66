/* http.h - the API's listeners: TCP (http.listen, $PORT) and the local unix socket
 * <state_dir>/meshd.sock (0600, no token), served by GNU libmicrohttpd from the libuv loop.
 *
 * libmicrohttpd runs without threads of its own (MHD_USE_EPOLL in external-select mode): each
 * daemon's epoll fd is watched by a uv_poll_t and its next timeout by a uv_timer_t, and
 * MHD_run() is called from the loop.  Requests are answered from memory by api.c at once.
 */
#ifndef MESHD_HTTP_H
#define MESHD_HTTP_H

struct sup;

/* Opens the listeners.  A listener that cannot be opened is logged and left out (meshd keeps
 * supervising); returns 0, or a negative code when neither could be opened though asked for. */
int sup_http_start(struct sup *sup);
/* The TCP port listened on (useful with http.listen port 0), or -1. */
int sup_http_port(const struct sup *sup);
/* Closes the listeners and every connection (shutdown).  Safe when nothing was started. */
void sup_http_close(struct sup *sup);

#endif
