/* proc_internal.h - what proc.c and proc_out.c share, and nothing else sees. */
#ifndef MESHD_PROC_INTERNAL_H
#define MESHD_PROC_INTERNAL_H

#include <stddef.h>

struct sup_proc;

/* md_linebuf callbacks (ud is the proc): a line of stdout, stderr, the status pipe. */
void sup_proc_out_line(void *ud, const char *line, size_t len, int flags);
void sup_proc_err_line(void *ud, const char *line, size_t len, int flags);
void sup_proc_status_line(void *ud, const char *line, size_t len, int flags);
/* The run is over: what the streams' log limits still hold back is reported now. */
void sup_proc_log_limits_end(struct sup_proc *p);

#endif
