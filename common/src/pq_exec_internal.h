/* pq_exec_internal.h - what test_pq_exec needs of pq_exec.c and nothing else does. */
#ifndef MESHD_PQ_EXEC_INTERNAL_H
#define MESHD_PQ_EXEC_INTERNAL_H

/* Clears the "cancelling" mark md_pq_cancel_all sets, so that one test process can check a
 * statement_timeout (-ETIMEDOUT) after a cancel (-ECANCELED).  A worker never needs it: its
 * stop is for good. */
void md__pq_cancel_reset(void);

#endif
