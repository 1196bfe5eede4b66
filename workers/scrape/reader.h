/* reader.h - a downloaded file as a stream of bytes: a zip's member, a gunzipped file, or the
 * file itself.  libarchive does the unpacking (streaming: nothing is held whole in memory); a
 * truncated or corrupt archive is an error at the point the damage is met, so a cut download
 * never reads as a short file.
 */
#ifndef MESHD_SCRAPE_READER_H
#define MESHD_SCRAPE_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "meshd/md_err.h"

struct reader;

/* archive: "auto" (by the first bytes: PK\3\4 zip, 1f 8b gzip, else plain), "zip", "gzip" or
 * "none".  member: for a zip, the glob (fnmatch, case-insensitive, on the member's name
 * without its directories) of the member to read; NULL takes the zip's only member, or its
 * only .csv/.txt one.  Returns 0 with *out set, or MD_EPARSE / -errno with err naming path. */
int reader_open(struct reader **out, const char *path, const char *archive, const char *member,
                struct md_error *err);

/* Reads up to cap bytes of the content: >0 bytes, 0 at the end, or a negative code with err
 * set ("truncated zip", "CRC mismatch", ...). */
ssize_t reader_read(struct reader *r, char *buf, size_t cap, struct md_error *err);

/* What is being read: "NAL11P202501.csv (in the zip)", or the file's name. */
const char *reader_name(const struct reader *r);

/* Bytes of the downloaded file consumed so far (compressed), for progress. */
int64_t reader_position(const struct reader *r);

/* True when the bytes come out of an archive (zip or gzip), not straight from the file. */
bool reader_is_archive(const struct reader *r);

void reader_close(struct reader *r);

#endif
