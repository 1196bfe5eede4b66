/* md_fs.h - small file-system helpers shared by the daemon and the workers. */
#ifndef MESHD_MD_FS_H
#define MESHD_MD_FS_H

#include <sys/types.h>

/* Creates dir and its missing parents with mode (as mkdir -p; existing ones are left as they
 * are).  Returns 0, -EINVAL for "", or -errno of the mkdir that failed. */
int md_mkdir_p(const char *dir, mode_t mode);

#endif
