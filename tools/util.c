/*
 * util.c — helpers of the numamalloc command: one-line errors, allocations
 * that exit when memory runs out, reading files whole, formatting sizes and
 * node/CPU lists, wrapping words within a width, parsing a line of
 * /proc/PID/maps, and a JSON writer that always produces valid JSON
 * (strings escaped, invalid UTF-8 replaced).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tool.h"

void fail(int status, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fputs("numamalloc: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(status);
}

void finish(void)
{
    if (fflush(stdout) != 0 || ferror(stdout)) fail(EXIT_FAILED, "cannot write the output: %s", strerror(errno));
    exit(0);
}

void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p) fail(EXIT_FAILED, "out of memory");
    return p;
}

void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size);
    if (!p) fail(EXIT_FAILED, "out of memory");
    return p;
}

char *read_text(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 1 >= cap) buf = realloc(buf, cap *= 2);
        if (!buf) fail(EXIT_FAILED, "out of memory");
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n == 0) break;
        if (n < 0) {
            if (errno == EINTR) continue;
            int err = errno;
            free(buf);
            close(fd);
            errno = err;
            return NULL;
        }
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return buf;
}

bool read_u64(const char *path, uint64_t *out)
{
    char *text = read_text(path);
    if (!text) return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    bool ok = end != text && errno == 0;
    free(text);
    if (ok) *out = v;
    return ok;
}

const char *sysfs_root(void)
{
    const char *root = getenv("NUMAMALLOC_SYSFS_ROOT");
    return root && *root ? root : "/sys";
}

bool maps_line_parse(const char *line, size_t len, struct maps_line *out)
{
    char buf[4096 + 256];
    if (len >= sizeof buf) return false;
    memcpy(buf, line, len);
    buf[len] = '\0';
    unsigned long long start, end, offset, inode;
    char perms[8];
    int path_at = -1;
    if (sscanf(buf, "%llx-%llx %7s %llx %*x:%*x %llu %n", &start, &end, perms, &offset, &inode, &path_at) < 5 ||
        end < start || strlen(perms) != 4)
        return false;
    out->start = start;
    out->end = end;
    out->offset = offset;
    out->executable = perms[2] == 'x';
    out->path_at = path_at >= 0 && (size_t)path_at <= len ? (size_t)path_at : len;
    return true;
}

const char *format_bytes(char *buf, uint64_t bytes)
{
    static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB" };
    if (bytes < 1024) {
        snprintf(buf, 32, "%" PRIu64 " B", bytes);
        return buf;
    }
    double v = (double)bytes / 1024;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, 32, "%.1f %s", v, units[u]);
    return buf;
}

const char *format_bytes_signed(char *buf, int64_t bytes)
{
    char tmp[32];
    uint64_t magnitude = bytes < 0 ? (uint64_t)0 - (uint64_t)bytes : (uint64_t)bytes;
    snprintf(buf, 32, "%s%s", bytes < 0 ? "-" : bytes > 0 ? "+" : "", format_bytes(tmp, magnitude));
    return buf;
}

void format_list(char *buf, size_t len, const int *ids, int count)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < count; i++) {
        int first = ids[i];
        while (i + 1 < count && ids[i + 1] == ids[i] + 1) i++;
        int n = ids[i] == first ? snprintf(buf + used, len - used, "%s%d", used ? "," : "", first)
                                : snprintf(buf + used, len - used, "%s%d-%d", used ? "," : "", first, ids[i]);
        if (n < 0 || (size_t)n >= len - used) return;   /* cut: cannot happen with our sizes */
        used += (size_t)n;
    }
}

void wrap_begin(struct wrap *w, FILE *out, int column, int indent, int width)
{
    *w = (struct wrap){ .out = out, .column = column, .indent = indent, .width = width };
}

void wrap_word(struct wrap *w, const char *word, size_t len)
{
    if (w->column > w->indent && w->column + 1 + (int)len > w->width) {
        fprintf(w->out, "\n%*s", w->indent, "");
        w->column = w->indent;
    } else if (w->words_on_line) {
        fputc(' ', w->out);
        w->column++;
    }
    fwrite(word, 1, len, w->out);
    w->column += (int)len;
    w->words_on_line = true;
}

void print_wrapped(FILE *out, const char *text, int column, int indent, int width)
{
    struct wrap w;
    wrap_begin(&w, out, column, indent, width);
    for (const char *word = text; *word;) {
        size_t n = strcspn(word, " ");
        if (n > 0) wrap_word(&w, word, n);
        word += n;
        while (*word == ' ') word++;
    }
}

/* ---- JSON ---------------------------------------------------------------------- */

void json_begin(struct json *j, FILE *out)
{
    memset(j, 0, sizeof *j);
    j->out = out;
}

/* Length of the valid UTF-8 sequence at `s`, or 0 if it is not one. */
static int utf8_length(const unsigned char *s)
{
    int n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2 : 0;
    if (s[0] > 0xf4) return 0;
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
    }
    if (n == 3 && s[0] == 0xe0 && s[1] < 0xa0) return 0;   /* overlong */
    if (n == 3 && s[0] == 0xed && s[1] >= 0xa0) return 0;  /* surrogate */
    if (n == 4 && s[0] == 0xf0 && s[1] < 0x90) return 0;   /* overlong */
    if (n == 4 && s[0] == 0xf4 && s[1] >= 0x90) return 0;  /* above U+10FFFF */
    return n;
}

static void json_quoted(FILE *out, const char *text)
{
    const unsigned char *s = (const unsigned char *)text;
    fputc('"', out);
    while (*s) {
        if (*s == '"' || *s == '\\') {
            fprintf(out, "\\%c", *s++);
        } else if (*s < 0x20) {
            fprintf(out, "\\u%04x", *s++);
        } else if (*s < 0x80) {
            fputc(*s++, out);
        } else {
            int n = utf8_length(s);
            if (n == 0) {
                fputs("\\ufffd", out);
                s++;
            } else {
                fwrite(s, 1, (size_t)n, out);
                s += n;
            }
        }
    }
    fputc('"', out);
}

/* Comma, new line and indentation before an item, then its key. */
static void json_item(struct json *j, const char *key)
{
    if (j->depth > 0) {
        if (j->has_items[j->depth]) fputc(',', j->out);
        if (j->inline_[j->depth]) {
            if (j->has_items[j->depth]) fputc(' ', j->out);
        } else {
            fprintf(j->out, "\n%*s", 2 * j->depth, "");
        }
        j->has_items[j->depth] = true;
    }
    if (key) {
        json_quoted(j->out, key);
        fputs(": ", j->out);
    }
}

static void json_push(struct json *j, const char *key, char bracket, bool one_line)
{
    json_item(j, key);
    fputc(bracket, j->out);
    if (j->depth + 1 >= JSON_MAX_DEPTH) fail(EXIT_FAILED, "JSON nested too deep");
    j->depth++;
    j->has_items[j->depth] = false;
    j->inline_[j->depth] = one_line || j->inline_[j->depth - 1];
}

void json_open(struct json *j, const char *key, char bracket)
{
    json_push(j, key, bracket, false);
}

void json_open_inline(struct json *j, const char *key, char bracket)
{
    json_push(j, key, bracket, true);
}

void json_close(struct json *j, char bracket)
{
    bool had = j->has_items[j->depth], one_line = j->inline_[j->depth];
    j->depth--;
    if (had && !one_line) fprintf(j->out, "\n%*s", 2 * j->depth, "");
    fputc(bracket == '{' ? '}' : ']', j->out);
}

void json_raw(struct json *j, const char *key, const char *text)
{
    size_t n = strlen(text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' ')) n--;
    json_item(j, key);
    fwrite(text, 1, n, j->out);
}

void json_end(struct json *j)
{
    fputc('\n', j->out);
}

void json_string(struct json *j, const char *key, const char *value)
{
    json_item(j, key);
    if (value) json_quoted(j->out, value);
    else fputs("null", j->out);
}

void json_uint(struct json *j, const char *key, uint64_t value)
{
    json_item(j, key);
    fprintf(j->out, "%" PRIu64, value);
}

void json_int(struct json *j, const char *key, int64_t value)
{
    json_item(j, key);
    fprintf(j->out, "%" PRId64, value);
}

void json_double(struct json *j, const char *key, double value)
{
    json_item(j, key);
    fprintf(j->out, "%.6f", value);
}

void json_bool(struct json *j, const char *key, bool value)
{
    json_item(j, key);
    fputs(value ? "true" : "false", j->out);
}

void json_null(struct json *j, const char *key)
{
    json_item(j, key);
    fputs("null", j->out);
}
