/* time.c - md_time.h: the clocks and the RFC 3339 writer. */
#include "meshd/md_time.h"

#include <stdio.h>

#include <cjson/cJSON.h>

int64_t md_time_clock_ms(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t md_time_wall_ms(void)
{
    return md_time_clock_ms(CLOCK_REALTIME);
}

void md_time_fmt_ms(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

void md_time_json(struct cJSON *o, const char *key, int64_t ms)
{
    char buf[80];

    if (ms <= 0) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    md_time_fmt_ms(ms, buf, sizeof buf);
    cJSON_AddStringToObject(o, key, buf);
}
