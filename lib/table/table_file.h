/* table_file.h - shared helpers of the file-based table types.
 *
 * texthash:, cidr:, regexp: and pcre: tables read a text file in Postfix's
 * table syntax: comment lines start with '#', blank lines are ignored, and
 * a line that starts with white space continues the previous one (Postfix
 * readlline(3)). These helpers resolve the file name, read the file with a
 * size bound and a change stamp (for texthash's reload), and cut it into
 * logical lines with the number of the line each one starts on, so that
 * every error names the file and the line.
 */
#ifndef POSTERN_TABLE_FILE_H
#define POSTERN_TABLE_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "base/str.h"
#include "base/strv.h"

struct table_open_context;

/* Largest table file read. */
#define TABLE_FILE_MAX (256 * 1024 * 1024)
/* Longest logical line (continuation lines included). */
#define TABLE_FILE_LINE_MAX (1024 * 1024)

/* The path of a table file: name itself when absolute or when ctx (or its
 * config_dir) is NULL, else config_dir/name. Caller frees. */
char *table_file_path(const char *name, const struct table_open_context *ctx);

/* What identifies one version of a file: a change to any field means the
 * file was rewritten (in place or by rename). */
struct table_file_stamp {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

bool table_file_stamp_equal(const struct table_file_stamp *a, const struct table_file_stamp *b);
/* stat(2) the file into *stamp_r; -1 with errno set on failure. */
int table_file_stat(const char *path, struct table_file_stamp *stamp_r);

/* Read the whole file (at most TABLE_FILE_MAX bytes) into out (replacing
 * its contents) and set *stamp_r to the version read. A file that changes
 * while it is read is an error ("changed while being read"), so that a
 * half-written file is never loaded. -1 with a message naming the file
 * appended to error. */
int table_file_read(const char *path, str_t *out, struct table_file_stamp *stamp_r, str_t *error);

/* A reader of logical lines over a buffer holding a whole file. */
struct table_file_lines {
	const char *label; /* names the file in messages: "regexp map /etc/x" */
	const char *buf;
	size_t len;
	size_t pos;
	unsigned lineno; /* physical lines consumed */
};

void table_file_lines_init(struct table_file_lines *l, const char *label, const char *buf,
                           size_t len);
/* The next logical line, with the newline of each physical line removed,
 * a CR before it dropped, continuation lines appended as they are, and
 * white space at both ends trimmed; *lineno_r is the number of its first
 * line. Returns 1 for a line, 0 at the end, and -1 for a bad line (a NUL
 * byte, longer than TABLE_FILE_LINE_MAX, or a continuation line with no
 * line to continue) with "LABEL, line N: why" appended to error; reading
 * may go on after -1. */
int table_file_next(struct table_file_lines *l, str_t *line, unsigned *lineno_r, str_t *error);

/* Collects the problems found while parsing a table file: at most
 * TABLE_FILE_ERRORS_MAX messages are kept, joined by "; ", then a count of
 * the rest, so one bad file cannot produce an unbounded message. */
#define TABLE_FILE_ERRORS_MAX 20
struct table_file_errors {
	str_t text;
	unsigned count;
};

void table_file_errors_init(struct table_file_errors *e);
void table_file_errors_free(struct table_file_errors *e);
void table_file_errors_add(struct table_file_errors *e, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
/* Append the collected messages to error (nothing when there were none). */
void table_file_errors_move(struct table_file_errors *e, str_t *error);

/* Split a Postfix list the way Postfix's mystrtokq() does: elements are
 * separated by commas and/or white space outside braces; braces nest and
 * may appear inside an element ("inline:{ a=b, c=d }" is one element).
 * Elements are appended to out as written. -1 with a message appended to
 * error for unbalanced braces. Used for table lists and inline: tables. */
int table_list_split(strv_t *out, const char *text, str_t *error);
/* For an element "{ text }": the text inside the braces with white space
 * at both ends removed (caller frees). An element without a leading
 * brace is returned as a copy. NULL with a message appended to error when
 * the closing brace is missing or text follows it. */
char *table_list_unbrace(const char *element, str_t *error);

#endif
