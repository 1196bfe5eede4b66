/* page.h - the status page served at GET / (supervisor/web/index.html, docs/api.md).
 *
 * The bytes are generated at build time into generated/md_page_html.c by
 * cmake/embed_file.cmake, which includes this header so that the definitions are checked
 * against these declarations.  Static, read-only, never freed.
 */
#ifndef MESHD_PAGE_H
#define MESHD_PAGE_H

#include <stddef.h>

/* The page's bytes, followed by a NUL that md_page_html_len does not count. */
extern const unsigned char md_page_html[];
extern const size_t md_page_html_len;

#endif
